"""The executor's contract: routing, retries, typed failures, bounds, receipts, RocksDB."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from trusted_ledger.errors import (
    FamilyNotServed,
    HandlerLimitExceeded,
    InvalidInput,
    TransactionProcessingFailed,
    UnknownFamily,
    UnsupportedFamilyVersion,
)
from trusted_ledger.processing import (
    BlockExecutor,
    HandlerContext,
    HandlerRegistry,
    ParallelScheduler,
    Scheduler,
    SerialScheduler,
    TransactionHandler,
)
from trusted_ledger.processing.codec import encode_canonical
from trusted_ledger.processing.context import (
    event_attributes_max,
    events_per_transaction_max,
    receipt_data_entries_max,
)
from trusted_ledger.processing.families.intkey import (
    IntkeyHandler,
    intkey_address,
    intkey_payload,
)
from trusted_ledger.state import (
    EMPTY_ROOT,
    STATE_NODES_COLUMN_FAMILY,
    StateStore,
    TransactionContext,
)
from trusted_ledger.storage import MemoryDatabase, RocksDatabase
from trusted_ledger.txn import Transaction, TransactionBuilder, build_batch

from .support import (
    KEYS,
    Chain,
    batch,
    default_registry,
    fresh_store,
    intkey_txn,
    schedulers,
    summary,
    transaction,
)
from .workload import PROBE_ADDRESSES, ProbeHandler


def probe_txn(ops: list[list[str]], inputs: list[str], outputs: list[str]) -> Transaction:
    return transaction(KEYS[0], "probe", encode_canonical({"ops": ops}), inputs, outputs)


def test_registry_lookup_errors_name_what_exists() -> None:
    registry = HandlerRegistry([IntkeyHandler()])
    with pytest.raises(UnknownFamily, match="'xo'") as unknown:
        registry.lookup("xo", "1.0")
    assert "intkey" in str(unknown.value)
    with pytest.raises(UnsupportedFamilyVersion, match=r"supported versions: 1\.0"):
        registry.lookup("intkey", "2.0")
    with pytest.raises(InvalidInput, match="already have a handler"):
        registry.register(IntkeyHandler())


@pytest.mark.parametrize("scheduler", schedulers(), ids=lambda s: s.name)
def test_flaky_handler_is_retried_then_succeeds(scheduler: SerialScheduler) -> None:
    handler = ProbeHandler(flaky_failures=2)
    chain = Chain(fresh_store(), default_registry(handler))
    address = PROBE_ADDRESSES[0]
    execution = chain.run([batch(probe_txn([["write", address]], [], [address]))], scheduler)
    assert execution.batch_results[0].valid
    assert chain.get(address) is not None


@pytest.mark.parametrize("scheduler", schedulers(), ids=lambda s: s.name)
def test_persistent_internal_error_fails_the_block_not_the_transaction(
    scheduler: SerialScheduler,
) -> None:
    handler = ProbeHandler(flaky_failures=100)
    chain = Chain(fresh_store(), default_registry(handler))
    txn = probe_txn([["write", PROBE_ADDRESSES[0]]], [], [PROBE_ADDRESSES[0]])
    blocks = [batch(intkey_txn("set", "a", 1)), batch(txn)]
    with pytest.raises(TransactionProcessingFailed) as failure:
        chain.run(blocks, scheduler)
    assert failure.value.transaction_id == txn.id
    assert handler.flaky_failures == 100 - 4  # one attempt plus three retries
    assert chain.root == EMPTY_ROOT


class _BuggyHandler(TransactionHandler):
    family_name = "buggy"
    family_versions = ("1.0",)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        raise KeyError("a bug")


def test_handler_bug_fails_the_block_with_a_typed_error() -> None:
    chain = Chain(fresh_store(), default_registry(_BuggyHandler()))
    txn = transaction(KEYS[0], "buggy", b"", [], [])
    with pytest.raises(TransactionProcessingFailed, match="KeyError"):
        chain.run([batch(txn)], ParallelScheduler(2))


def test_outputs_outside_the_family_namespace_are_rejected() -> None:
    chain = Chain(fresh_store(), default_registry(ProbeHandler()))
    foreign = intkey_address("a")
    txn = probe_txn([["write", foreign]], [], [foreign])
    result = chain.run_all([batch(txn)]).batch_results[0]
    assert not result.valid and "outside family 'probe'" in (result.reason or "")


def test_receipts_carry_sorted_state_changes_events_and_data() -> None:
    chain = Chain(fresh_store(), default_registry(ProbeHandler()))
    first, second = PROBE_ADDRESSES[3], PROBE_ADDRESSES[1]
    ops = [["write", first], ["delete", second], ["event"]]
    txn = probe_txn(ops, [], [first, second])
    execution = chain.run_all([batch(txn)])
    (receipt,) = execution.receipts
    assert receipt.transaction_id == txn.id
    assert [c.address for c in receipt.state_changes] == [second, first]
    assert receipt.state_changes[0].is_delete and not receipt.state_changes[1].is_delete
    assert [e.event_type for e in receipt.events] == ["probe/seen"]
    assert len(receipt.data) == 1 and len(receipt.data[0]) == 8


def test_too_much_receipt_data_rejects_the_transaction() -> None:
    chain = Chain(fresh_store(), default_registry(ProbeHandler()))
    txn = probe_txn([["event"]] * (receipt_data_entries_max + 1), [], [])
    result = chain.run_all([batch(txn)]).batch_results[0]
    assert not result.valid and "receipt_data_entries_max" in (result.reason or "")


def test_event_bounds() -> None:
    store = fresh_store()
    context = HandlerContext(TransactionContext(store.view(EMPTY_ROOT), [], []))
    for _ in range(events_per_transaction_max):
        context.add_event("t", [("k", "")], b"x")
    with pytest.raises(HandlerLimitExceeded, match="events_per_transaction_max"):
        context.add_event("t")
    fresh = HandlerContext(TransactionContext(store.view(EMPTY_ROOT), [], []))
    with pytest.raises(HandlerLimitExceeded, match="event type"):
        fresh.add_event("")
    with pytest.raises(HandlerLimitExceeded, match="event_attributes_max"):
        fresh.add_event("t", [("k", "v")] * (event_attributes_max + 1))
    assert fresh.events == ()


def test_empty_block_keeps_the_root() -> None:
    chain = Chain(fresh_store(), default_registry())
    execution = chain.run_all([])
    assert execution.state_root == EMPTY_ROOT and execution.batch_results == ()


def test_same_results_over_rocksdb(tmp_path: Path) -> None:
    with RocksDatabase(tmp_path / "db", [STATE_NODES_COLUMN_FAMILY], create=True) as db:
        rocks = Chain(StateStore(db), default_registry())
        memory = Chain(fresh_store(), default_registry())
        blocks = [
            [batch(intkey_txn("set", "a", 1), intkey_txn("set", "b", 2))],
            [batch(intkey_txn("inc", "a", 4)), batch(intkey_txn("dec", "b", 3))],
        ]
        for block in blocks:
            on_rocks = rocks.run_all(block)
            assert summary(on_rocks) == summary(memory.run_all(block))
        assert [r.valid for r in on_rocks.batch_results] == [True, False]


def test_executor_uses_serial_by_default() -> None:
    executor = BlockExecutor(default_registry(), fresh_store())
    assert isinstance(executor.scheduler, SerialScheduler)


class _RendezvousHandler(TransactionHandler):
    """Every call waits until ``parties`` calls are inside ``apply`` at the same time."""

    family_name = "rendezvous"
    family_versions = ("1.0",)

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        self.barrier.wait()  # BrokenBarrierError (a handler bug) if they never overlap


def test_parallel_scheduler_runs_independent_transactions_at_once() -> None:
    handler = _RendezvousHandler(parties=4)
    chain = Chain(fresh_store(), default_registry(handler))
    txns = [transaction(KEYS[0], "rendezvous", bytes([i]), [], []) for i in range(4)]
    execution = chain.run([batch(t) for t in txns], ParallelScheduler(workers=4))
    assert all(r.valid for r in execution.batch_results)


@pytest.mark.parametrize("scheduler", schedulers(), ids=lambda s: s.name)
def test_unserved_family_is_never_a_verdict(scheduler: Scheduler) -> None:
    """A family no handler serves (an external processor not connected) stops the block's
    execution with a transient error instead of rejecting: another node with the processor
    connected would accept the same batch."""
    store = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    executor = BlockExecutor(HandlerRegistry([IntkeyHandler()]), store, scheduler)
    for family, version in (("nosuch", "1.0"), ("intkey", "2.0")):
        address = intkey_address("a")
        builder = TransactionBuilder(KEYS[0], family, version)
        unserved = builder.build(intkey_payload("set", "a", 1), inputs=[address], outputs=[address])
        with pytest.raises(FamilyNotServed):
            executor.execute(EMPTY_ROOT, [build_batch(KEYS[0], [unserved])])
