"""The pending batch pool: order, dedup, count and byte bounds, rejection reasons."""

from __future__ import annotations

import pytest

from tests.unit.chain.conftest import GENESIS_MS, Node
from tests.unit.chain.support import BatchFactory
from trusted_ledger.chain import BatchPool, BatchStatus, BatchStatusReport, batch_status
from trusted_ledger.chain import pool as pool_module
from trusted_ledger.errors import InvalidInput, PoolFull


def test_insertion_order_and_dedup(factory: BatchFactory) -> None:
    pool = BatchPool()
    batches = [factory.batch(f"set k{i} 1") for i in range(5)]
    for i, batch in enumerate(batches):
        assert pool.add(batch, i)
    assert not pool.add(batches[2], 99)  # already pending: no second copy, no new age
    assert len(pool) == 5 and pool.oldest_added_ms() == 0
    assert [p.batch for p in pool.candidates(3, 10**9)] == batches[:3]
    pool.remove([batches[0].header_signature, "unknown"])
    assert pool.pending_ids()[0] == batches[1].header_signature
    assert pool.oldest_added_ms() == 1


def test_count_bound_refuses_with_pool_full(factory: BatchFactory) -> None:
    pool = BatchPool(batches_max=2)
    pool.add(factory.batch("set a 1"), 0)
    pool.add(factory.batch("set b 1"), 0)
    with pytest.raises(PoolFull, match="2 batches"):
        pool.add(factory.batch("set c 1"), 0)
    assert len(pool) == 2  # nothing accepted was dropped to make room


def test_byte_bound_counts_encoded_batches(factory: BatchFactory) -> None:
    batch = factory.batch("set a 1")
    size = len(batch.encode())
    pool = BatchPool(bytes_max=2 * size + 10)
    pool.add(batch, 0)
    pool.add(factory.batch("set b 1"), 0)
    assert pool.byte_size == 2 * size
    with pytest.raises(PoolFull):
        pool.add(factory.batch("set c 1"), 0)
    pool.remove([batch.header_signature])
    assert pool.byte_size == size
    pool.add(factory.batch("set c 1"), 0)


def test_candidates_respect_bytes_but_always_offer_one(factory: BatchFactory) -> None:
    pool = BatchPool()
    batches = [factory.batch(f"set k{i} 1") for i in range(3)]
    for batch in batches:
        pool.add(batch, 0)
    size = len(batches[0].encode())
    assert len(pool.candidates(10, 2 * size)) == 2
    assert len(pool.candidates(10, 1)) == 1  # an oversized batch still gets its block
    assert pool.candidates(10, 10**9)[0].size_bytes == size


def test_rejections_keep_reasons_boundedly(
    factory: BatchFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "rejections_kept_max", 2)
    pool = BatchPool()
    batches = [factory.batch(f"set k{i} 1") for i in range(3)]
    for batch in batches:
        pool.add(batch, 0)
    for batch in batches:
        pool.reject(batch.header_signature, f"bad {batch.header_signature[:4]}")
    assert len(pool) == 0 and pool.byte_size == 0
    assert pool.rejection(batches[0].header_signature) is None  # the oldest is forgotten
    assert pool.rejection(batches[2].header_signature) == f"bad {batches[2].header_signature[:4]}"
    pool.add(batches[2], 1)  # resubmitted: pending again, no longer rejected
    assert pool.rejection(batches[2].header_signature) is None
    assert batches[2].header_signature in pool


def test_bounds_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        BatchPool(batches_max=0)


def test_batch_status_combines_chain_and_pool(node: Node, factory: BatchFactory) -> None:
    committed, pending = factory.batch("set a 1"), factory.batch("fail")
    node.pool.add(committed, GENESIS_MS)
    node.pool.add(pending, GENESIS_MS)
    assert batch_status(pending.header_signature, node.store, node.pool).status is (
        BatchStatus.PENDING
    )
    block = node.publisher.publish(GENESIS_MS)
    assert block is not None
    report = batch_status(committed.header_signature, node.store, node.pool)
    assert report == BatchStatusReport(BatchStatus.COMMITTED, block_id=block.id)
    invalid = batch_status(pending.header_signature, node.store, node.pool)
    assert invalid == BatchStatusReport(BatchStatus.INVALID, reason="bad kv payload b'fail'")
    unknown = batch_status("ab" * 64, node.store, node.pool)
    assert unknown.status is BatchStatus.UNKNOWN
