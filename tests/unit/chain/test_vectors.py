"""The chain formats against known-answer vectors laid out independently of the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trusted_ledger.chain import Membership, decode_block, decode_certificate, decode_header
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import CertificateInvalid

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "chain"
CASES: list[dict[str, Any]] = json.loads((VECTORS / "chain_vectors.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_block_vector_decodes_and_reencodes(case: dict[str, Any]) -> None:
    block = decode_block(bytes.fromhex(case["block"]))
    fields = case["fields"]
    header = block.header
    assert block.id.hex() == case["block_id"]
    assert header.encode().hex() == case["header"] == block.header_bytes.hex()
    assert block.encode().hex() == case["block"]
    assert block.proposer_signature.hex() == case["proposer_signature"]
    assert header.proposer.spki_der.hex() == case["proposer_spki_der"]
    assert header.proposer.algorithm.value == case["proposer_key_algorithm"]
    for name in ("chain_id", "number", "timestamp_ms", "consensus_round", "batch_count"):
        assert getattr(header, name) == fields[name], name
    for name in ("previous_block_id", "state_root", "batch_root"):
        assert getattr(header, name).hex() == fields[name], name
    assert decode_header(bytes.fromhex(case["header"])) == header


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_certificate_vector_verifies_with_a_quorum(case: dict[str, Any]) -> None:
    block = decode_block(bytes.fromhex(case["block"]))
    vector = case["certificate"]
    certificate = decode_certificate(bytes.fromhex(vector["certificate"]))
    assert certificate.encode().hex() == vector["certificate"]
    assert certificate.digest.hex() == vector["vote_digest"]
    members = [PublicKey.from_spki(bytes.fromhex(k)) for k in vector["members_spki_der"]]
    certificate.verify(Membership(members), block)
    # The same three votes are not a quorum of a larger membership (quorum 4 of 5).
    extra = decode_block(bytes.fromhex(CASES[0]["block"])).header.proposer
    with pytest.raises(CertificateInvalid, match="quorum"):
        certificate.verify(Membership([*members, extra]), block)


def test_generator_reproduces_the_vectors() -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS / "generate_chain_vectors.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
