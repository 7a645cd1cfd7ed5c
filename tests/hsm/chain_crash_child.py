"""Publishes blocks in a loop until killed; used by test_chain_crash.py.

argv: profile token_label key_label guard_path data_dir run_id seed
The PIN comes from $TL_TEST_PIN. ``OPENED`` is printed once the store is open (genesis
follows if the chain is new), ``READY`` before the publishing loop, and
``COMMITTED <number> <block id>`` only after ``ChainStore.commit`` returned, i.e. once the
block was reported committed. Every batch holds one ``incr counter`` transaction, so at any
head the counter equals the number of batches on the chain: a check that state and blocks
were committed together.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from tests.unit.chain.support import BatchFactory, KvExecutor, kv_address
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    CustodyChainSigner,
    build_genesis,
)
from trusted_ledger.custody import CustodySigner, SigningGuard, TokenPool, load_profile
from trusted_ledger.custody.pin import pin_from_env
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import RocksDatabase

CHAIN_ID = "crash-chain"


def now_ms() -> int:
    return int(time.time() * 1000)


def main() -> None:
    profile, token_label, key_label, guard_path, data_dir, run_id, seed = sys.argv[1:8]
    pool = TokenPool(load_profile(profile), token_label, pin_from_env("TL_TEST_PIN"))
    key = pool.key_info(key_label)
    guard = SigningGuard.open(Path(guard_path), key.fingerprint)
    signer = CustodyChainSigner(CustodySigner(pool, key_label, guard=guard))
    store = ChainStore(RocksDatabase(data_dir, CHAIN_COLUMN_FAMILIES, create=True), CHAIN_ID)
    print("OPENED", flush=True)
    if store.head is None:
        initial = store.state.update(EMPTY_ROOT, {kv_address("counter"): b"0"})
        block, certificate = build_genesis(signer, CHAIN_ID, initial, now_ms())
        store.commit(block, certificate, initial, {})
        print(f"COMMITTED 0 {block.id.hex()}", flush=True)
    batch_pool = BatchPool()
    publisher = BlockPublisher(store, batch_pool, KvExecutor(store.state), signer)
    factory = BatchFactory()
    rng = random.Random(int(seed))
    print("READY", flush=True)
    serial = 0
    while True:
        for _ in range(rng.randint(1, 6)):
            serial += 1
            batch_pool.add(factory.batch("incr counter", f"set {run_id}-{serial} x"), now_ms())
        published = publisher.publish(now_ms())
        assert published is not None
        print(f"COMMITTED {published.number} {published.id.hex()}", flush=True)


if __name__ == "__main__":
    main()
