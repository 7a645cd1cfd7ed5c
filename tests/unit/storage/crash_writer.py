"""Child process for the crash test: writes numbered batches until it is killed.

Batch i puts its keys into two column families, deletes the first key of batch i - 1 and
records i as the last batch, all in one WriteBatch. After each ``write`` returns it prints
``ack i``; the parent kills it with SIGKILL at a random moment and checks the database.
Run: python crash_writer.py DATA_DIR
"""

from __future__ import annotations

import random
import sys

from trusted_ledger.storage import RocksDatabase, WriteBatch

FAMILIES = ("left", "right", "meta")
LAST_KEY = b"last"


def batch_key(i: int, j: int) -> bytes:
    return b"b%08d/%04d" % (i, j)


def batch_layout(i: int) -> list[tuple[str, bytes, bytes]]:
    """The (family, key, value) puts of batch i, recomputable by the checker."""
    rng = random.Random(i)
    entries = []
    for j in range(rng.randint(2, 40)):
        value = bytes([i % 251, j % 251]) * rng.randint(1, 2048)
        entries.append((FAMILIES[j % 2], batch_key(i, j), value))
    return entries


def build_batch(i: int) -> WriteBatch:
    batch = WriteBatch()
    for cf, key, value in batch_layout(i):
        batch.put(cf, key, value)
    if i > 0:
        batch.delete(FAMILIES[0], batch_key(i - 1, 0))
    batch.put("meta", LAST_KEY, b"%d" % i)
    return batch


def main(data_dir: str) -> None:
    with RocksDatabase(data_dir, FAMILIES, create=True) as db:
        last = db.get("meta", LAST_KEY)
        i = 0 if last is None else int(last) + 1
        print("ready", flush=True)
        while True:
            db.write(build_batch(i), sync=i % 2 == 0)
            print(f"ack {i}", flush=True)
            i += 1


if __name__ == "__main__":
    main(sys.argv[1])
