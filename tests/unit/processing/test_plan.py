"""The dependency graph the parallel scheduler runs on, checked edge by edge."""

from __future__ import annotations

from trusted_ledger.processing import BlockPlan
from trusted_ledger.txn import Transaction

from .support import KEYS, batch, transaction
from .workload import PROBE_ADDRESSES, PROBE_NAMESPACE

A, B, C = PROBE_ADDRESSES[0], PROBE_ADDRESSES[1], PROBE_ADDRESSES[4]
GROUP_A = PROBE_NAMESPACE + "aa"  # covers A and B, not C


def _txn(inputs: list[str], outputs: list[str], dependencies: tuple[str, ...] = ()) -> Transaction:
    return transaction(KEYS[0], "probe", b"", inputs, outputs, dependencies=dependencies)


def test_dependencies_follow_declared_overlaps() -> None:
    t0 = _txn([], [A])  # writes A
    t1 = _txn([A], [])  # reads A: after t0
    t2 = _txn([C], [])  # reads C: independent
    t3 = _txn([], [C])  # writes C: after t2, which reads it
    t4 = _txn([], [GROUP_A])  # writes all of group a: after t0 (both write A), t1 (reads A)
    t5 = _txn([B], [], dependencies=(t2.id,))  # reads B (t4 writes it) and names t2
    t6 = _txn([PROBE_NAMESPACE], [])  # reads everything: after every writer
    plan = BlockPlan([batch(t0, t1, t2), batch(t3, t4), batch(t5, t6)])
    assert plan.dependencies() == [(), (0,), (), (2,), (0, 1), (2, 4), (0, 3, 4)]
    assert [list(r) for r in plan.batch_orders] == [[0, 1, 2], [3, 4], [5, 6]]
    assert [(p.batch_index, p.index_in_batch) for p in plan.transactions][4] == (1, 1)


def test_dependency_on_a_later_or_unknown_transaction_is_ignored() -> None:
    later = _txn([], [C])
    first = _txn([], [A], dependencies=(later.id,))
    plan = BlockPlan([batch(first), batch(later)])
    assert plan.dependencies() == [(), ()]
