"""Transaction contexts: declared prefixes authorise access; reads and writes are recorded."""

from __future__ import annotations

import pytest

from trusted_ledger.errors import InvalidAddress, InvalidInput, UndeclaredInput, UndeclaredOutput
from trusted_ledger.state import EMPTY_ROOT, StateStore, StateView, TransactionContext

NS = "1cf126"
A = NS + "aa" * 32
B = NS + "bb" * 32
OTHER = "5b7349" + "aa" * 32


@pytest.fixture
def base(store: StateStore) -> StateView:
    update = store.update(EMPTY_ROOT, {A: b"a0", OTHER: b"o0"})
    store.commit(update)
    return store.view(update.root)


def test_declared_prefix_authorises_every_address_under_it(base: StateView) -> None:
    context = TransactionContext(base, inputs=[NS], outputs=[NS + "b"])
    assert context.get(A) == b"a0"
    assert context.get(B) is None
    context.set(B, b"b1")
    context.delete(NS + "b" + "0" * 63)
    assert context.writes == {B: b"b1", NS + "b" + "0" * 63: None}
    assert context.reads == {A: b"a0", B: None}


def test_undeclared_reads_and_writes_are_refused(base: StateView) -> None:
    context = TransactionContext(base, inputs=[A], outputs=[NS + "a"])
    with pytest.raises(UndeclaredInput, match=r"outside the transaction's declared inputs"):
        context.get(OTHER)
    with pytest.raises(UndeclaredInput):
        context.get(B)  # B is under no input, though in the same namespace
    with pytest.raises(UndeclaredOutput, match=r"declared outputs.*declare this address"):
        context.set(B, b"x")
    with pytest.raises(UndeclaredOutput):
        context.delete(OTHER)
    # An output alone does not allow reading (Sawtooth: reads need inputs).
    writer = TransactionContext(base, inputs=[], outputs=[A])
    with pytest.raises(UndeclaredInput):
        writer.get(A)
    assert context.writes == {} and writer.reads == {}


def test_own_writes_and_prior_writes_are_read_first(base: StateView) -> None:
    prior = {A: None, B: b"from an earlier transaction"}
    context = TransactionContext(base, inputs=[NS], outputs=[NS], prior=prior)
    assert context.get(A) is None  # deleted earlier in the block
    assert context.get(B) == b"from an earlier transaction"
    context.set(A, b"mine")
    assert context.get(A) == b"mine"
    assert context.reads == {A: None, B: b"from an earlier transaction"}
    assert context.get_many([A, B, NS + "cc" * 32]) == {A: b"mine", B: prior[B]}


def test_bad_declarations_and_values(base: StateView) -> None:
    with pytest.raises(InvalidAddress, match=r"lowercase"):
        TransactionContext(base, inputs=["1CF126"], outputs=[])
    with pytest.raises(InvalidInput, match=r"a list of address prefixes"):
        TransactionContext(base, inputs=NS, outputs=[])
    context = TransactionContext(base, inputs=[""], outputs=[""])  # "" covers everything
    with pytest.raises(InvalidAddress, match=r"needs exactly 70"):
        context.get(NS)
    with pytest.raises(InvalidInput, match=r"bytes, not str"):
        context.set(A, "text")  # type: ignore[arg-type]
    assert context.get(OTHER) == b"o0"


def test_merged_contexts_give_the_serial_root(store: StateStore, base: StateView) -> None:
    first = TransactionContext(base, inputs=[NS], outputs=[NS])
    first.set(B, first.get(A) or b"")
    second = TransactionContext(base, inputs=[NS], outputs=[NS], prior=first.writes)
    second.set(A, (second.get(B) or b"") + b"!")
    merged = {**first.writes, **second.writes}
    update = store.update(base.root, merged)
    view = store.view(update.root, update.node_writes)
    assert (view.get(A), view.get(B), view.get(OTHER)) == (b"a0!", b"a0", b"o0")
