"""The durable pending pool (issue 4): what ``add`` accepted survives a restart, in order;
committed and rejected batches do not come back, whatever point a crash hits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.chain.conftest import CHAIN_ID, GENESIS_MS, GENESIS_STATE
from tests.unit.chain.support import BatchFactory, KvExecutor, SoftwareSigner
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    build_genesis,
)
from trusted_ledger.chain.publisher import PublisherLimits
from trusted_ledger.chain.store import PENDING_CF
from trusted_ledger.errors import InvalidInput, PoolFull
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import Database, MemoryDatabase, RocksDatabase, WriteBatch
from trusted_ledger.txn import Batch, build_batch

LIMITS = PublisherLimits(block_batches_max=3, block_interval_ms=0)


class Durable:
    """A chain node whose database can be closed and opened again (a restart)."""

    def __init__(self, open_db: Callable[[], Database]) -> None:
        self._open_db = open_db
        self.signer = SoftwareSigner()  # a guarded signer: one per chain
        self.db = open_db()
        self.store = ChainStore(self.db, CHAIN_ID)
        initial = self.store.state.update(EMPTY_ROOT, GENESIS_STATE)
        block, certificate = build_genesis(self.signer, CHAIN_ID, initial, GENESIS_MS)
        self.store.commit(block, certificate, initial, {})
        self._attach()

    def _attach(self) -> None:
        self.pool = BatchPool(db=self.db, committed=self.store.batches_committed_among)
        executor = KvExecutor(self.store.state)
        self.publisher = BlockPublisher(self.store, self.pool, executor, self.signer, LIMITS)

    def reopen(self) -> None:
        if not isinstance(self.db, MemoryDatabase):  # a memory database is its own "disk"
            self.db.close()
            self.db = self._open_db()
        self.store = ChainStore(self.db, CHAIN_ID)
        self._attach()

    def publish(self) -> list[str]:
        block = self.publisher.publish(GENESIS_MS + 1)
        return [] if block is None else list(block.batch_ids)


@pytest.fixture(params=["memory", "rocksdb"])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Durable]:
    if request.param == "memory":
        memory = MemoryDatabase(CHAIN_COLUMN_FAMILIES)
        node = Durable(lambda: memory)
    else:
        path = tmp_path / "chain"
        created = [False]

        def open_rocks() -> Database:
            db = RocksDatabase(path, CHAIN_COLUMN_FAMILIES, create=not created[0])
            created[0] = True
            return db

        node = Durable(open_rocks)
    yield node
    node.db.close()


def _ids(batches: list[Batch]) -> list[str]:
    return [b.header_signature for b in batches]


def test_accepted_batches_survive_reopen_in_order(durable: Durable, factory: BatchFactory) -> None:
    batches = [factory.batch(f"set k{i} 1") for i in range(5)]
    for i, batch in enumerate(batches):
        assert durable.pool.add(batch, GENESIS_MS + i)
    assert not durable.pool.add(batches[1], GENESIS_MS)
    size = durable.pool.byte_size
    durable.reopen()
    assert list(durable.pool.pending_ids()) == _ids(batches)
    assert durable.pool.byte_size == size
    assert durable.pool.oldest_added_ms() == 0  # reloaded batches are due at once
    later = factory.batch("set later 1")
    durable.pool.add(later, GENESIS_MS)
    durable.reopen()  # arrival numbers continue after the reloaded ones
    assert list(durable.pool.pending_ids()) == [*_ids(batches), later.header_signature]


def test_committed_batches_are_gone_after_reopen(durable: Durable, factory: BatchFactory) -> None:
    batches = [factory.batch(f"set k{i} 1") for i in range(5)]
    for batch in batches:
        durable.pool.add(batch, GENESIS_MS)
    assert durable.publish() == _ids(batches[:3])
    durable.reopen()
    assert list(durable.pool.pending_ids()) == _ids(batches[3:])
    assert len(list(durable.db.iterate(PENDING_CF))) == 2


def test_commit_deletes_pending_rows_atomically(durable: Durable, factory: BatchFactory) -> None:
    """A crash right after the block's write, before the pool forgets its batches."""
    batches = [factory.batch(f"set k{i} 1") for i in range(4)]
    for batch in batches:
        durable.pool.add(batch, GENESIS_MS)
    durable.pool.remove = lambda batch_ids: None  # type: ignore[method-assign]
    assert durable.publish() == _ids(batches[:3])
    assert len(list(durable.db.iterate(PENDING_CF))) == 1  # deleted by the block's own write
    durable.reopen()
    assert list(durable.pool.pending_ids()) == _ids(batches[3:])


def test_rows_of_committed_batches_are_dropped_on_reload(
    durable: Durable, factory: BatchFactory
) -> None:
    """Rows a block's write did not delete (an older node) are dropped, never re-proposed."""
    batches = [factory.batch(f"set k{i} 1") for i in range(2)]
    for batch in batches:
        durable.pool.add(batch, GENESIS_MS)
    rows = list(durable.db.iterate(PENDING_CF))
    durable.publish()
    for key, value in rows:
        durable.db.put(PENDING_CF, key, value, sync=True)
    durable.reopen()
    assert len(durable.pool) == 0
    assert list(durable.db.iterate(PENDING_CF)) == []


def test_rejected_batches_are_gone_after_reopen(durable: Durable, factory: BatchFactory) -> None:
    batches = [factory.batch(f"set k{i} 1") for i in range(3)]
    for batch in batches:
        durable.pool.add(batch, GENESIS_MS)
    durable.pool.reject(batches[1].header_signature, "bad")
    durable.reopen()
    assert list(durable.pool.pending_ids()) == _ids([batches[0], batches[2]])


def test_bounds_still_refuse_and_reload_keeps_everything(
    durable: Durable, factory: BatchFactory
) -> None:
    batches = [factory.batch(f"set k{i} 1") for i in range(3)]
    for batch in batches:
        durable.pool.add(batch, GENESIS_MS)
    durable.pool.batches_max = 3
    with pytest.raises(PoolFull):
        durable.pool.add(factory.batch("set full 1"), GENESIS_MS)
    assert len(list(durable.db.iterate(PENDING_CF))) == 3  # a refused batch is not written
    durable.reopen()
    assert len(durable.pool) == 3


def test_database_must_have_the_pending_family() -> None:
    with pytest.raises(InvalidInput, match="chain_pending"):
        BatchPool(db=MemoryDatabase(["other"]))


OPS = st.lists(
    st.sampled_from(["add", "add", "add", "readd", "share", "publish", "reject", "reopen"]),
    max_size=25,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
def test_random_sequences_match_a_model(ops: list[str]) -> None:
    factory = BatchFactory()
    memory = MemoryDatabase(CHAIN_COLUMN_FAMILIES)
    node = Durable(lambda: memory)
    model: list[str] = []  # pending ids in arrival order
    committed: set[str] = set()
    committed_transactions: set[str] = set()
    batches: dict[str, Batch] = {}
    for step, op in enumerate(ops):
        if op == "add":
            batch = factory.batch(f"set k{step} 1")
            batches[batch.header_signature] = batch
            assert node.pool.add(batch, GENESIS_MS)
            model.append(batch.header_signature)
        elif op == "readd" and model:
            assert not node.pool.add(batches[model[0]], GENESIS_MS)
        elif op == "share" and model:
            # Another batch carrying a pending batch's transaction (a replay, which
            # execution refuses): the transaction stays pending while either batch is.
            shared = batches[model[-1]].transactions[0]
            own = factory.batch(f"set s{step} 1").transactions[0]
            batch = build_batch(factory.key, [shared, own])
            batches[batch.header_signature] = batch
            assert node.pool.add(batch, GENESIS_MS)
            model.append(batch.header_signature)
        elif op == "publish":
            # The publisher's rule: of the oldest batches, one repeating a transaction that
            # is committed or in an earlier batch of the block is rejected; the rest commit.
            window = model[: LIMITS.block_batches_max]
            kept: list[str] = []
            for batch_id in window:
                ids = {t.header_signature for t in batches[batch_id].transactions}
                if not ids & committed_transactions:
                    kept.append(batch_id)
                    committed_transactions.update(ids)
            published = node.publish()
            assert published == kept
            committed.update(published)
            model = model[len(window) :]
        elif op == "reject" and model:
            node.pool.reject(model.pop(len(model) // 2), "rejected by the test")
        elif op == "reopen":
            node.reopen()
        assert list(node.pool.pending_ids()) == model
        assert not committed & set(node.pool.pending_ids())
        # The transaction index agrees with a scan of what is pending.
        every_transaction = {t.header_signature for b in batches.values() for t in b.transactions}
        pending = {t.header_signature for i in model for t in batches[i].transactions}
        assert node.pool.pending_transactions_among(every_transaction) == pending
    node.reopen()
    assert list(node.pool.pending_ids()) == model
    rows = [key[8:].hex() for key, _ in memory.iterate(PENDING_CF)]
    assert rows == model  # no stale row: nothing lost, nothing duplicated


class CountingDatabase(MemoryDatabase):
    """A memory database that counts synced writes: what an fsync-bound pool pays."""

    def __init__(self) -> None:
        super().__init__(CHAIN_COLUMN_FAMILIES)
        self.synced_writes = 0

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        self.synced_writes += int(sync)
        super().write(batch, sync=sync)


def test_add_many_is_one_synced_write_and_survives_reopen(factory: BatchFactory) -> None:
    db = CountingDatabase()
    pool = BatchPool(db=db)
    batches = [factory.batch(f"set k{i} 1") for i in range(20)]
    assert pool.add_many(batches, GENESIS_MS) == [True] * 20
    assert db.synced_writes == 1
    reloaded = BatchPool(db=db)
    assert list(reloaded.pending_ids()) == [b.header_signature for b in batches]


def test_add_many_reports_repeats_and_already_pending(factory: BatchFactory) -> None:
    pool = BatchPool()
    first, second, third = (factory.batch(f"set k{i} 1") for i in range(3))
    assert pool.add(first, GENESIS_MS)
    assert pool.add_many([first, second, second, third], GENESIS_MS) == [False, True, False, True]
    assert list(pool.pending_ids()) == [b.header_signature for b in (first, second, third)]
    assert len(pool) == 3


def test_add_many_is_all_or_nothing_when_full(factory: BatchFactory) -> None:
    db = CountingDatabase()
    pool = BatchPool(batches_max=3, db=db)
    pool.add(factory.batch("set a 1"), GENESIS_MS)
    writes = db.synced_writes
    batches = [factory.batch(f"set k{i} 1") for i in range(3)]
    with pytest.raises(PoolFull, match="cannot take 3 more"):
        pool.add_many(batches, GENESIS_MS)
    assert len(pool) == 1
    assert db.synced_writes == writes  # nothing written for the refused request
    assert BatchPool(db=db).pending_ids() == pool.pending_ids()
    assert pool.add_many(batches[:2], GENESIS_MS) == [True, True]
