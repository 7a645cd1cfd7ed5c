"""A local consortium of 4 members under HTTP load: committed transfers per second, finality
latency, and per block the messages and signatures it took.

    python bench/consortium.py [--quick] [--rate R] [--duration S] [--nodes N]

`trusted-ledger net up` makes a fresh consortium in a temporary directory (each member its
own SoftHSM token, chain and ports; genesis certified by all). Asset transfers are pre-signed
exactly as in bench/node.py (one per batch, two secp256k1 signatures) and submitted open-loop
at R batches per second, round-robin to the members' APIs, so gossip carries each batch to
the proposer. Finality is measured from the start of the POST to the ``bft.committed`` record
of the block in bank-a's log (same host clock). Messages and signatures per block come from
bank-a's own metrics.

Beside it, in the same run, the reference for what replication costs on this machine: a
3-node etcd cluster (Raft, the log Hyperledger Fabric's ordering service builds on) on
loopback, durable (etcd fsyncs its WAL before acknowledging), writing the same number of
entries of the same size (an encoded transfer batch) through its HTTP/JSON gateway from
the same number of connections. ``scripts/bench-setup.sh`` installs etcd (Debian's
etcd-server); ``--no-etcd`` skips it.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any

import node as nb  # bench/node.py (this script's folder is on sys.path): its helpers, shared
from trusted_ledger.node.consortium_init import local_members
from trusted_ledger.txn import SigningKey


class Member(nb.Node):  # type: ignore[misc,name-defined]
    """A running consortium member, addressed like bench/node.py's single node."""

    def __init__(self, url: str, log_path: Path, pid: int, admin: SigningKey) -> None:
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.log_path = log_path
        self.pid = pid
        self.admin = admin

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commit_times(log_path: Path) -> dict[int, float]:
    times = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if '"bft.committed"' in line:
            record = json.loads(line)
            stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
            times[int(record["height"])] = stamp.timestamp()
    return times


def counters(metrics_text: bytes, names: tuple[str, ...]) -> dict[str, float]:
    totals = dict.fromkeys(names, 0.0)
    for line in metrics_text.decode().splitlines():
        for name in names:
            if line.startswith(name) and not line.startswith("#"):
                totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


COUNTED = ("tl_consensus_messages_total", "tl_custody_sign_seconds_count")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s at 500/s")
    parser.add_argument("--rate", type=float, default=1200.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--base-port", type=int, default=17700)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-etcd", action="store_true", help="skip the etcd reference")
    parser.add_argument("--etcd-clients", type=int, default=32, help="concurrent etcd writers")
    args = parser.parse_args()
    if args.quick:
        args.rate, args.duration, args.warmup, args.accounts = 500.0, 10.0, 2.0, 500
    cli = [sys.executable, "-m", "trusted_ledger.cli", "net"]
    with tempfile.TemporaryDirectory(prefix="tl-bench-net-") as tmp:
        net = Path(tmp) / "net"
        where = ["--dir", str(net)]
        subprocess.run(
            [*cli, "up", *where, "--nodes", str(args.nodes), "--base-port", str(args.base_port)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        try:
            result = run(args, net)
        finally:
            subprocess.run([*cli, "down", *where], check=False, capture_output=True)
    report(args, result)
    if not args.no_etcd:
        etcd_reference(args, result["committed"], result["entry_bytes"])


def run(args: argparse.Namespace, net: Path) -> dict[str, Any]:
    admin = SigningKey.from_hex((net / "keys" / "admin.priv").read_text().strip())
    members = [
        Member(
            m.api_url, m.directory / "node.log", int((m.directory / "node.pid").read_text()), admin
        )
        for m in local_members(net)
    ]
    first = members[0]
    rng = random.Random(args.seed)
    accounts = [SigningKey.generate() for _ in range(args.accounts)]
    nb.fund(first, accounts)
    batches = nb.presign(accounts, int(args.rate * args.duration), rng.randint(0, 2**31))
    first_height = first.get("/status")["data"]["head"]["block_num"] + 1
    before = counters(first.get("/metrics"), COUNTED)
    cpu_before = [m.cpu_seconds() for m in members]
    # Round-robin over members: chunk k goes to member k mod n.
    shares = [batches[i :: len(members)] for i in range(len(members))]
    started = time.time()
    results: list[Any] = [None] * len(members)

    def submit(index: int) -> None:
        results[index] = nb.submit_open_loop(
            members[index], shares[index], args.rate / len(members), args.chunk, 2
        )

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(members))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.time()
    for member in members:
        nb.wait_pending_empty(member, 300)
    records = [r[0] for r in results]
    cpu = sum(m.cpu_seconds() for m in members) - sum(cpu_before)
    after = counters(first.get("/metrics"), COUNTED)
    heights = nb.batch_heights(first, first_height)
    times = commit_times(first.log_path)
    sent_at = {k: v for record in records for k, v in record.sent_at.items()}
    latencies = sorted(
        times[heights[b]] - sent
        for b, sent in sent_at.items()
        if b in heights and heights[b] in times
    )
    steady_from = started + args.warmup
    last = max(times[h] for h in set(heights.values()))
    steady = [b for b in sent_at if b in heights and times[heights[b]] >= steady_from]
    blocks = len(set(heights.values()))
    return {
        "entry_bytes": round(statistics.mean(len(b.encode()) for b in batches[:1000])),
        "committed": len(latencies),
        "committed_per_s": len(steady) / max(last - steady_from, 1e-9),
        "p50_s": latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99_s": latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "blocks": blocks,
        "wall_s": ended - started,
        "cpu_s": cpu,
        "retries_429": sum(r.retries_429 for r in records),
        "messages_per_block": (after[COUNTED[0]] - before[COUNTED[0]]) / max(blocks, 1),
        "signatures_per_block": (after[COUNTED[1]] - before[COUNTED[1]]) / max(blocks, 1),
    }


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    print(
        f"{args.nodes} members, offered {args.rate:.0f}/s for {args.duration:.0f} s: committed "
        f"{r['committed']} ({r['committed_per_s']:.0f}/s sustained), finality p50 "
        f"{1000 * r['p50_s']:.0f} ms p99 {1000 * r['p99_s']:.0f} ms, {r['blocks']} blocks, "
        f"{r['retries_429']} x 429"
    )
    print(
        f"at bank-a per block: {r['messages_per_block']:.1f} consensus messages (in + out), "
        f"{r['signatures_per_block']:.1f} HSM signatures; all members' CPU {r['cpu_s']:.1f} s "
        f"over {r['wall_s']:.1f} s (2 cores)"
    )


def etcd_reference(args: argparse.Namespace, count: int, entry_bytes: int) -> None:
    """A durable 3-node etcd cluster on loopback writing ``count`` entries of ``entry_bytes``."""
    if shutil.which("etcd") is None:
        print("etcd reference skipped: etcd is not installed (scripts/bench-setup.sh)")
        return
    names = ("etcd-a", "etcd-b", "etcd-c")
    peer = [args.base_port + 500 + i for i in range(3)]
    client = [args.base_port + 510 + i for i in range(3)]
    cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, peer, strict=True))
    with tempfile.TemporaryDirectory(prefix="tl-bench-etcd-") as tmp:
        processes = [
            subprocess.Popen(
                [
                    "etcd",
                    "--name",
                    name,
                    "--data-dir",
                    f"{tmp}/{name}",
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{peer[i]}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{peer[i]}",
                    "--listen-client-urls",
                    f"http://127.0.0.1:{client[i]}",
                    "--advertise-client-urls",
                    f"http://127.0.0.1:{client[i]}",
                    "--initial-cluster",
                    cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "tl-bench",
                    "--log-level",
                    "error",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i, name in enumerate(names)
        ]
        try:
            _wait_etcd(client[0])
            cpu_before = sum(_cpu(p.pid) for p in processes)
            latencies, elapsed = _etcd_writes(client, count, entry_bytes, args.etcd_clients)
            cpu = sum(_cpu(p.pid) for p in processes) - cpu_before
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=30)
    latencies.sort()
    p50 = 1000 * latencies[len(latencies) // 2]
    p99 = 1000 * latencies[int(0.99 * (len(latencies) - 1))]
    print(
        f"etcd 3 nodes (durable), {count} puts of {entry_bytes} B from {args.etcd_clients} "
        f"connections: {count / elapsed:.0f}/s, latency p50 {p50:.1f} ms p99 {p99:.1f} ms; "
        f"etcd CPU {cpu:.1f} s"
    )


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_etcd(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if b"true" in conn.getresponse().read():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("etcd cluster did not become healthy in 30 s")


def _etcd_writes(
    ports: list[int], count: int, entry_bytes: int, clients: int
) -> tuple[list[float], float]:
    """``count`` puts through etcd's v3 JSON gateway, spread over the three members."""
    value = base64.b64encode(os.urandom(entry_bytes)).decode()
    latencies: list[float] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ports[index % len(ports)], timeout=60)
        mine = []
        for n in range(index, count, clients):
            key = base64.b64encode(f"bench/{n:012d}".encode()).decode()
            body = json.dumps({"key": key, "value": value})
            sent = time.perf_counter()
            conn.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"etcd put failed: {response.status}")
            mine.append(time.perf_counter() - sent)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


if __name__ == "__main__":
    main()
