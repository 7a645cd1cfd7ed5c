"""The audit trail's hash chain, checkpoints and offline verification, with a software key
standing in for the node key (the HSM path is covered in tests/hsm)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given
from hypothesis import strategies as st

from trusted_ledger.custody.audit import (
    GENESIS_PREV,
    PURPOSES,
    RESULTS,
    AuditLog,
    CheckpointSignature,
    canonical,
    encode_use_record,
    newest_signed_positions,
    record_hash,
)
from trusted_ledger.custody.audit_verify import export_csv, verify_trail
from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey, normalise_ecdsa
from trusted_ledger.errors import AuditTrailInvalid, HsmUnavailable


class SoftwareNodeKey:
    """Signs checkpoints like CustodySigner does, including the audited use record."""

    def __init__(self, log: AuditLog) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.public = PublicKey.from_spki(
            self.private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.log = log

    def __call__(self, digest: bytes) -> CheckpointSignature:
        der = self.private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        r, s = utils.decode_dss_signature(der)
        raw = normalise_ecdsa(KeyAlgorithm.EC_P256, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        self.log.record_use(
            key_fingerprint=self.public.fingerprint, purpose="checkpoint", digest=digest,
            position=None, result="ok", error=None, latency_us=1,
        )  # fmt: skip
        return CheckpointSignature(
            self.public.fingerprint, "ec-p256", self.public.spki_der, raw.raw
        )


def _fill(path: Path, uses: int, every: int = 4) -> SoftwareNodeKey:
    clock = iter(range(1_700_000_000, 1_800_000_000)).__next__
    log = AuditLog(path, checkpoint_every_records=every, clock=lambda: float(clock()))
    key = SoftwareNodeKey(log)
    log.set_checkpoint_signer(key)
    for i in range(uses):
        log.record_use(
            key_fingerprint=key.public.fingerprint, purpose="vote",
            digest=hashlib.sha256(bytes([i])).digest(),
            position=[i, 0, 1] if i % 2 else None, result="ok", error=None, latency_us=100 + i,
        )  # fmt: skip
    log.close()
    return key


def test_chain_with_checkpoints_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    key = _fill(path, 10)
    lines = path.read_bytes().splitlines()
    report = verify_trail(lines, key.public)
    assert report.ok, report.problems
    # after every 4 records: the checkpoint's own use record, then the checkpoint itself
    assert report.checkpoints == 2
    assert report.records == len(lines) == 10 + 2 * 2
    assert json.loads(lines[5])["head_seq"] == 3
    assert report.uncovered_records == 2
    first = json.loads(lines[0])
    assert first["prev"] == GENESIS_PREV and first["seq"] == 0
    body = {k: v for k, v in first.items() if k != "hash"}
    assert lines[0] == canonical(first)
    assert (
        first["hash"]
        == hashlib.sha256(b"trusted-ledger/audit-record/v1\n" + canonical(body)).hexdigest()
        == record_hash(body)
    )


def test_reopened_log_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    key = _fill(path, 5)
    log = AuditLog(path)
    assert log.next_seq == len(path.read_bytes().splitlines())
    log.record_use(
        key_fingerprint="ab" * 32, purpose="block", digest=bytes(32), position=[1, 2, 3],
        result="error", error="HsmUnavailable", latency_us=5,
    )  # fmt: skip
    log.close()
    assert verify_trail(path.read_bytes().splitlines(), key.public).ok


_FIELD_EDITS = {
    "time_us": 1,
    "key": "00" * 32,
    "purpose": "block",
    "digest": "11" * 32,
    "position": [99, 0, 0],
    "result": "error",
    "error": "X",
    "latency_us": 7,
    "seq": 1000,
    "prev": "22" * 32,
    "kind": "checkpoint",
    "hash": "33" * 32,
}


@pytest.mark.parametrize("field", sorted(_FIELD_EDITS))
def test_editing_any_field_is_detected_at_its_record(tmp_path: Path, field: str) -> None:
    path = tmp_path / "audit.jsonl"
    key = _fill(path, 10)
    lines = path.read_bytes().splitlines()
    target = 7  # a "use" record between checkpoints
    record = json.loads(lines[target])
    assert record["kind"] == "use"
    record[field] = _FIELD_EDITS[field]
    lines[target] = canonical(record)
    report = verify_trail(lines, key.public)
    assert not report.ok
    assert report.problems[0][0] == target, report.problems
    with pytest.raises(AuditTrailInvalid, match=f"record {target}:"):
        report.raise_if_invalid()


def test_removed_record_is_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    key = _fill(path, 10)
    lines = path.read_bytes().splitlines()
    del lines[2]
    report = verify_trail(lines, key.public)
    assert (2, "sequence number 3: gap or reordering") in report.problems


def test_checkpoint_signature_tamper_and_wrong_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    key = _fill(path, 6)
    lines = path.read_bytes().splitlines()
    index = next(i for i, line in enumerate(lines) if b'"kind":"checkpoint"' in line)
    record = json.loads(lines[index])
    signature = bytearray.fromhex(record["signature"])
    signature[10] ^= 1
    record["signature"] = signature.hex()
    body = {k: v for k, v in record.items() if k != "hash"}
    record["hash"] = record_hash(body)  # a careful forger re-hashes ...
    lines[index] = canonical(record)
    tampered = verify_trail(lines, key.public)
    assert any(r == index and "signature invalid" in m for r, m in tampered.problems)
    other = SoftwareNodeKey(AuditLog(tmp_path / "other.jsonl")).public
    wrong_key = verify_trail(path.read_bytes().splitlines(), other)
    assert any("other than the trusted" in m for _, m in wrong_key.problems)
    from_export = verify_trail(path.read_bytes().splitlines())
    assert from_export.ok and from_export.key_from_export
    assert from_export.checkpoint_keys == {key.public.fingerprint}


def test_torn_tail_refuses_to_append(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(path, 3)
    with path.open("ab") as handle:
        handle.write(b'{"seq":')
    with pytest.raises(AuditTrailInvalid, match="torn"):
        AuditLog(path)
    report = verify_trail(path.read_bytes().splitlines())
    assert any("not JSON" in m for _, m in report.problems)


def test_csv_export_has_one_row_per_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(path, 5)
    lines = path.read_bytes().splitlines()
    rows = list(csv.DictReader(io.StringIO(export_csv(lines))))
    assert len(rows) == len(lines)
    assert rows[1]["position"] == "1/0/1" and rows[1]["purpose"] == "vote"
    assert rows[0]["hash"] == json.loads(lines[0])["hash"]


@given(
    digest=st.binary(min_size=32, max_size=32),
    error=st.none() | st.text(max_size=20),
    key=st.text(max_size=70),
    latency=st.integers(0, 10**9),
    position=st.none() | st.lists(st.integers(0, 2**64 - 1), min_size=3, max_size=3),
    purpose=st.sampled_from(PURPOSES),
    result=st.sampled_from(RESULTS),
    seq=st.integers(0, 2**63),
)
def test_fast_use_encoding_equals_canonical(
    digest, error, key, latency, position, purpose, result, seq
) -> None:
    fields = {
        "digest": digest.hex(), "error": error, "key": key, "kind": "use",
        "latency_us": latency, "position": position, "prev": "ab" * 32,
        "purpose": purpose, "result": result, "seq": seq, "time_us": 1_700_000_000_000_000,
    }  # fmt: skip
    line, digest_hex = encode_use_record(
        digest_hex=digest.hex(), error=error, key=key, latency_us=latency, position=position,
        prev="ab" * 32, purpose=purpose, result=result, seq=seq,
        time_us=1_700_000_000_000_000,
    )  # fmt: skip
    assert digest_hex == record_hash(fields)
    assert line == canonical({**fields, "hash": digest_hex}) + b"\n"


def test_failed_checkpoint_keeps_the_record_and_retries(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, checkpoint_every_records=2)
    key = SoftwareNodeKey(log)
    attempts = []

    def flaky(digest: bytes) -> CheckpointSignature:
        attempts.append(digest)
        if len(attempts) == 1:
            raise HsmUnavailable("token lost")
        return key(digest)

    log.set_checkpoint_signer(flaky)
    for i in range(3):
        log.record_use(
            key_fingerprint=key.public.fingerprint, purpose="block", digest=bytes([i]) * 32,
            position=None, result="ok", error=None, latency_us=1,
        )  # fmt: skip
    log.close()
    lines = path.read_bytes().splitlines()
    report = verify_trail(lines, key.public)
    assert report.ok and report.checkpoints == 1 and len(attempts) == 2
    assert [json.loads(line)["kind"] for line in lines] == ["use"] * 4 + ["checkpoint"]


def test_time_based_checkpoint_for_an_idle_node(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    log = AuditLog(
        tmp_path / "audit.jsonl",
        checkpoint_every_records=1000,
        checkpoint_every_s=60,
        clock=lambda: now[0],
    )
    key = SoftwareNodeKey(log)
    log.set_checkpoint_signer(key)
    assert not log.checkpoint_if_due()  # nothing to cover
    log.record_use(
        key_fingerprint=key.public.fingerprint, purpose="handshake", digest=bytes(32),
        position=None, result="ok", error=None, latency_us=3,
    )  # fmt: skip
    now[0] += 59
    assert not log.checkpoint_if_due()
    now[0] += 2
    assert log.checkpoint_if_due()
    assert not log.checkpoint_if_due()  # covered until the next record
    log.close()
    report = verify_trail((tmp_path / "audit.jsonl").read_bytes().splitlines(), key.public)
    assert report.ok and report.checkpoints == 1 and report.uncovered_records == 0


def test_newest_signed_positions_reads_the_tail(tmp_path: Path) -> None:
    """What each key last signed at a guarded position, from the trail's end: the highest
    ``ok`` position and its digest; refusals, errors, other keys and unpositioned uses
    are not evidence; a bounded window reads only the tail."""
    path = tmp_path / "trail.jsonl"
    assert newest_signed_positions(path, ["a" * 64]) == {}  # no trail yet
    log = AuditLog(path, checkpoint_every_records=1_000_000)
    mine, other = "a" * 64, "b" * 64

    def use(key: str, position: list[int] | None, result: str, tag: int) -> None:
        log.record_use(
            key_fingerprint=key, purpose="vote", digest=bytes([tag]) * 32, position=position,
            result=result, error=None if result == "ok" else "X", latency_us=1,
        )  # fmt: skip

    for height in range(1, 200):
        use(mine, [height, 0, 3], "ok", height % 256)
    use(mine, [199, 1, 3], "ok", 7)
    use(mine, [300, 0, 3], "refused", 8)  # refused: never signed
    use(mine, [301, 0, 3], "error", 9)  # the HSM failed: no signature left
    use(mine, None, "ok", 10)  # a handshake or checkpoint: no position
    use(other, [500, 0, 3], "ok", 11)
    log.close()
    found = newest_signed_positions(path, [mine, other, "c" * 64])
    assert found == {mine: ([199, 1, 3], (bytes([7]) * 32).hex()), other: ([500, 0, 3], "0b" * 32)}
    # A window of the last few records still finds the newest; one of none finds nothing.
    record_bytes = len(path.read_bytes().splitlines()[0]) + 1
    assert newest_signed_positions(path, [mine], bytes_max=6 * record_bytes)[mine][0] == [
        199, 1, 3,
    ]  # fmt: skip
    assert newest_signed_positions(path, [mine], bytes_max=3 * record_bytes) == {}
    # A torn last line (the trail's open refuses it) is not read as evidence.
    with path.open("ab") as handle:
        handle.write(b'{"digest":"' + b"0" * 64 + b'","key":"' + mine.encode() + b'","pos')
    assert newest_signed_positions(path, [mine])[mine][0] == [199, 1, 3]
