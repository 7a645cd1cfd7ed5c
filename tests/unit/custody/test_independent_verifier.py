"""An auditor's verifier written from docs/custody.md section 8 alone (hashlib, json and
cryptography; nothing from trusted_ledger.custody), run on a trail the implementation wrote.
If the document and the code drift apart, this test fails."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tests.unit.custody.test_audit import _fill


def auditor_verify(lines: list[bytes], trusted_spki: bytes) -> list[str]:
    problems = []
    records = []
    for i, line in enumerate(lines):
        record = json.loads(line)
        body = {k: v for k, v in record.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        if line != json.dumps(record, sort_keys=True, separators=(",", ":")).encode():
            problems.append(f"{i}: not canonical")
        digest = hashlib.sha256(b"trusted-ledger/audit-record/v1\n" + canonical.encode())
        if digest.hexdigest() != record["hash"]:
            problems.append(f"{i}: hash")
        if record["seq"] != i or record["prev"] != (records[-1]["hash"] if records else "0" * 64):
            problems.append(f"{i}: chain")
        records.append(record)
    fingerprint = hashlib.sha256(trusted_spki).hexdigest()
    key = serialization.load_der_public_key(trusted_spki)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    for i, record in enumerate(records):
        if record["kind"] != "checkpoint":
            continue
        head_seq = record["head_seq"]
        assert head_seq == i - 2 and record["head"] == records[head_seq]["hash"]
        d = hashlib.sha256(
            b"trusted-ledger/audit-checkpoint/v1\n"
            + head_seq.to_bytes(8, "big")
            + bytes.fromhex(record["head"])
        ).digest()
        use = records[i - 1]
        assert (use["purpose"], use["digest"], use["result"]) == ("checkpoint", d.hex(), "ok")
        assert (
            record["key"]
            == fingerprint
            == hashlib.sha256(bytes.fromhex(record["public_key"])).hexdigest()
        )
        raw = bytes.fromhex(record["signature"])
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        try:
            key.verify(
                utils.encode_dss_signature(r, s), d, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
            )
        except InvalidSignature:
            problems.append(f"{i}: checkpoint signature")
    return problems


def test_auditor_verifier_accepts_the_trail_and_catches_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    node_key = _fill(path, 9, every=3)
    lines = path.read_bytes().splitlines()
    assert sum(b'"kind":"checkpoint"' in line for line in lines) == 3
    assert auditor_verify(lines, node_key.public.spki_der) == []
    edited = json.loads(lines[2])
    edited["purpose"] = "block"
    lines[2] = json.dumps(edited, sort_keys=True, separators=(",", ":")).encode()
    assert auditor_verify(lines, node_key.public.spki_der) == ["2: hash"]
