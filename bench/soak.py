"""Soak: a local consortium under steady load for a long time, one member killed and
restarted every few minutes. Reports throughput over time, each member's memory over time,
stalls, and at the end whether every acknowledged batch committed and every member holds
the same blocks.

    python bench/soak.py [--minutes 30] [--rate 300] [--restart-every 5] [--quick]

`trusted-ledger net up` makes a fresh 4-member consortium in a temporary directory. Asset
transfers are pre-signed as in bench/node.py (one per batch) and submitted at ``--rate``
batches per second in lists of ``--chunk``, round-robin over the members that are up; a
list whose POST fails (its member is down) is sent to the next member, so only a 202 counts
as acknowledged. Every ``--restart-every`` minutes the next member in turn is SIGKILLed and
started again with `net up --member` (which waits for it to be ready).

Sampled every ``--sample`` seconds: each member's height (``/status``) and resident memory
(VmRSS of its process). A stall is a window of ``--stall-after`` seconds or more in which
no running member's height grew while load was offered. The figures are reported, never
asserted; the run exits 1 only if an acknowledged batch is missing or members disagree on a
block, which are correctness failures. A JSON record goes to bench/results/.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import node as nb  # bench/node.py (this script's folder is on sys.path): its helpers, shared
from trusted_ledger.node.consortium_init import LocalMember, local_members
from trusted_ledger.txn import Batch, BatchList, SigningKey

CLI = [sys.executable, "-m", "trusted_ledger.cli"]


class Member(nb.Node):  # type: ignore[misc,name-defined]
    """A consortium member as bench/node.py's helpers address a node."""

    def __init__(self, local: LocalMember, admin: SigningKey) -> None:
        self.local = local
        self.name = local.name
        host_port = local.api_url.split("//", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.admin = admin
        self.up = True

    def pid(self) -> int | None:
        try:
            return int((self.local.directory / "node.pid").read_text())
        except (OSError, ValueError):
            return None

    def rss_mib(self) -> float | None:
        pid = self.pid()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def committed_batches(self) -> float | None:
        """This process's ``tl_chain_committed_batches_total`` (restarts reset it)."""
        try:
            text = self.get("/metrics").decode()
        except (OSError, RuntimeError, http.client.HTTPException):
            return None
        for line in text.splitlines():
            if line.startswith("tl_chain_committed_batches_total "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def height(self) -> int | None:
        try:
            return int(self.get("/status")["data"]["head"]["block_num"])
        except (OSError, RuntimeError, KeyError, ValueError, http.client.HTTPException):
            return None


@dataclass
class Load:
    """What the submitter sent and what the members acknowledged."""

    acked: list[str] = field(default_factory=list)
    posts_failed: int = 0
    retries_429: int = 0
    offered_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit(members: list[Member], batches: list[Batch], rate: float, chunk: int,
           load: Load, stop: threading.Event) -> None:  # fmt: skip
    """Paced lists of ``chunk`` batches, round-robin over members that are up."""
    interval = chunk / rate
    connections: dict[str, http.client.HTTPConnection] = {}
    turn = 0
    started = time.monotonic()
    for index, start in enumerate(range(0, len(batches), chunk)):
        if stop.is_set():
            break
        due = started + index * interval
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        part = batches[start : start + chunk]
        body = BatchList(tuple(part)).encode()
        for _attempt in range(3 * len(members)):
            member = members[turn % len(members)]
            turn += 1
            if not member.up:
                continue
            try:
                conn = connections.get(member.name) or member.connection()
                connections[member.name] = conn
                conn.request("POST", "/batches", body, {"Content-Type": "application/octet-stream"})
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                connections.pop(member.name, None)
                load.posts_failed += 1
                continue
            if response.status == 202:
                with load.lock:
                    load.acked.extend(b.header_signature for b in part)
                break
            if response.status == 429:
                load.retries_429 += 1
                time.sleep(float(response.getheader("Retry-After") or 1))
                continue
            raise SystemExit(f"POST /batches to {member.name}: {response.status}")
        load.offered_until = time.time()


def sample(members: list[Member]) -> dict[str, Any]:
    return {
        "t": time.time(),
        "height": {m.name: (m.height() if m.up else None) for m in members},
        "rss_mib": {m.name: (m.rss_mib() if m.up else None) for m in members},
        "committed": {m.name: (m.committed_batches() if m.up else None) for m in members},
    }


def restart(directory: Path, member: Member) -> float:
    """SIGKILL ``member`` and start it again; seconds until it was ready."""
    pid = member.pid()
    member.up = False
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
    time.sleep(1.0)
    began = time.monotonic()
    subprocess.run([*CLI, "net", "up", "--dir", str(directory), "--member", member.name],
                   check=True, capture_output=True, text=True)  # fmt: skip
    member.up = True
    return time.monotonic() - began


def stalls(samples: list[dict[str, Any]], stall_after: float, load_end: float) -> list[Any]:
    """Windows of at least ``stall_after`` s with no height growth while load was offered."""
    found, since, best = [], None, -1
    for s in samples:
        top = max((h for h in s["height"].values() if h is not None), default=-1)
        if top > best:
            if since is not None and s["t"] - since >= stall_after:
                found.append({"from": since, "seconds": round(s["t"] - since, 1)})
            best, since = top, None
        elif since is None and s["t"] <= load_end:
            since = s["t"]
    return found


def check_agreement(members: list[Member], top: int) -> list[str]:
    problems = []
    for number in range(top + 1):
        ids = {m.name: m.get(f"/blocks/num/{number}")["data"]["header_signature"] for m in members}
        if len(set(ids.values())) != 1:
            problems.append(f"height {number}: {ids}")
    return problems


def check_committed(member: Member, ids: list[str]) -> list[str]:
    missing = []
    for start in range(0, len(ids), 1000):
        conn = member.connection()
        body = json.dumps(ids[start : start + 1000]).encode()
        conn.request("POST", "/batch_statuses", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = json.loads(response.read())["data"]
        conn.close()
        missing += [s["id"] for s in data if s["status"] != "COMMITTED"]
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=300.0, help="batches per second offered")
    parser.add_argument("--restart-every", type=float, default=5.0, help="minutes")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--stall-after", type=float, default=30.0, help="seconds")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--base-port", type=int, default=18700)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="3 minutes, a restart a minute")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.restart_every, args.sample, args.accounts = 3.0, 1.0, 5.0, 500
    with tempfile.TemporaryDirectory(prefix="tl-soak-") as tmp:
        directory = Path(tmp) / "net"
        subprocess.run([*CLI, "net", "up", "--dir", str(directory), "--nodes", str(args.nodes),
                        "--base-port", str(args.base_port)],
                       check=True, capture_output=True, text=True)  # fmt: skip
        try:
            record = soak(args, directory)
        finally:
            subprocess.run([*CLI, "net", "down", "--dir", str(directory)], check=False,
                           capture_output=True)  # fmt: skip
    results = Path(__file__).with_name("results")
    results.mkdir(exist_ok=True)
    out = results / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(record, indent=1))
    print(f"record: {out}")
    return 0 if not record["missing"] and not record["disagreements"] else 1


def soak(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    admin = SigningKey.from_hex((directory / "keys" / "admin.priv").read_text().strip())
    members = [Member(local, admin) for local in local_members(directory)]
    rng = random.Random(args.seed)
    accounts = [SigningKey.generate() for _ in range(args.accounts)]
    nb.fund(members[0], accounts)
    total = int(args.rate * args.minutes * 60)
    print(f"pre-signing {total} transfers ...", flush=True)
    batches = nb.presign(accounts, total, rng.randint(0, 2**31))
    load, stop = Load(), threading.Event()
    submitter = threading.Thread(
        target=submit, args=(members, batches, args.rate, args.chunk, load, stop), daemon=True
    )
    started = time.time()
    submitter.start()
    samples, restarts = [sample(members)], []
    next_restart, victim = started + args.restart_every * 60, 0
    end = started + args.minutes * 60
    while time.time() < end and submitter.is_alive():
        time.sleep(args.sample)
        if time.time() >= next_restart and time.time() < end - 30:
            member = members[victim % len(members)]
            victim += 1
            at = time.time() - started
            ready_s = restart(directory, member)
            restarts.append(
                {"member": member.name, "at_s": round(at), "ready_s": round(ready_s, 1)}
            )
            print(f"{at:7.0f} s  restarted {member.name} (ready in {ready_s:.1f} s)", flush=True)
            next_restart += args.restart_every * 60
        samples.append(sample(members))
        s = samples[-1]
        print(f"{s['t'] - started:7.0f} s  heights {s['height']}  rss {s['rss_mib']}", flush=True)
    stop.set()
    submitter.join()
    load_end = load.offered_until
    for member in members:
        nb.wait_pending_empty(member, 600)
    samples.append(sample(members))
    tops = [h for h in samples[-1]["height"].values() if h is not None]
    disagreements = check_agreement(members, min(tops))
    missing = check_committed(members[0], load.acked)
    record = summarize(args, samples, restarts, load, started, load_end)
    record |= {"missing": missing[:100], "missing_count": len(missing),
               "disagreements": disagreements[:20]}  # fmt: skip
    report(record)
    return record


def committed_per_minute(samples: list[dict[str, Any]], started: float) -> list[Any]:
    """Batches committed per minute: per sample interval, the largest growth of a member's
    committed counter among members up across the interval (a restart resets a counter)."""
    by_minute: dict[int, float] = {}
    for before, after in itertools.pairwise(samples):
        grown = [
            after["committed"][name] - value
            for name, value in before["committed"].items()
            if value is not None
            and after["committed"].get(name) is not None
            and after["committed"][name] >= value
        ]
        minute = int((after["t"] - started) // 60)
        by_minute[minute] = by_minute.get(minute, 0.0) + max(grown, default=0.0)
    return [{"minute": m, "batches": int(n)} for m, n in sorted(by_minute.items())]


def summarize(args: argparse.Namespace, samples: list[dict[str, Any]], restarts: list[Any],
              load: Load, started: float, load_end: float) -> dict[str, Any]:  # fmt: skip
    names = list(samples[0]["rss_mib"])
    memory = {}
    for name in names:
        values = [s["rss_mib"][name] for s in samples if s["rss_mib"][name] is not None]
        memory[name] = {"first_mib": round(values[0], 1), "max_mib": round(max(values), 1),
                        "last_mib": round(values[-1], 1)} if values else {}  # fmt: skip
    wall = max(load_end - started, 1e-9)
    return {
        "args": vars(args),
        "acked": len(load.acked),
        "acked_per_s": round(len(load.acked) / wall, 1),
        "posts_failed_and_resent": load.posts_failed,
        "retries_429": load.retries_429,
        "restarts": restarts,
        "stalls": stalls(samples, args.stall_after, load_end),
        "committed_per_minute": committed_per_minute(samples, started),
        "memory": memory,
        "samples": samples,
    }


def report(r: dict[str, Any]) -> None:
    print(f"acknowledged {r['acked']} batches ({r['acked_per_s']}/s over the load window); "
          f"{r['posts_failed_and_resent']} POSTs failed and were resent, "
          f"{r['retries_429']} answered 429")  # fmt: skip
    print(f"restarts: {len(r['restarts'])}, stalls (no height growth for "
          f"{r['args']['stall_after']:.0f} s under load): {r['stalls'] or 'none'}")  # fmt: skip
    print("batches committed per minute: "
          + ", ".join(str(m["batches"]) for m in r["committed_per_minute"]))  # fmt: skip
    for name, m in r["memory"].items():
        print(f"  {name}: RSS first {m.get('first_mib')} MiB, max {m.get('max_mib')}, "
              f"last {m.get('last_mib')}")  # fmt: skip
    print(f"missing acknowledged batches: {r['missing_count']}; "
          f"block disagreements: {len(r['disagreements'])}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
