"""Consistency proofs between checkpoints of a real audit log (a software key stands in for
the node key, as in test_audit.py; the HSM path signs the same digests)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.custody.test_audit import SoftwareNodeKey
from trusted_ledger.chain.proof_verify import verify_proof
from trusted_ledger.custody.audit import AuditLog, record_hash
from trusted_ledger.custody.audit_proof import build_audit_proof, verify_audit_proof
from trusted_ledger.custody.audit_verify import verify_trail
from trusted_ledger.custody.keyspec import KeyAlgorithm
from trusted_ledger.errors import ProofMalformed, ProofRejected, RequestInvalid, ResourceNotFound


def write_trail(path: Path, uses: int, every: int = 5) -> SoftwareNodeKey:
    """A trail of ``uses`` signatures with a checkpoint after every ``every`` records."""
    clock = iter(range(1_700_000_000, 1_800_000_000)).__next__
    log = AuditLog(path, checkpoint_every_records=every, clock=lambda: float(clock()))
    key = SoftwareNodeKey(log)
    log.set_checkpoint_signer(key)
    for i in range(uses):
        log.record_use(
            key_fingerprint=key.public.fingerprint, purpose="vote",
            digest=hashlib.sha256(bytes([i % 256])).digest(), position=[i, 0, 3], result="ok",
            error=None, latency_us=10,
        )  # fmt: skip
    log.close()
    return key


def _checkpoint_seqs(path: Path) -> list[int]:
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    return [r["seq"] for r in records if r["kind"] == "checkpoint"]


@pytest.fixture
def trail(tmp_path: Path) -> tuple[Path, SoftwareNodeKey]:
    path = tmp_path / "key-usage.jsonl"
    key = write_trail(path, 20)
    assert verify_trail(path.read_bytes().splitlines(), key.public).ok
    return path, key


def test_default_proof_spans_the_last_two_checkpoints(trail: tuple[Path, Any]) -> None:
    path, key = trail
    seqs = _checkpoint_seqs(path)
    assert len(seqs) >= 3
    proof = build_audit_proof(path, None, None)
    assert (proof["from"]["seq"], proof["to"]["seq"]) == (seqs[-2], seqs[-1])
    result = verify_audit_proof(proof, key.public)
    assert (result.from_seq, result.to_seq, result.key_from_proof) == (seqs[-2], seqs[-1], False)
    assert result.records == seqs[-1] - seqs[-2]  # head_seq = seq - 2 on both ends
    # Independently: the records are the trail's own lines, re-hashed with hashlib.
    lines = path.read_bytes().splitlines()
    for record in proof["records"]:
        assert json.loads(lines[record["seq"]]) == record
        body = {k: v for k, v in record.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(b"trusted-ledger/audit-record/v1\n" + canonical).hexdigest()
        assert digest == record["hash"]


def test_every_range_of_checkpoints_verifies(trail: tuple[Path, Any]) -> None:
    path, key = trail
    seqs = _checkpoint_seqs(path)
    for i, first in enumerate(seqs):
        for last in seqs[i:]:
            proof = build_audit_proof(path, first, last)
            result = verify_proof(json.loads(json.dumps(proof)), node_key=key.public)
            assert (result.facts["from_seq"], result.facts["to_seq"]) == (first, last)
    untrusted = verify_proof(build_audit_proof(path, seqs[0], seqs[-1]))
    assert untrusted.facts["key_from_proof"] is True
    assert untrusted.facts["key_fingerprint"] == key.public.fingerprint


def test_bad_ranges_are_refused_clearly(trail: tuple[Path, Any], tmp_path: Path) -> None:
    path, _key = trail
    seqs = _checkpoint_seqs(path)
    with pytest.raises(RequestInvalid, match="from_seq"):
        build_audit_proof(path, seqs[1], seqs[0])
    with pytest.raises(ResourceNotFound, match="to_seq: record 3 is not a checkpoint"):
        build_audit_proof(path, None, 3)
    with pytest.raises(ResourceNotFound, match="from_seq"):
        build_audit_proof(path, 1, None)
    with pytest.raises(ResourceNotFound, match="no key-usage audit trail"):
        build_audit_proof(tmp_path / "none.jsonl", None, None)
    empty = tmp_path / "uncheckpointed.jsonl"
    AuditLog(empty).close()
    with pytest.raises(ResourceNotFound, match="no checkpoint"):
        build_audit_proof(empty, None, None)


_UNSIGNED = ("time_us", "prev")
"""Fields of the *later* checkpoint record that nothing signs: its signature covers
(head_seq, head) and no later record is in the proof (docs/formats.md §8.5)."""


def _edit(proof: dict[str, Any], where: str, field: str, value: Any, rehash: bool) -> Any:
    altered = copy.deepcopy(proof)
    record = altered[where] if where in ("from", "to") else altered["records"][int(where)]
    record[field] = value
    if rehash:  # an editor who also fixes the record's own hash
        record["hash"] = record_hash({k: v for k, v in record.items() if k != "hash"})
    return altered


def test_every_edit_is_caught(trail: tuple[Path, Any]) -> None:
    path, key = trail
    seqs = _checkpoint_seqs(path)
    proof = build_audit_proof(path, seqs[0], seqs[-1])
    edits = 0
    for where in ["from", "to", *map(str, range(len(proof["records"])))]:
        record = proof[where] if where in ("from", "to") else proof["records"][int(where)]
        for field, value in record.items():
            if isinstance(value, bool) or value is None:
                changed: Any = "x"
            elif isinstance(value, int):
                changed = value + 1
            elif isinstance(value, list):
                changed = [*value[:-1], value[-1] + 1]
            else:
                changed = value[:-1] + ("0" if value[-1] != "0" else "1")
            for rehash in (False, True):
                if rehash and (field == "hash" or (where == "to" and field in _UNSIGNED)):
                    continue  # restores the record / a field no signature covers (below)
                with pytest.raises((ProofRejected, ProofMalformed)):
                    verify_audit_proof(_edit(proof, where, field, changed, rehash), key.public)
                edits += 1
    assert edits > 100
    # Dropping, duplicating or reordering records breaks the chain.
    for change in (
        lambda r: r[1:],
        lambda r: r[:-1],
        lambda r: [*r[:3], r[2], *r[3:]],
        lambda r: [r[1], r[0], *r[2:]],
    ):
        altered = dict(proof, records=change(proof["records"]))
        with pytest.raises(ProofRejected):
            verify_audit_proof(altered, key.public)


def test_a_trail_signed_by_another_key_is_refused(trail: tuple[Path, Any], tmp_path: Path) -> None:
    path, _key = trail
    other = write_trail(tmp_path / "other.jsonl", 6)
    proof = build_audit_proof(path, None, None)
    with pytest.raises(ProofRejected, match=r"from\.key: signed by key"):
        verify_audit_proof(proof, other.public)
    # Splicing the other trail's later checkpoint onto this one fails its chain or key.
    foreign = build_audit_proof(tmp_path / "other.jsonl", None, None)
    with pytest.raises(ProofRejected):
        verify_audit_proof(dict(proof, to=foreign["to"]))


def _high_s_twin(signature_hex: str) -> str:
    raw = bytes.fromhex(signature_hex)
    s = int.from_bytes(raw[32:], "big")
    order = KeyAlgorithm.EC_P256.curve_order
    return (raw[:32] + (order - s).to_bytes(32, "big")).hex()


def test_what_the_format_forbids_is_refused_even_when_it_would_verify(
    trail: tuple[Path, Any],
) -> None:
    """Found by the explorer's differential sweep: each of these was accepted before. The
    ``to`` checkpoint's own hash is recomputed (nothing in the proof signs it), so only the
    format rule can refuse."""
    path, key = trail
    seqs = _checkpoint_seqs(path)
    proof = build_audit_proof(path, seqs[0], seqs[-1])
    verify_audit_proof(proof, key.public)  # as built: fine
    twin = _high_s_twin(proof["to"]["signature"])
    for altered, field in [
        (dict(proof, extra=1), "proof"),
        (dict(proof, version=True), "version"),
        (_edit(proof, "to", "signature", twin, rehash=True), "to.signature"),
        (_edit(proof, "to", "public_key", proof["to"]["public_key"].upper(), True), "to"),
        (_edit(proof, "to", "signature", proof["to"]["signature"].upper(), True), "to"),
        (_edit(proof, "to", "head_seq", 1 << 64, rehash=True), "to.head_seq"),
    ]:
        with pytest.raises((ProofMalformed, ProofRejected)) as caught:
            verify_audit_proof(altered, key.public)
        assert caught.value.field.startswith(field), (field, caught.value)
