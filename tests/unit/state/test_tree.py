"""The Merkle-radix tree against the independent reference model, and its history."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.state import reference_model
from tests.unit.state.conftest import addresses, values
from trusted_ledger.errors import (
    InvalidAddress,
    InvalidInput,
    StateCorrupted,
    UnknownStateRoot,
)
from trusted_ledger.observability.metrics import REGISTRY
from trusted_ledger.state import (
    EMPTY_ROOT,
    STATE_NODES_COLUMN_FAMILY,
    StateStore,
    decode_node,
    encode_leaf,
    node_hash,
    value_bytes_max,
)
from trusted_ledger.storage import MemoryDatabase, RocksDatabase, WriteBatch

change = st.dictionaries(addresses, st.one_of(st.none(), values), max_size=12)


def apply_model(model: dict[str, bytes], changes: dict[str, bytes | None]) -> None:
    for address, value in changes.items():
        if value is None:
            model.pop(address, None)
        else:
            model[address] = value


@given(blocks=st.lists(change, min_size=1, max_size=6))
def test_roots_match_the_reference_model(blocks: list[dict[str, bytes | None]]) -> None:
    store = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    model: dict[str, bytes] = {}
    root = EMPTY_ROOT
    for changes in blocks:
        update = store.update(root, changes)
        store.commit(update, sync=False)
        apply_model(model, changes)
        root = update.root
        assert root == reference_model.state_root(model)
        view = store.view(root)
        assert list(view.items()) == sorted(model.items())
        for address in changes:
            assert view.get(address) == model.get(address)


@given(state=st.dictionaries(addresses, values, min_size=1, max_size=16), data=st.data())
def test_root_does_not_depend_on_update_order(state: dict[str, bytes], data: st.DataObject) -> None:
    db = MemoryDatabase([STATE_NODES_COLUMN_FAMILY])
    at_once = StateStore(db).update(EMPTY_ROOT, state).root
    shuffled = data.draw(st.permutations(sorted(state)))
    reordered = StateStore(db).update(EMPTY_ROOT, {a: state[a] for a in shuffled}).root
    # One address at a time, in a random order, on uncommitted intermediate roots that only
    # ``pending`` holds (a fresh store each step, so no node cache helps).
    root = EMPTY_ROOT
    pending: dict[bytes, bytes] = {}
    for address in shuffled:
        update = StateStore(db).update(root, {address: state[address]}, pending)
        pending.update(update.node_writes)
        root = update.root
    assert at_once == reordered == root == reference_model.state_root(state)


@given(
    before=st.dictionaries(addresses, values, max_size=10),
    extra=st.dictionaries(addresses, values, min_size=1, max_size=10),
)
def test_deleting_back_gives_the_earlier_root(
    before: dict[str, bytes], extra: dict[str, bytes]
) -> None:
    store = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    first = store.update(EMPTY_ROOT, before)
    store.commit(first)
    added = {a: v for a, v in extra.items() if a not in before}
    grown = store.update(first.root, added)
    store.commit(grown)
    shrunk = store.update(grown.root, dict.fromkeys(added))
    assert shrunk.root == first.root
    emptied = store.update(shrunk.root, dict.fromkeys(before))
    assert emptied.root == EMPTY_ROOT


@given(state=st.dictionaries(addresses, values, max_size=20), prefix_len=st.integers(0, 70))
def test_listing_by_prefix_matches_a_filter(state: dict[str, bytes], prefix_len: int) -> None:
    store = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    update = store.update(EMPTY_ROOT, state)
    view = store.view(update.root, update.node_writes)
    probe = min(state, default="64" * 35)
    for prefix in (probe[:prefix_len], probe[: prefix_len | 1]):  # odd lengths too
        expected = sorted((a, v) for a, v in state.items() if a.startswith(prefix))
        assert list(view.items(prefix)) == expected


@given(
    state=st.dictionaries(addresses, values, max_size=30),
    start=addresses,
    prefix_len=st.integers(0, 4),
)
def test_listing_from_a_start_matches_a_filter(
    state: dict[str, bytes], start: str, prefix_len: int
) -> None:
    """Paging: items from ``start`` (any address, stored or not) equal the filtered list."""
    store = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    update = store.update(EMPTY_ROOT, state)
    view = store.view(update.root, update.node_writes)
    prefix = start[:prefix_len]
    expected = sorted((a, v) for a, v in state.items() if a.startswith(prefix) and a >= start)
    assert list(view.items(prefix, start)) == expected
    for address in state:  # starting exactly at a stored address includes it
        assert next(iter(view.items("", address)))[0] == address


def test_every_old_root_stays_readable(tmp_path: Path) -> None:
    rng = random.Random(7)
    pool = [bytes(rng.randrange(3) for _ in range(35)).hex() for _ in range(40)]
    history: list[tuple[bytes, dict[str, bytes]]] = []
    model: dict[str, bytes] = {}
    with RocksDatabase(tmp_path / "db", [STATE_NODES_COLUMN_FAMILY], create=True) as db:
        store = StateStore(db)
        root = EMPTY_ROOT
        for block in range(12):
            changes = {
                a: (None if rng.random() < 0.3 else b"%d" % block) for a in rng.sample(pool, 8)
            }
            update = store.update(root, changes)
            batch = WriteBatch()
            update.add_to(batch)  # as the chain will: into the block's one atomic batch
            db.write(batch, sync=True)
            apply_model(model, changes)
            root = update.root
            history.append((root, dict(model)))
    with RocksDatabase(tmp_path / "db") as db:  # a fresh store: nothing cached
        store = StateStore(db)
        for old_root, old_state in history:
            view = store.view(old_root)
            assert dict(view.items()) == old_state
            assert all(view.get(a) == old_state.get(a) for a in pool)


def test_uncommitted_update_is_readable_only_with_its_pending_nodes(store: StateStore) -> None:
    address = "00" * 35
    update = store.update(EMPTY_ROOT, {address: b"v"})
    fresh = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    assert fresh.view(update.root, update.node_writes).get(address) == b"v"
    with pytest.raises(UnknownStateRoot, match=r"not in this node's state store"):
        fresh.view(update.root)
    with pytest.raises(UnknownStateRoot):
        fresh.update(update.root, {address: None})


def test_deleting_absent_addresses_changes_nothing(store: StateStore) -> None:
    first = store.update(EMPTY_ROOT, {"01" * 35: b"a", "02" * 35: b"b"})
    store.commit(first)
    again = store.update(first.root, {"01" * 34 + "02": None, "03" * 35: None})
    assert again.root == first.root


def test_bad_updates_are_rejected(store: StateStore) -> None:
    with pytest.raises(InvalidAddress, match=r"needs exactly 70"):
        store.update(EMPTY_ROOT, {"abc": b"v"})
    with pytest.raises(InvalidAddress, match=r"lowercase"):
        store.update(EMPTY_ROOT, {"AB" * 35: b"v"})
    with pytest.raises(InvalidInput, match=r"bytes, not str"):
        store.update(EMPTY_ROOT, {"ab" * 35: "text"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match=r"value_bytes_max"):
        store.update(EMPTY_ROOT, {"ab" * 35: b"x" * (value_bytes_max + 1)})
    with pytest.raises(InvalidInput, match=r"32 bytes"):
        store.view(b"short")


def test_tampered_node_is_detected() -> None:
    db = MemoryDatabase([STATE_NODES_COLUMN_FAMILY])
    store = StateStore(db)
    address = "aa" * 35
    update = store.update(EMPTY_ROOT, {address: b"honest"})
    store.commit(update)
    leaf_key = node_hash(encode_leaf(b"honest"))
    db.put(STATE_NODES_COLUMN_FAMILY, leaf_key, encode_leaf(b"forged"))
    with pytest.raises(StateCorrupted, match=r"another hash"):
        StateStore(db).view(update.root).get(address)
    db.delete(STATE_NODES_COLUMN_FAMILY, leaf_key)
    with pytest.raises(StateCorrupted, match=r"missing.*rebuild"):
        StateStore(db).view(update.root).get(address)


@pytest.mark.parametrize(
    ("encoding", "complaint"),
    [
        (b"", "empty"),
        (b"\x03", "unknown node kind"),
        (b"\x01\x00\x00\x00\x05ab", "says 5 value bytes"),
        (b"\x02\x00\x01", "ends inside"),
        (b"\x02\x00\x01\x00" + b"\x00" * 32, "label of 0 bytes"),
        (b"\x02\x00\x01\x24" + b"\x00" * 68, "label of 36 bytes"),
        (b"\x02\x00\x02" + (b"\x01\x05" + b"\x00" * 32) * 2, "strictly increasing"),
        (b"\x02\x00\x00\x00", "trailing"),
    ],
)
def test_node_decoding_is_strict(encoding: bytes, complaint: str) -> None:
    with pytest.raises(StateCorrupted, match=complaint):
        decode_node(encoding)


def test_updates_are_counted_in_metrics(store: StateStore) -> None:
    before = REGISTRY.get_sample_value("tl_state_nodes_written_total") or 0.0
    update = store.update(EMPTY_ROOT, {"01" * 35: b"a", "02" * 35: b"b"})
    assert len(update.node_writes) == 3  # two leaves and the root
    assert REGISTRY.get_sample_value("tl_state_nodes_written_total") == before + 3
