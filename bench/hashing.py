"""Native hashing vs the hashlib loop a Python developer would write, side by side in one run.

    python bench/hashing.py [--quick] [--repeat N] [--json PATH]

Cases: Merkle root of 1k / 100k / 1M 32-byte leaves, ids of 10,000 ~200-byte transactions,
and the rate of 64-byte hashes. Each row times the baseline and ours on the same input in the
same process (median of --repeat runs) and checks that both give the same answer. Ours is
measured on each SHA-256 implementation this CPU has (``sha-ni`` and the portable fallback).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trusted_ledger import __version__, hashing

RESULTS = Path(__file__).resolve().parent / "results" / "hashing.json"


def hashlib_merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 root the straightforward way: a list per level, one hashlib call per node."""
    sha256 = hashlib.sha256
    if not leaves:
        return sha256(b"").digest()
    level = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        parents = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds over ``repeat`` runs, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _impls() -> list[str]:
    return [name for name in ("sha-ni", "portable") if hashing.sha256_impl_available(name)]


def bench_merkle(n: int, repeat: int) -> list[dict[str, Any]]:
    buf = hashing.digest_fixed(b"".join(i.to_bytes(8, "big") for i in range(n)), 8).buffer
    leaves = [bytes(buf[i * 32 : (i + 1) * 32]) for i in range(n)]
    base_s, expected = timed(lambda: hashlib_merkle_root(leaves), repeat)
    rows = []
    for impl in _impls():
        hashing.set_sha256_impl(impl)
        ours_s, got = timed(lambda: hashing.merkle_root_fixed(buf, 32), repeat)
        assert got == expected, "native root differs from the hashlib loop"
        list_s, got_list = timed(lambda: hashing.merkle_root(leaves), repeat)
        assert got_list == expected
        rows.append({
            "case": f"merkle root, {n:,} leaves", "impl": impl,
            "baseline_s": base_s, "ours_s": ours_s, "speedup": base_s / ours_s,
            "ours_from_python_list_s": list_s, "speedup_from_python_list": base_s / list_s,
        })  # fmt: skip
    return rows


def bench_txn_ids(count: int, size: int, repeat: int) -> list[dict[str, Any]]:
    txns = [(i.to_bytes(4, "big") * (size // 4 + 1))[: size - i % 17] for i in range(count)]
    sha256 = hashlib.sha256
    base_s, expected = timed(lambda: [sha256(t).digest() for t in txns], repeat)
    packed, offsets = hashing.pack(txns)
    rows = []
    for impl in _impls():
        hashing.set_sha256_impl(impl)
        ours_s, got = timed(lambda: hashing.digest_many(txns), repeat)
        assert list(got) == expected
        packed_s, _ = timed(lambda: hashing.digest_packed(packed, offsets), repeat)
        rows.append({
            "case": f"ids of {count:,} txns of ~{size} B", "impl": impl,
            "baseline_s": base_s, "ours_s": ours_s, "speedup": base_s / ours_s,
            "ours_prepacked_s": packed_s, "speedup_prepacked": base_s / packed_s,
        })  # fmt: skip
    return rows


def bench_64_byte_rate(count: int, repeat: int) -> list[dict[str, Any]]:
    buf = os.urandom(64 * count)
    msgs = [buf[i * 64 : (i + 1) * 64] for i in range(count)]
    sha256 = hashlib.sha256
    base_s, expected = timed(lambda: [sha256(m).digest() for m in msgs], repeat)
    rows = []
    for impl in _impls():
        hashing.set_sha256_impl(impl)
        ours_s, got = timed(lambda: hashing.digest_fixed(buf, 64), repeat)
        assert got.buffer == b"".join(expected)
        rows.append({
            "case": f"{count:,} hashes of 64 B", "impl": impl,
            "baseline_s": base_s, "ours_s": ours_s, "speedup": base_s / ours_s,
            "baseline_hashes_per_s": count / base_s, "ours_hashes_per_s": count / ours_s,
        })  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, one repeat")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    sizes = (1_000, 10_000) if args.quick else (1_000, 100_000, 1_000_000)
    default_impl = hashing.sha256_impl()
    rows: list[dict[str, Any]] = []
    try:
        for n in sizes:
            rows += bench_merkle(n, repeat)
        rows += bench_txn_ids(10_000, 200, repeat)
        rows += bench_64_byte_rate(100_000 if args.quick else 1_000_000, repeat)
    finally:
        hashing.set_sha256_impl(default_impl)

    print(f"{'case':<34}{'impl':<10}{'hashlib loop':>14}{'ours':>12}{'speedup':>9}")
    for row in rows:
        print(f"{row['case']:<34}{row['impl']:<10}{row['baseline_s'] * 1e3:>11.2f} ms"
              f"{row['ours_s'] * 1e3:>9.2f} ms{row['speedup']:>8.1f}x")  # fmt: skip
    for row in rows:
        if "ours_hashes_per_s" in row:
            print(f"64-byte hashes/s ({row['impl']}): ours {row['ours_hashes_per_s'] / 1e6:.1f} M, "
                  f"hashlib {row['baseline_hashes_per_s'] / 1e6:.2f} M")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "version": __version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "repeat": repeat, "rows": rows,
    }  # fmt: skip
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
