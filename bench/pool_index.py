"""Admission of a batch that depends on a pending transaction: the pool's transaction index
beside the scan of the whole pool it replaced, in the same run.

    python bench/pool_index.py [--pool 1000,10000,50000] [--lookups 200]

A client that submits a chain of transfers without waiting for each block declares a
dependency on a transaction that is still pending; the API must then ask the pool whether
that transaction is pending (``CommittedOrPendingTransactions``). Before, that was answered
by collecting every transaction id of every pending batch (O(pool)); now the pool keeps a
count per transaction id (O(1) per id). Measured: the time for one such question with the
pool holding N one-transaction batches (the default bound is 50,000), and what keeping the
index costs ``add_many`` (batches of 100, the API's list size). Printed, and written to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

from trusted_ledger.chain import BatchPool
from trusted_ledger.processing.families.intkey import intkey_address, intkey_payload
from trusted_ledger.txn import SigningKey, TransactionBuilder, build_batch


def scan(pool: BatchPool) -> set[str]:
    """The replaced code: every transaction id of every pending batch."""
    everything = pool.candidates(sys.maxsize, sys.maxsize)
    return {t.header_signature for pending in everything for t in pending.batch.transactions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="1000,10000,50000", help="pool sizes, comma-separated")
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(n) for n in args.pool.split(",")]
    key = SigningKey.generate()
    builder = TransactionBuilder(key, "intkey", "1.0")
    started = time.perf_counter()
    batches = []
    for i in range(max(sizes)):
        address = intkey_address(f"k{i}")
        transaction = builder.build(
            intkey_payload("set", f"k{i}", 1), inputs=[address], outputs=[address]
        )
        batches.append(build_batch(key, [transaction]))
    results: dict[str, object] = {
        "signing_s": round(time.perf_counter() - started, 1),
        "host_cores": os.cpu_count(),
        "sizes": {},
    }
    for size in sizes:
        pool = BatchPool(batches_max=size, bytes_max=1 << 40)
        add_started = time.perf_counter()
        for start in range(0, size, 100):
            pool.add_many(batches[start : start + 100], 0)
        add_s = time.perf_counter() - add_started
        wanted = [batches[size // 2].transactions[0].header_signature]
        index_us, scan_us = [], []
        for _ in range(args.lookups):
            t0 = time.perf_counter()
            found = pool.pending_transactions_among(wanted)
            t1 = time.perf_counter()
            assert found == set(wanted)
            index_us.append((t1 - t0) * 1e6)
        for _ in range(max(3, args.lookups // 20)):
            t0 = time.perf_counter()
            found = set(wanted) & scan(pool)
            t1 = time.perf_counter()
            assert found == set(wanted)
            scan_us.append((t1 - t0) * 1e6)
        results["sizes"][str(size)] = {  # type: ignore[index]
            "index_us_p50": round(statistics.median(index_us), 1),
            "scan_us_p50": round(statistics.median(scan_us), 1),
            "add_many_us_per_batch": round(add_s / size * 1e6, 2),
        }
    print(json.dumps(results, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    (out / f"pool_index-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
