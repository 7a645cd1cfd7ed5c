"""The stored proof vectors (tests/vectors/proofs/proof_vectors.json): every valid proof
verifies with exactly the stored facts, every altered one is refused naming the stored
field, and the generator reproduces the file byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trusted_ledger.chain import Membership
from trusted_ledger.chain.proof_verify import verify_proof
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import ProofMalformed, ProofRejected

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "proofs"
DOCUMENT: dict[str, Any] = json.loads((VECTORS / "proof_vectors.json").read_text())
MEMBERSHIP = Membership(PublicKey.from_spki(bytes.fromhex(key)) for key in DOCUMENT["membership"])
NODE_KEY = PublicKey.from_spki(bytes.fromhex(DOCUMENT["node_key"]))


@pytest.mark.parametrize("name", sorted(DOCUMENT["valid"]))
def test_valid_vectors_prove_their_facts(name: str) -> None:
    vector = DOCUMENT["valid"][name]
    result = verify_proof(vector["proof"], MEMBERSHIP)
    assert result.facts == vector["facts"]
    if name == "audit":
        trusted = verify_proof(vector["proof"], node_key=NODE_KEY).facts
        assert trusted == {**vector["facts"], "key_from_proof": False}


@pytest.mark.parametrize("index", range(len(DOCUMENT["invalid"])))
def test_invalid_vectors_name_the_failing_field(index: int) -> None:
    vector = DOCUMENT["invalid"][index]
    with pytest.raises((ProofRejected, ProofMalformed)) as failure:
        verify_proof(vector["proof"], MEMBERSHIP, NODE_KEY)
    assert isinstance(failure.value, ProofRejected | ProofMalformed)
    assert failure.value.field == vector["field"], (vector["name"], str(failure.value))


def test_generator_reproduces_the_vectors() -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS / "generate_proof_vectors.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
