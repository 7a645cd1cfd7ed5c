"""The genesis state: initial settings and identity written as one state update."""

from __future__ import annotations

from collections.abc import Mapping

from trusted_ledger.errors import InvalidInput
from trusted_ledger.state import EMPTY_ROOT, StateStore, StateUpdate


def genesis_update(store: StateStore, *change_sets: Mapping[str, bytes]) -> StateUpdate:
    """One update from the empty state writing every change set (e.g. from
    ``settings_genesis_changes`` and ``identity_genesis_changes``); not committed here."""
    merged: dict[str, bytes | None] = {}
    for changes in change_sets:
        overlap = merged.keys() & changes.keys()
        if overlap:
            raise InvalidInput(f"genesis change sets both write {sorted(overlap)[0]}")
        merged.update(changes)
    return store.update(EMPTY_ROOT, merged)
