"""Consistency proofs between two checkpoints of the key-usage audit trail.

A checkpoint (docs/custody.md §8.2) is the node key's signature over (head_seq, head hash).
The proof that a later checkpoint's trail extends an earlier one carries both checkpoint
records and every record from ``earlier.head_seq + 1`` to ``later.head_seq``: re-hashing
those records and following their ``prev`` links leads from the earlier head to the later
one, so no record the earlier checkpoint signed can have been changed, dropped or reordered
since. Both signatures are checked under the node key.

Generation reads the node's own trail file; verification needs the proof document alone.
Layout of the document: docs/formats.md §8.5.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trusted_ledger.custody.audit import checkpoint_digest, record_hash
from trusted_ledger.custody.keyspec import PublicKey
from trusted_ledger.errors import (
    AuditTrailInvalid,
    InvalidInput,
    ProofMalformed,
    ProofRejected,
    RequestInvalid,
    ResourceNotFound,
    VerificationFailed,
)

AUDIT_PROOF_TYPE = "audit-consistency"
PROOF_VERSION = 1
audit_proof_records_max = 100_000
"""Records one proof may carry (~30 MB of JSON): 100 checkpoint intervals at the default
1,000 records; ask for closer checkpoints to prove more."""
audit_line_bytes_max = 64 * 1024
"""Longest trail line read (a record is ~350 bytes)."""

_CHECKPOINT_FIELDS = frozenset(
    {"kind", "head_seq", "head", "key", "algorithm", "public_key", "signature", "seq", "prev",
     "time_us", "hash"}
)  # fmt: skip
_HEX64 = frozenset("0123456789abcdef")
_PROOF_FIELDS = frozenset({"version", "type", "from", "to", "records"})


def _trail_records(path: Path) -> Iterator[dict[str, Any]]:
    """Complete records of the trail file in order; a torn last line (a write in flight)
    is left out."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ResourceNotFound(f"this node has no key-usage audit trail at {path}") from None
    with handle:
        for number, line in enumerate(handle):
            if not line.endswith(b"\n"):
                return
            if len(line) > audit_line_bytes_max:
                raise AuditTrailInvalid(
                    f"audit trail {path}: a line over {audit_line_bytes_max} bytes", record=number
                )
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise AuditTrailInvalid(f"audit trail {path}: not a JSON object", record=number)
            yield record


def build_audit_proof(path: Path, from_seq: int | None, to_seq: int | None) -> dict[str, Any]:
    """The proof between the checkpoint records numbered ``from_seq`` and ``to_seq``.

    Defaults: ``to_seq`` the last checkpoint, ``from_seq`` the checkpoint before it (the same
    one when the trail has a single checkpoint). ``ResourceNotFound`` when a number names no
    checkpoint record; ``RequestInvalid`` when the range is backwards or too long. Two passes
    over the file: the checkpoints first (few), then only the records the proof carries."""
    if from_seq is not None and to_seq is not None and from_seq > to_seq:
        raise RequestInvalid(
            f"{from_seq} is after to_seq {to_seq}",
            parameter="from_seq",
            hint="give the earlier checkpoint first",
        )
    checkpoints: dict[int, dict[str, Any]] = {}
    for record in _trail_records(path):
        if record.get("kind") == "checkpoint" and type(record.get("seq")) is int:
            checkpoints[record["seq"]] = record
            if record["seq"] == to_seq:
                break
    if not checkpoints:
        raise ResourceNotFound("the key-usage audit trail has no checkpoint yet")
    later = _pick(checkpoints, to_seq, "to_seq", max(checkpoints))
    before = [seq for seq in checkpoints if seq < later["seq"]]
    earlier = _pick(checkpoints, from_seq, "from_seq", max(before, default=later["seq"]))
    first, last = earlier["head_seq"] + 1, later["head_seq"]
    if last - first + 1 > audit_proof_records_max:
        raise RequestInvalid(
            f"{last - first + 1} records lie between the checkpoints, at most "
            f"{audit_proof_records_max} per proof",
            parameter="from_seq",
            hint="prove the range in steps between closer checkpoints",
        )
    records: list[dict[str, Any]] = []
    for record in _trail_records(path):
        seq = record.get("seq")
        if type(seq) is int and first <= seq <= last:
            records.append(record)
        if type(seq) is int and seq >= last:
            break
    if len(records) != max(0, last - first + 1):
        raise ResourceNotFound(f"records {first}..{last} are not all in the trail (was it cut?)")
    return {
        "version": PROOF_VERSION,
        "type": AUDIT_PROOF_TYPE,
        "from": earlier,
        "to": later,
        "records": records,
    }


def _pick(
    checkpoints: Mapping[int, dict[str, Any]], seq: int | None, name: str, default: int
) -> dict[str, Any]:
    chosen = checkpoints.get(default if seq is None else seq)
    if chosen is None:
        raise ResourceNotFound(f"{name}: record {seq} is not a checkpoint of this trail")
    return chosen


@dataclass(frozen=True)
class VerifiedAuditRange:
    """What an audit consistency proof established."""

    from_seq: int
    from_head_seq: int
    to_seq: int
    to_head_seq: int
    records: int
    key_fingerprint: str
    key_from_proof: bool
    """True when no trusted key was given: the key inside the proof was used; compare its
    fingerprint with the node key the ledger publishes."""


def verify_audit_proof(
    proof: Mapping[str, Any], trusted_key: PublicKey | None = None
) -> VerifiedAuditRange:
    """Check an audit consistency proof; raises ``ProofMalformed`` / ``ProofRejected``."""
    if set(proof) != _PROOF_FIELDS:
        raise ProofMalformed(
            f"a proof has exactly the fields {sorted(_PROOF_FIELDS)}, got {sorted(proof)}",
            field="proof",
        )
    if (
        type(proof["version"]) is not int  # (True == 1 in Python; not in the format)
        or proof["version"] != PROOF_VERSION
        or proof["type"] != AUDIT_PROOF_TYPE
    ):
        raise ProofMalformed(
            f"want version {PROOF_VERSION} and type {AUDIT_PROOF_TYPE!r}", field="version"
        )
    earlier = _checkpoint(proof.get("from"), "from")
    later = _checkpoint(proof.get("to"), "to")
    records = proof.get("records")
    if not isinstance(records, list) or len(records) > audit_proof_records_max:
        raise ProofMalformed(
            f"a list of at most {audit_proof_records_max} records", field="records"
        )
    key = _check_signature(earlier, "from", trusted_key)
    later_key = _check_signature(later, "to", trusted_key or key)
    assert later_key == key
    if later["seq"] < earlier["seq"]:
        raise ProofRejected("the later checkpoint comes before the earlier one", field="to.seq")
    first, last = earlier["head_seq"] + 1, later["head_seq"]
    if later["seq"] == earlier["seq"] and later != earlier:
        raise ProofRejected("two different checkpoints with one seq", field="to")
    if later["seq"] > earlier["seq"] and last < earlier["seq"]:
        raise ProofRejected(
            "the later checkpoint's head precedes the earlier checkpoint", field="to.head_seq"
        )
    if len(records) != max(0, last - first + 1):
        raise ProofRejected(
            f"{len(records)} records, the checkpoints' heads {first - 1} and {last} need "
            f"{max(0, last - first + 1)}",
            field="records",
        )
    head = _rechain(records, earlier, first)
    if head != later["head"]:
        raise ProofRejected(
            "the records do not chain to the later checkpoint's head", field="to.head"
        )
    return VerifiedAuditRange(
        earlier["seq"], earlier["head_seq"], later["seq"], later["head_seq"], len(records),
        key.fingerprint, trusted_key is None,
    )  # fmt: skip


def _rechain(records: list[Any], earlier: dict[str, Any], first: int) -> str:
    """Re-hash ``records`` from the earlier checkpoint's head; returns the last hash."""
    head: str = earlier["head"]
    for index, record in enumerate(records):
        where = f"records[{index}]"
        if not isinstance(record, dict):
            raise ProofMalformed("not a JSON object", field=where)
        if record.get("seq") != first + index:
            raise ProofRejected(f"seq {record.get('seq')!r}, expected {first + index}", field=where)
        if record.get("prev") != head:
            raise ProofRejected("prev is not the previous record's hash", field=f"{where}.prev")
        body = {name: value for name, value in record.items() if name != "hash"}
        if record_hash(body) != record.get("hash"):
            raise ProofRejected("record hash mismatch: the record was edited", field=where)
        head = record["hash"]
        if record["seq"] == earlier["seq"] and record != earlier:
            raise ProofRejected("differs from the earlier checkpoint record", field=where)
        if record["seq"] == earlier["seq"] - 1:
            _check_checkpoint_use(record, earlier, where)
    return head


def _checkpoint(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != _CHECKPOINT_FIELDS:
        raise ProofMalformed(
            f"a checkpoint record with exactly the fields {sorted(_CHECKPOINT_FIELDS)}",
            field=field,
        )
    if value["kind"] != "checkpoint":
        raise ProofMalformed("kind must be checkpoint", field=f"{field}.kind")
    for name in ("seq", "head_seq"):
        if type(value[name]) is not int or not 0 <= value[name] < 1 << 64:
            raise ProofMalformed("an integer from 0 to 2^64 - 1", field=f"{field}.{name}")
    if value["head_seq"] != value["seq"] - 2:
        raise ProofRejected("head_seq must be seq - 2", field=f"{field}.head_seq")
    for name in ("head", "hash", "prev", "key"):
        text = value[name]
        if not isinstance(text, str) or len(text) != 64 or not set(text) <= _HEX64:
            raise ProofMalformed("64 lowercase hex chars", field=f"{field}.{name}")
    body = {name: item for name, item in value.items() if name != "hash"}
    if record_hash(body) != value["hash"]:
        raise ProofRejected("record hash mismatch: the checkpoint was edited", field=field)
    return value


def _check_signature(
    checkpoint: dict[str, Any], field: str, trusted_key: PublicKey | None
) -> PublicKey:
    for name in ("public_key", "signature"):
        text = checkpoint[name]
        if not isinstance(text, str) or len(text) % 2 or not set(text) <= _HEX64:
            raise ProofMalformed("lowercase hex of whole bytes", field=f"{field}.{name}")
    try:
        exported = PublicKey.from_spki(bytes.fromhex(checkpoint["public_key"]))
        signature = bytes.fromhex(checkpoint["signature"])
    except (InvalidInput, ValueError) as exc:
        raise ProofMalformed(f"not a public key and signature: {exc}", field=field) from None
    key = trusted_key or exported
    if exported != key or checkpoint["key"] != key.fingerprint:
        raise ProofRejected(
            f"signed by key {checkpoint['key'][:16]}, not by the trusted node key "
            f"{key.fingerprint[:16]}",
            field=f"{field}.key",
        )
    if checkpoint["algorithm"] != key.algorithm.value:
        raise ProofRejected(
            f"{checkpoint['algorithm']!r}, the key is {key.algorithm.value}",
            field=f"{field}.algorithm",
        )
    digest = checkpoint_digest(checkpoint["head_seq"], checkpoint["head"])
    try:
        key.verify(digest, signature)
    except (VerificationFailed, InvalidInput) as exc:
        raise ProofRejected(
            f"checkpoint signature invalid: {exc}", field=f"{field}.signature"
        ) from None
    return key


def _check_checkpoint_use(record: dict[str, Any], checkpoint: dict[str, Any], where: str) -> None:
    digest = checkpoint_digest(checkpoint["head_seq"], checkpoint["head"]).hex()
    if (record.get("kind"), record.get("purpose"), record.get("digest"), record.get("result")) != (
        "use",
        "checkpoint",
        digest,
        "ok",
    ):
        raise ProofRejected(
            "the checkpoint's signature has no matching audited use record", field=where
        )
