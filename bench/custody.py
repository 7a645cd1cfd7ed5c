"""Signatures per second through custody vs a bare python-pkcs11 loop, same key, same run.

    python bench/custody.py [--quick] [--count N]

Runs against a SoftHSM token created in a temporary directory (SOFTHSM2_CONF is pointed at
it; the system token store is not touched). For 1 and 2 sessions:

- raw: ``key.sign`` in a tight loop inside one gated call (no per-call gate, no audit);
- custody: ``CustodySigner.sign`` from 1 and 2 caller threads (gate per call,
  low-S normalisation, metrics) - with and without the audit record;
- guarded: every signature at a new (height, round, step), so one durable write
  (write, fsync, rename, fsync dir) per signature, plus the audit record.

The paths run interleaved, round by round (--rounds, default 5), and each rate is the median
over the rounds: the machine is shared and noisy, and interleaving spreads the noise evenly.

Prints a table and writes bench/results/custody.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Importing custody loads no PKCS#11 module: SOFTHSM2_CONF may still be set afterwards.
from trusted_ledger.custody import AuditLog, CustodySigner, Position, SigningGuard
from trusted_ledger.custody.pin import Pin
from trusted_ledger.custody.profiles import load_profile
from trusted_ledger.custody.token import TokenPool

PIN = "bench-pin-4711"
TOKEN = "bench"
RESULTS = Path(__file__).resolve().parent / "results" / "custody.json"


def make_softhsm(root: Path) -> None:
    tokens = root / "tokens"
    tokens.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is first initialised
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin", "so-" + PIN,
         "--pin", PIN], check=True, capture_output=True,
    )  # fmt: skip


def timed_calls(sign: Any, count: int, threads: int) -> tuple[float, list[float]]:
    """Total seconds and per-call latencies for ``count`` calls split over ``threads``."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = count // threads

    def work(offset: int) -> None:
        local = []
        for i in range(per_thread):
            started = time.perf_counter()
            sign(offset + i)
            local.append(time.perf_counter() - started)
        with lock:
            latencies.extend(local)

    workers = [threading.Thread(target=work, args=(n * per_thread,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, latencies


def row(name: str, sessions: int, threads: int, count: int, rates: list[float],
        latencies: list[float] | None = None) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {
        "path": name, "sessions": sessions, "threads": threads, "signatures": count,
        "per_second": round(statistics.median(rates), 1),
        "per_second_rounds": [round(rate) for rate in rates],
    }  # fmt: skip
    if latencies:
        ordered = sorted(latencies)
        result["p50_us"] = round(statistics.median(ordered) * 1e6, 1)
        result["p99_us"] = round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1)
        result["mean_us"] = round(statistics.fmean(ordered) * 1e6, 1)
    return result


def bench_sessions(
    sessions: int, count: int, rounds: int, work_dir: Path, label: str | None
) -> list[Any]:
    """All paths of one session count, interleaved round by round so that the shared
    machine's noise falls on every path alike; rates are medians over the rounds."""
    profile = dataclasses.replace(load_profile("softhsm2"), sessions=sessions)
    pool = TokenPool(profile, TOKEN, Pin(PIN))
    if label is None:
        label = "bench-key"
        pool.generate_key(label, profile.default_algorithm)
    digest = hashlib.sha256(b"bench").digest()
    pool.time_raw_signing(label, digest, 200, sessions)  # warm the handle cache
    plain = CustodySigner(pool, label)
    audit = AuditLog(work_dir / f"audit-{sessions}.jsonl", checkpoint_every_records=10**9)
    audited = CustodySigner(pool, label, audit=audit)
    guard = SigningGuard.create(work_dir / f"guard-{sessions}.state", audited.fingerprint)
    guarded = CustodySigner(pool, label, audit=audit, guard=guard)
    heights = iter(range(10**9))
    per_round = count // rounds
    guarded_per_round = max(per_round // 20, 20)
    paths: list[tuple[str, int, int, Any]] = [
        ("custody", 1, per_round, lambda i: plain.sign(digest, purpose="test")),
        ("custody", 2, per_round, lambda i: plain.sign(digest, purpose="test")),
        ("custody + audit", 1, per_round, lambda i: audited.sign(digest, purpose="vote")),
        ("custody + audit", 2, per_round, lambda i: audited.sign(digest, purpose="vote")),
        ("custody + audit + guard", 1, guarded_per_round,
         lambda i: guarded.sign(digest, purpose="vote", position=Position(next(heights), 0, 1))),
    ]  # fmt: skip
    raw_rates: list[float] = []
    rates: dict[tuple[str, int], list[float]] = {(n, t): [] for n, t, _, _ in paths}
    latencies: dict[tuple[str, int], list[float]] = {(n, t): [] for n, t, _, _ in paths}
    for _ in range(rounds):
        raw_rates.append(per_round / pool.time_raw_signing(label, digest, per_round, sessions))
        for name, threads, n, sign in paths:
            seconds, lat = timed_calls(sign, n, threads)
            rates[(name, threads)].append(n / seconds)
            latencies[(name, threads)].extend(lat)
    audit.close()
    pool.close()
    rows = [row("raw python-pkcs11", sessions, 1, per_round * rounds, raw_rates)]
    for name, threads, n, _ in paths:
        rows.append(
            row(name, sessions, threads, n * rounds, rates[(name, threads)],
                latencies[(name, threads)])
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="signatures per path")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per path")
    parser.add_argument("--quick", action="store_true", help="2,000 signatures per measurement")
    args = parser.parse_args()
    count = 2_000 if args.quick else args.count
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_softhsm(root)
        rows = bench_sessions(1, count, args.rounds, root, None)
        rows += bench_sessions(2, count, args.rounds, root, "bench-key")
    raw = {r["sessions"]: r["per_second"] for r in rows if r["path"] == "raw python-pkcs11"}
    for r in rows:
        r["vs_raw"] = round(r["per_second"] / raw[r["sessions"]], 3)
    audited_1 = next(r for r in rows if r["path"] == "custody + audit" and r["threads"] == 1)
    guarded_1 = next(r for r in rows if r["path"] == "custody + audit + guard")
    added_us = round(guarded_1["mean_us"] - audited_1["mean_us"], 1)
    print(f"{'path':26} {'sess':>4} {'thr':>3} {'sig/s':>9} {'vs raw':>7} {'p50 µs':>8} "
          f"{'p99 µs':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['path']:26} {r['sessions']:>4} {r['threads']:>3} {r['per_second']:>9.0f} "
              f"{r['vs_raw']:>7.2f} {r.get('p50_us', ''):>8} {r.get('p99_us', ''):>8}")  # fmt: skip
    print(f"guard adds {added_us} µs per signature (one durable write per new position)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "key": "EC P-256 on SoftHSM 2", "rows": rows, "guard_added_latency_us": added_us,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
