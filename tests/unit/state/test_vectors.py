"""The tree reproduces the published state roots (and node bytes) of tests/vectors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trusted_ledger.state import EMPTY_ROOT, StateStore

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
CASES = json.loads((VECTORS / "state_roots.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_tree_matches_vector(store: StateStore, case: dict[str, object]) -> None:
    state = case["state"]
    assert isinstance(state, dict)
    update = store.update(EMPTY_ROOT, {a: bytes.fromhex(v) for a, v in state.items()})
    assert update.root.hex() == case["root"]
    if "nodes" in case:
        nodes = case["nodes"]
        assert isinstance(nodes, dict)
        written = {k.hex(): v.hex() for k, v in update.node_writes.items()}
        if state:  # the empty root is implicit, never written
            assert written == nodes


def test_vectors_file_is_up_to_date() -> None:
    generator = VECTORS / "generate_state_roots.py"
    done = subprocess.run(
        [sys.executable, str(generator), "--check"], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()


def test_empty_root_is_the_documented_constant() -> None:
    assert EMPTY_ROOT.hex() == "e56b98e24d8638138fbec9ca670ac34e63821128a6f615d04e08d26ae09ab5e4"
