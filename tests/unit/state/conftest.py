from __future__ import annotations

import pytest
from hypothesis import strategies as st

from trusted_ledger.state import STATE_NODES_COLUMN_FAMILY, StateStore
from trusted_ledger.storage import MemoryDatabase

BASE = bytes(range(100, 135))


def _address(parts: tuple[int, bytes]) -> str:
    shared, tail = parts
    return (BASE[:shared] + bytes(b % 3 for b in tail[shared:])).hex()


# Addresses that share long prefixes with each other often, so that labels get split and
# merged at every depth, down to differing in the last byte only.
addresses = st.tuples(st.integers(0, 35), st.binary(min_size=35, max_size=35)).map(_address)
values = st.binary(max_size=8)


@pytest.fixture
def store() -> StateStore:
    return StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
