"""State proofs: the path from a root to an address proves its value or its absence.

The property tests build random states whose addresses share long prefixes (so paths cross
split labels at every depth) and check that a proof of every present address yields exactly
its value, a proof of every absent address yields None, and that no altered proof passes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.state.conftest import addresses, values
from trusted_ledger.errors import ProofMalformed, ProofRejected
from trusted_ledger.state import EMPTY_ROOT, STATE_NODES_COLUMN_FAMILY, StateStore
from trusted_ledger.state.proofs import prove_address, verify_state_path
from trusted_ledger.storage import MemoryDatabase


def _store_with(state: dict[str, bytes]) -> tuple[StateStore, bytes]:
    store = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    update = store.update(EMPTY_ROOT, dict(state))
    store.commit(update)
    return store, update.root


def _independent_node_hash(encoding: bytes) -> bytes:
    """docs/formats.md §5.4 with hashlib alone."""
    domain = b"trusted-ledger/state-node/v1"
    return hashlib.sha256(bytes([len(domain)]) + domain + encoding).digest()


@settings(max_examples=60, deadline=None)
@given(
    state=st.dictionaries(addresses, values, max_size=24),
    queries=st.lists(addresses, max_size=8),
)
def test_every_address_proves_its_value_or_absence(
    state: dict[str, bytes], queries: list[str]
) -> None:
    store, root = _store_with(state)
    view = store.view(root)
    for address in [*state, *queries]:
        nodes = prove_address(store, root, address)
        assert _independent_node_hash(nodes[0]) == root
        assert verify_state_path(root, address, nodes) == view.get(address)
        assert view.get(address) == state.get(address)


@settings(max_examples=30, deadline=None)
@given(state=st.dictionaries(addresses, values, min_size=1, max_size=16), data=st.data())
def test_no_altered_proof_passes(state: dict[str, bytes], data: st.DataObject) -> None:
    store, root = _store_with(state)
    address = data.draw(st.sampled_from(sorted(state)) | addresses)
    nodes = prove_address(store, root, address)
    truth = state.get(address)
    # Flip one bit anywhere in any node: the proof must fail, never prove something else.
    index = data.draw(st.integers(0, len(nodes) - 1))
    offset = data.draw(st.integers(0, len(nodes[index]) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(nodes[index])
    flipped[offset] ^= 1 << bit
    altered = [*nodes[:index], bytes(flipped), *nodes[index + 1 :]]
    with pytest.raises((ProofRejected, ProofMalformed)):
        verify_state_path(root, address, altered)
    # Dropping the last node, or adding one, fails too.
    if len(nodes) > 1:
        with pytest.raises(ProofRejected):
            verify_state_path(root, address, nodes[:-1])
    with pytest.raises((ProofRejected, ProofMalformed)):
        verify_state_path(root, address, [*nodes, nodes[-1]])
    # And the proof holds for its own address only: another root rejects it.
    with pytest.raises(ProofRejected):
        verify_state_path(hashlib.sha256(root).digest(), address, nodes)
    assert verify_state_path(root, address, nodes) == truth


def test_known_answer_one_leaf() -> None:
    """A state of one address: the root branch with one 35-byte edge, then the leaf."""
    address = "ab" * 35
    store, root = _store_with({address: b"hi"})
    nodes = prove_address(store, root, address)
    leaf = bytes.fromhex("01000000026869")
    assert nodes[1] == leaf
    assert _independent_node_hash(leaf).hex() == (
        "de11e9181057a93d167bd02e1aff25e4711676a017a3285c41ddfa2685665e23"
    )
    branch = b"\x02\x00\x01" + bytes([35]) + bytes.fromhex(address) + _independent_node_hash(leaf)
    assert nodes == [branch, leaf]
    assert root == _independent_node_hash(branch)
    assert verify_state_path(root, address, nodes) == b"hi"
    # An address under the same first byte but off the label is absent: the root alone.
    other = "ab" * 34 + "ac"
    assert prove_address(store, root, other) == [branch]
    assert verify_state_path(root, other, [branch]) is None
    # Claiming absence of the present address by stopping early is refused.
    with pytest.raises(ProofRejected, match="path ends"):
        verify_state_path(root, address, [branch])


def test_empty_state_proves_every_address_absent() -> None:
    store, root = _store_with({})
    assert root == EMPTY_ROOT
    nodes = prove_address(store, root, "00" * 35)
    assert nodes == [bytes.fromhex("020000")]
    assert verify_state_path(root, "00" * 35, nodes) is None


def test_malformed_inputs_are_named() -> None:
    store, root = _store_with({"ab" * 35: b"x"})
    nodes = prove_address(store, root, "ab" * 35)
    with pytest.raises(ProofMalformed, match="address"):
        verify_state_path(root, "AB" * 35, nodes)
    with pytest.raises(ProofMalformed, match="nodes"):
        verify_state_path(root, "ab" * 35, [])
    with pytest.raises(ProofMalformed, match=r"nodes\[1\]"):
        # Re-hash a truncated leaf into its parent: the hash matches, the encoding is bad.
        bad_leaf = nodes[1][:-1]
        parent = nodes[0][:-32] + _independent_node_hash(bad_leaf)
        verify_state_path(_independent_node_hash(parent), "ab" * 35, [parent, bad_leaf])
