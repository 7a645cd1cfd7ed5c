"""A real node under HTTP load: committed asset transfers per second and submit-to-commit
latency, with the serial scheduler beside the parallel one in the same run.

    python bench/node.py [--quick] [--rate R] [--duration S] [--accounts A] [--schedulers ...]

For each scheduler a fresh node is created (``node init``: embedded SoftHSM token, genesis)
and started as its own process (``node run``). The issuer creates ``USD`` and funds A
accounts; then transfers between random accounts (one per batch, signed by the holder, as
Sawtooth clients do: two secp256k1 signatures per batch) are all signed *before* the clock
starts, and submitted open-loop at R batches per second in BatchLists of ``--chunk``
batches over keep-alive connections. A 429 is retried after 50 ms (counted).

Latency is measured from the moment a batch's POST started to the moment the node logged the
commit of its block (``block.committed``, same host clock): nothing is polled during the run,
so the measurement costs the node nothing. Throughput is the committed batches per second
over the steady window (after ``--warmup`` seconds). Where the time goes comes from the
node's own metrics (``/metrics`` before and after).

The load generator shares the 2 cores with the node; its share is printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from trusted_ledger.processing.families import asset
from trusted_ledger.txn import Batch, BatchList, SigningKey, TransactionBuilder, build_batch

CODE = "USD"
CLI = [sys.executable, "-m", "trusted_ledger.cli"]


def _signed(key: SigningKey, operation: asset.AssetOperation) -> Batch:
    builder = TransactionBuilder(key, "asset", "1.0")
    txn = builder.build(operation.payload, inputs=operation.inputs, outputs=operation.outputs)
    return build_batch(key, [txn])


class Node:
    """One benchmark node in its own directory and process."""

    def __init__(self, root: Path, scheduler: str, block_interval_ms: int) -> None:
        self.dir = root / f"node-{scheduler}"
        subprocess.run(
            [*CLI, "node", "init", "--dir", str(self.dir), "--api-bind", "127.0.0.1:0",
             "--processors-bind", "", "--scheduler", scheduler],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        config = self.dir / "node.toml"
        text = config.read_text()
        text = re.sub(r"block_interval_ms = \d+", f"block_interval_ms = {block_interval_ms}", text)
        config.write_text(text)
        self.log_path = self.dir / "node.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*CLI, "node", "run", "--dir", str(self.dir)],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("node ready: "):
            raise SystemExit(f"node did not start: {self.log_path.read_text()[-2000:]}")
        parsed = urllib.parse.urlparse(line.split()[2])
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.admin = SigningKey.from_hex((self.dir / "keys" / "admin.priv").read_text().strip())

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def get(self, path: str) -> Any:
        conn = self.connection()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return body if path == "/metrics" else json.loads(body)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)
        self.log.close()


def post(conn: http.client.HTTPConnection, batches: list[Batch]) -> int:
    body = BatchList(tuple(batches)).encode()
    conn.request("POST", "/batches", body, {"Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    response.read()
    return response.status


def wait_pending_empty(node: Node, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while node.get("/status")["data"]["pending_batches"] and time.monotonic() < deadline:
        time.sleep(0.2)


def fund(node: Node, accounts: list[SigningKey]) -> None:
    issuer = node.admin
    batches = [_signed(issuer, asset.create_operation(CODE, "currency", 2))]
    batches += [
        _signed(issuer, asset.issue_operation(CODE, key.public_key_hex, 10**12)) for key in accounts
    ]
    conn = node.connection()
    for start in range(0, len(batches), 100):
        status = post(conn, batches[start : start + 100])
        if status != 202:
            raise SystemExit(f"funding refused: {status}")
    wait_pending_empty(node, 120)


def presign(accounts: list[SigningKey], count: int, seed: int) -> list[Batch]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        sender, receiver = rng.sample(accounts, 2)
        operation = asset.transfer_operation(
            CODE, sender.public_key_hex, receiver.public_key_hex, rng.randint(1, 100)
        )
        made.append(_signed(sender, operation))
    return made


@dataclass
class Submission:
    sent_at: dict[str, float] = field(default_factory=dict)  # batch id -> wall time of POST
    retries_429: int = 0
    failures: int = 0


def submit_open_loop(
    node: Node, batches: list[Batch], rate: float, chunk: int, threads: int
) -> tuple[Submission, float, float]:
    """Send ``batches`` at ``rate`` per second; returns the record and the wall-clock window."""
    chunks = [batches[i : i + chunk] for i in range(0, len(batches), chunk)]
    record = Submission()
    lock = threading.Lock()
    started = time.time()

    def worker(index: int) -> None:
        conn = node.connection()
        for k in range(index, len(chunks), threads):
            due = started + k * chunk / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            sent = time.time()
            while True:
                status = post(conn, chunks[k])
                if status != 429:
                    break
                with lock:
                    record.retries_429 += 1
                time.sleep(0.05)
            with lock:
                if status == 202:
                    for batch in chunks[k]:
                        record.sent_at[batch.header_signature] = sent
                else:
                    record.failures += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return record, started, time.time()


def commit_times(log_path: Path) -> dict[int, float]:
    """Height -> wall time of ``block.committed`` in the node's JSON log."""
    times = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if '"block.committed"' not in line:
            continue
        record = json.loads(line)
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        times[int(record["height"])] = stamp.timestamp()
    return times


def batch_heights(node: Node, first: int) -> dict[str, int]:
    heights: dict[str, int] = {}
    head = node.get("/status")["data"]["head"]["block_num"]
    number = first
    while number <= head:
        page = node.get(f"/blocks?start={number}&limit=100&reverse=false")["data"]
        for block in page:
            for batch_id in block["header"]["batch_ids"]:
                heights[batch_id] = block["header"]["block_num"]
        number += len(page)
        if not page:
            break
    return heights


_METRIC_LINE = re.compile(r"^(tl_[a-z_]+?)(_sum|_count)(\{[^}]*\})? ([0-9.e+-]+)$")


def histogram_totals(metrics_text: bytes) -> dict[str, float]:
    """``name_sum``/``name_count`` of every histogram, summed over labels."""
    totals: dict[str, float] = {}
    for line in metrics_text.decode().splitlines():
        match = _METRIC_LINE.match(line)
        if match:
            key = match.group(1) + match.group(2)
            totals[key] = totals.get(key, 0.0) + float(match.group(4))
    return totals


STAGES = (
    ("tl_api_request_seconds", "API requests (decode, verify, pool write)"),
    ("tl_chain_publish_seconds", "publish (all of a block)"),
    ("tl_processing_block_seconds", "  execute block"),
    ("tl_state_update_seconds", "  state tree update"),
    ("tl_custody_sign_seconds", "  HSM signatures (block + vote)"),
    ("tl_chain_commit_seconds", "  commit (one synced write)"),
)


def run(args: argparse.Namespace, scheduler: str, root: Path) -> dict[str, Any]:
    node = Node(root, scheduler, args.block_interval_ms)
    try:
        rng = random.Random(args.seed)
        accounts = [SigningKey.generate() for _ in range(args.accounts)]
        fund(node, accounts)
        count = int(args.rate * args.duration)
        signing_started = time.perf_counter()
        batches = presign(accounts, count, rng.randint(0, 2**31))
        signing_s = time.perf_counter() - signing_started
        first_height = node.get("/status")["data"]["head"]["block_num"] + 1
        metrics_before = histogram_totals(node.get("/metrics"))
        cpu_before = node.cpu_seconds()
        bench_cpu_before = time.process_time()
        record, started, ended = submit_open_loop(
            node, batches, args.rate, args.chunk, args.threads
        )
        wait_pending_empty(node, 300)
        node_cpu = node.cpu_seconds() - cpu_before
        bench_cpu = time.process_time() - bench_cpu_before
        metrics_after = histogram_totals(node.get("/metrics"))
        heights = batch_heights(node, first_height)
        times = commit_times(node.log_path)
    finally:
        node.stop()
    latencies = sorted(
        times[heights[batch_id]] - sent
        for batch_id, sent in record.sent_at.items()
        if batch_id in heights and heights[batch_id] in times
    )
    steady_from = started + args.warmup
    last_commit = max(times[h] for h in set(heights.values()))
    steady = [
        batch_id for batch_id in record.sent_at
        if batch_id in heights and times[heights[batch_id]] >= steady_from
    ]  # fmt: skip
    window = max(last_commit - steady_from, 1e-9)
    blocks = sorted(set(heights.values()))
    stage_totals = {
        name: (
            metrics_after.get(f"{name}_sum", 0.0) - metrics_before.get(f"{name}_sum", 0.0),
            metrics_after.get(f"{name}_count", 0.0) - metrics_before.get(f"{name}_count", 0.0),
        )
        for name, _ in STAGES
    }
    return {
        "scheduler": scheduler,
        "offered_per_s": args.rate,
        "submitted": len(batches),
        "accepted": len(record.sent_at),
        "committed": len(latencies),
        "committed_per_s": len(steady) / window,
        "p50_s": statistics.median(latencies) if latencies else float("nan"),
        "p99_s": latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "blocks": len(blocks),
        "batches_per_block": len(latencies) / max(len(blocks), 1),
        "retries_429": record.retries_429,
        "failures": record.failures,
        "presign_s": signing_s,
        "wall_s": ended - started,
        "node_cpu_s": node_cpu,
        "bench_cpu_s": bench_cpu,
        "stages": stage_totals,
    }


def report(results: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'scheduler':<10} {'offered/s':>9} {'committed':>9} {'commit/s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'blocks':>6} {'batch/blk':>9} {'429s':>5}"
    )
    for r in results:
        print(
            f"{r['scheduler']:<10} {r['offered_per_s']:>9.0f} {r['committed']:>9} "
            f"{r['committed_per_s']:>9.0f} {1000 * r['p50_s']:>8.0f} {1000 * r['p99_s']:>8.0f} "
            f"{r['blocks']:>6} {r['batches_per_block']:>9.0f} {r['retries_429']:>5}"
        )
    for r in results:
        wall = r["wall_s"]
        print(
            f"\n{r['scheduler']}: node CPU {r['node_cpu_s']:.1f} s, load generator CPU "
            f"{r['bench_cpu_s']:.1f} s over {wall:.1f} s of submission (2 cores); "
            f"pre-signing {r['submitted']} batches took {r['presign_s']:.1f} s"
        )
        for name, label in STAGES:
            total, count = r["stages"][name]
            per = f"{1000 * total / count:.2f} ms each" if count else "-"
            print(f"  {label:<44} {total:>7.2f} s over {count:>7.0f} ({per})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s at 1,000/s")
    parser.add_argument("--rate", type=float, default=3000.0, help="offered batches per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of offered load")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out of the rate")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=50, help="batches per POST")
    parser.add_argument("--threads", type=int, default=4, help="submitting connections")
    parser.add_argument("--block-interval-ms", type=int, default=200)
    parser.add_argument("--schedulers", nargs="+", default=["serial", "parallel"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.rate, args.duration, args.warmup, args.accounts = 1000.0, 10.0, 2.0, 500
    results = []
    with tempfile.TemporaryDirectory(prefix="tl-bench-node-") as tmp:
        for scheduler in args.schedulers:
            print(
                f"running {scheduler}: {args.rate:.0f}/s for {args.duration:.0f} s ...", flush=True
            )
            results.append(run(args, scheduler, Path(tmp)))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
