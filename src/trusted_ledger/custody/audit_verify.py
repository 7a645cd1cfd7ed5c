"""Offline verification and export of the key-usage audit trail. Needs no HSM.

The verifier recomputes every record's hash, follows the ``prev`` links and sequence
numbers, and checks every checkpoint: its head matches the record it names, the record
after the head is the node key's "checkpoint" use of exactly that digest, and the
signature verifies under the public key (given by the auditor, or else taken from the
export, in which case the report says so and prints its fingerprint to compare).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from trusted_ledger.custody.audit import (
    GENESIS_PREV,
    checkpoint_digest,
    record_hash,
)
from trusted_ledger.custody.keyspec import PublicKey
from trusted_ledger.errors import AuditTrailInvalid, InvalidInput, VerificationFailed

CSV_COLUMNS = (
    "seq",
    "time_us",
    "kind",
    "key",
    "purpose",
    "digest",
    "position",
    "result",
    "error",
    "latency_us",
    "head_seq",
    "signature",
    "prev",
    "hash",
)
_USE_FIELDS = {
    "kind", "key", "purpose", "digest", "position", "result", "error", "latency_us",
    "seq", "prev", "time_us", "hash",
}  # fmt: skip
_CHECKPOINT_FIELDS = {
    "kind", "head_seq", "head", "key", "algorithm", "public_key", "signature",
    "seq", "prev", "time_us", "hash",
}  # fmt: skip


@dataclass
class AuditReport:
    records: int = 0
    checkpoints: int = 0
    uncovered_records: int = 0  # after the last checkpoint: chained but not yet signed
    checkpoint_keys: set[str] = field(default_factory=set)
    key_from_export: bool = False
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self) -> None:
        if self.problems:
            record, message = self.problems[0]
            extra = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise AuditTrailInvalid(message + extra, record=record)


def verify_trail(lines: Iterable[bytes], trusted_key: PublicKey | None = None) -> AuditReport:
    """Check a JSON Lines trail; every problem is reported with its record number."""
    report = AuditReport(key_from_export=trusted_key is None)
    records: list[dict[str, Any]] = []
    for line_number, line in enumerate(lines):
        record = _parse(line, line_number, report)
        if record is None:
            continue
        expected_seq = len(records)
        if record.get("seq") != expected_seq:
            report.problems.append(
                (line_number, f"sequence number {record.get('seq')!r}: gap or reordering")
            )
        expected_prev = records[-1].get("hash") if records else GENESIS_PREV
        if record.get("prev") != expected_prev:
            report.problems.append((line_number, "prev does not match the previous record"))
        records.append(record)
    last_checkpoint = -1
    for index, record in enumerate(records):
        if record.get("kind") == "checkpoint":
            _check_checkpoint(records, index, trusted_key, report)
            last_checkpoint = index
    report.records = len(records)
    report.uncovered_records = len(records) - 1 - last_checkpoint
    return report


def _parse(line: bytes, line_number: int, report: AuditReport) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        # RecursionError: an edited line nested deeply enough to exhaust the parser's stack.
        report.problems.append((line_number, "line is not JSON (torn or edited)"))
        return None
    if not isinstance(record, dict):
        report.problems.append((line_number, "line is not a JSON object"))
        return None
    seq = line_number  # in a sound trail the line number is the sequence number
    expected = _USE_FIELDS if record.get("kind") == "use" else _CHECKPOINT_FIELDS
    if set(record) != expected:
        report.problems.append((seq, f"fields {sorted(set(record) ^ expected)} wrong"))
    body = {name: value for name, value in record.items() if name != "hash"}
    if record_hash(body) != record.get("hash"):
        report.problems.append((seq, "record hash mismatch: the record was edited"))
    return record


def _check_checkpoint(
    records: list[dict[str, Any]], index: int, trusted_key: PublicKey | None, report: AuditReport
) -> None:
    checkpoint = records[index]
    seq = index
    head_seq = checkpoint.get("head_seq")
    # index >= 2: a checkpoint covers a record before its own use record; a negative
    # head_seq would index the list from its end.
    if not isinstance(head_seq, int) or index < 2 or head_seq != index - 2:
        report.problems.append((seq, f"checkpoint head_seq {head_seq!r} is not seq-2"))
        return
    head = checkpoint.get("head")
    if not isinstance(head, str) or not _is_digest_hex(head):
        report.problems.append((seq, "checkpoint head is not 64 lowercase hex characters"))
        return
    if records[head_seq].get("hash") != head:
        report.problems.append((seq, f"checkpoint head differs from record {head_seq}'s hash"))
        return
    digest = checkpoint_digest(head_seq, head)
    use = records[index - 1]
    if (use.get("purpose"), use.get("digest"), use.get("result")) != (
        "checkpoint",
        digest.hex(),
        "ok",
    ):
        report.problems.append((index - 1, "checkpoint signature has no matching use record"))
    try:
        exported = PublicKey.from_spki(bytes.fromhex(str(checkpoint.get("public_key"))))
        key = trusted_key or exported
        if exported.fingerprint != key.fingerprint or checkpoint.get("key") != key.fingerprint:
            report.problems.append((seq, "checkpoint signed by a key other than the trusted"))
            return
        key.verify(digest, bytes.fromhex(str(checkpoint.get("signature"))))
    except (InvalidInput, VerificationFailed, ValueError) as exc:
        report.problems.append((seq, f"checkpoint signature invalid: {exc}"))
        return
    report.checkpoints += 1
    report.checkpoint_keys.add(key.fingerprint)


def _is_digest_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def export_csv(lines: Iterable[bytes]) -> str:
    """One row per record, for spreadsheets; verification needs the JSON Lines form."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for line in lines:
        record = json.loads(line)
        if record.get("position") is not None:
            record["position"] = "/".join(str(part) for part in record["position"])
        writer.writerow({name: record.get(name, "") for name in CSV_COLUMNS})
    return buffer.getvalue()
