"""On-line backup (``node backup``) of a large chain database, beside a cold copy in the same
run: how long it takes, where the time goes, and what it costs the writes meanwhile.

    python bench/backup.py [--gib G] [--quick] [--cold-cache]

A real RocksDB chain database (the node's options; genesis and a few real blocks) is grown
with G GiB of incompressible values in an extra column family, standing in for state and
blocks. Then, with a writer thread committing small synced write batches all along (as the
publisher does), three measurements:

- ``create_backup`` (node/backup.py): RocksDB checkpoint + trail copy + SHA-256 of every file
  for the manifest + signature, on the same file system (hard links) — split into the
  checkpoint (the only part during which commits wait) and the rest;
- the baseline: ``shutil.copytree`` of the database directory, what a cold backup copies
  (and it needs the node stopped, so its real cost is that downtime);
- ``verify_backup`` of the result (what the offline check and ``node restore`` read);
- a second ``create_backup`` into the same directory, whose unchanged table files keep the
  first backup's hashes (incremental hashing), beside the first.

Reported: seconds for each, MB/s, and the writer's commit latency p50/p99/max while idle and
during each phase. Results are printed and written to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.api.support import ADMIN
from tests.unit.chain.support import SoftwareSigner

from trusted_ledger.chain import CHAIN_COLUMN_FAMILIES, ChainStore, build_genesis
from trusted_ledger.custody import AuditLog
from trusted_ledger.node.backup import create_backup, verify_backup
from trusted_ledger.processing.families import identity as ident
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.storage import RocksDatabase, WriteBatch

FILLER = "bench_filler"
VALUE_BYTES = 16 * 1024
BATCH_VALUES = 256  # 4 MiB per write batch while filling


class Writer(threading.Thread):
    """Commits one small synced write batch after another; records each one's latency."""

    def __init__(self, db: RocksDatabase) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []  # (start, seconds)
        self.serial = 0

    def run(self) -> None:
        while not self.stop.is_set():
            batch = WriteBatch()
            self.serial += 1
            batch.put(FILLER, b"w" + self.serial.to_bytes(8, "big"), os.urandom(512))
            started = time.perf_counter()
            self.db.write(batch, sync=True)
            self.samples.append((started, time.perf_counter() - started))
            time.sleep(0.002)

    def window(self, start: float, end: float) -> dict[str, float]:
        values = sorted(s for t, s in self.samples if start <= t <= end)
        if not values:
            return {"commits": 0}
        return {
            "commits": len(values),
            "p50_ms": round(1000 * statistics.median(values), 2),
            "p99_ms": round(1000 * values[int(0.99 * (len(values) - 1))], 2),
            "max_ms": round(1000 * values[-1], 2),
        }


def build(root: Path, gib: float) -> tuple[RocksDatabase, AuditLog, SoftwareSigner, str]:
    chain_id = "bench-backup"
    signer = SoftwareSigner()
    db = RocksDatabase(root / "chain", (*CHAIN_COLUMN_FAMILIES, FILLER), create=True)
    store = ChainStore(db, chain_id)
    update = genesis_update(store.state, ident.identity_genesis_changes([ADMIN.public_key_hex]))
    genesis = build_genesis(signer, chain_id, update, 1_700_000_000_000)
    store.commit(genesis[0], genesis[1], update, {})
    total = int(gib * (1 << 30))
    written = 0
    key = 0
    while written < total:
        batch = WriteBatch()
        for _ in range(BATCH_VALUES):
            key += 1
            batch.put(FILLER, key.to_bytes(8, "big"), os.urandom(VALUE_BYTES))
        db.write(batch, sync=False)
        written += BATCH_VALUES * VALUE_BYTES
    (root / "audit").mkdir()
    audit = AuditLog(root / "audit" / "key-usage.jsonl")
    for i in range(10_000):  # a trail of some size (10,000 records, ~3.5 MB)
        audit.record_use(
            key_fingerprint=signer.public_key.fingerprint,
            purpose="block",
            digest=i.to_bytes(32, "big"),
            position=[i, 0, 0],
            result="ok",
            error=None,
            latency_us=900,
        )
    return db, audit, signer, chain_id


def drop_caches() -> bool:
    """Empty the page cache (root only), so each phase reads from the disk; False if not."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="database size to back up")
    parser.add_argument("--quick", action="store_true", help="0.25 GiB (a smoke run)")
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="drop the page cache before each phase (root): reads come from the disk",
    )
    args = parser.parse_args()
    gib = 0.25 if args.quick else args.gib
    results: dict[str, Any] = {"gib": gib, "host_cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="tl-bench-backup-", dir="/var/tmp") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        db, audit, signer, chain_id = build(root / "node", gib)
        results["fill_s"] = round(time.perf_counter() - started, 1)
        writer = Writer(db)
        writer.start()
        time.sleep(3)
        idle_end = time.perf_counter()
        results["writes_idle"] = writer.window(idle_end - 3, idle_end)

        results["cold_cache"] = args.cold_cache and drop_caches()
        # The baseline: a cold copy of the live directory's files (a real cold backup would
        # also stop the node for this long).
        t0 = time.perf_counter()
        shutil.copytree(root / "node" / "chain", root / "cold-copy")
        t1 = time.perf_counter()
        results["cold_copy"] = {
            "s": round(t1 - t0, 2),
            "mb_per_s": round(tree_bytes(root / "cold-copy") / 1e6 / (t1 - t0), 1),
            "writes": writer.window(t0, t1),
        }
        shutil.rmtree(root / "cold-copy")

        # create_backup, with the checkpoint timed apart (the write lock is held only then).
        original = db.checkpoint
        spans: dict[str, float] = {}

        def timed_checkpoint(destination: Path) -> None:
            spans["start"] = time.perf_counter()
            original(destination)
            spans["end"] = time.perf_counter()

        db.checkpoint = timed_checkpoint  # type: ignore[method-assign]
        if args.cold_cache:
            drop_caches()
        t0 = time.perf_counter()
        result = create_backup(
            db=db, audit=audit, signer=signer, chain_id=chain_id, into=root / "backups"
        )
        t1 = time.perf_counter()
        db.checkpoint = original  # type: ignore[method-assign]
        size = sum(entry["size"] for entry in result.manifest["files"])
        results["online_backup"] = {
            "s": round(t1 - t0, 2),
            "checkpoint_s": round(spans["end"] - spans["start"], 3),
            "manifest_hashing_and_rest_s": round((t1 - t0) - (spans["end"] - spans["start"]), 2),
            "bytes": size,
            "mb_per_s": round(size / 1e6 / (t1 - t0), 1),
            "writes_during_checkpoint": writer.window(spans["start"], spans["end"]),
            "writes_during_whole_backup": writer.window(t0, t1),
        }

        if args.cold_cache:
            drop_caches()
        t0 = time.perf_counter()
        report = verify_backup(result.path, trusted_keys=[signer.public_key], chain_id=chain_id)
        t1 = time.perf_counter()
        assert report.ok, report.problems
        results["verify_backup"] = {
            "s": round(t1 - t0, 2),
            "mb_per_s": round(size / 1e6 / (t1 - t0), 1),
            "writes": writer.window(t0, t1),
        }
        # The next backup into the same directory (the daily timer's case): table files
        # still the ones of the first backup keep their hashes; only new ones are read.
        if args.cold_cache:
            drop_caches()
        t0 = time.perf_counter()
        again = create_backup(
            db=db, audit=audit, signer=signer, chain_id=chain_id, into=root / "backups"
        )
        t1 = time.perf_counter()
        assert again.reused_from == result.path, again.reused_from
        again_size = sum(entry["size"] for entry in again.manifest["files"])
        results["next_backup_incremental"] = {
            "s": round(t1 - t0, 2),
            "bytes": again_size,
            "hashed_bytes": again.hashed_bytes,
            "writes_during_whole_backup": writer.window(t0, t1),
        }
        t0 = time.perf_counter()
        assert verify_backup(again.path, trusted_keys=[signer.public_key]).ok
        results["next_backup_incremental"]["verify_s"] = round(time.perf_counter() - t0, 2)
        writer.stop.set()
        writer.join()
        db.close()
        audit.close()
    print(json.dumps(results, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    (out / f"backup-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
