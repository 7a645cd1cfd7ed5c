"""The trail pass of bundle verification: each member's key-usage trail, and every
``tl_audit`` anchor the blocks carry, against its state proof and the trail it anchors.

A trail is checked as ``audit verify`` checks one (hash chain, sequence numbers, checkpoint
signatures: custody/audit_verify.py), each line must be canonical JSON, and every key that
signed its checkpoints must be a key the member held in the bundle's membership history.
Anchors are re-derived from the blocks' own ``tl_audit`` transactions, so a missing or
extra anchor proof is found; an anchor's ``(head_seq, head_hash)`` must be the hash of the
trail's record ``head_seq``: a trail rewritten or cut after it was anchored disagrees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from trusted_ledger.audit.bundle_format import (
    ANCHORS_DIR,
    TRAILS_DIR,
    anchor_part,
    block_part,
    certificate_part,
)
from trusted_ledger.audit.chain_facts import CommittedAnchor, anchors_in
from trusted_ledger.audit.proof_parts import BlockFacts, check_state_proof_part
from trusted_ledger.audit.report import BundleReport
from trusted_ledger.audit.verify_chain import ChainView
from trusted_ledger.custody.audit import canonical
from trusted_ledger.custody.audit_verify import verify_trail
from trusted_ledger.errors import TrustedLedgerError
from trusted_ledger.processing.families.audit_anchor import (
    AuditAnchor,
    audit_anchor_address,
    decode_anchor_record,
)


@dataclass(frozen=True)
class Trail:
    part: str
    name: str
    records: list[dict[str, Any] | None]
    """Each line parsed (None: not a JSON object), by record number."""


def verify_trails(
    report: BundleReport, parts: dict[str, bytes], view: ChainView
) -> dict[str, Trail]:
    """Check every trail part; returns the trails by checkpoint key fingerprint."""
    by_key: dict[str, Trail] = {}
    for name, data in parts.items():
        if not name.startswith(TRAILS_DIR + "/"):
            continue
        member = name[len(TRAILS_DIR) + 1 :].removesuffix(".jsonl")
        trail, keys = _verify_trail(report, name, member, data)
        held = view.keys_of_name.get(member)
        if held is None:
            report.add(name, "name", f"{member!r} is not a member name in the bundle's history")
        for fingerprint in sorted(keys):
            if held is not None and fingerprint not in held:
                report.add(
                    name, "key",
                    f"checkpoints signed by {fingerprint[:16]}, a key {member} never held "
                    "as a member",
                )  # fmt: skip
            by_key[fingerprint] = trail
    missing = sorted(set(view.keys_of_name) - {p[7:-6] for p in parts if p.startswith("trails/")})
    if missing:
        report.notes.append(
            f"no trail in the bundle for {', '.join(missing)}: their anchors are checked "
            "against the ledger only (pass their trails with --trail NAME=PATH)"
        )
    return by_key


def _verify_trail(
    report: BundleReport, part: str, member: str, data: bytes
) -> tuple[Trail, set[str]]:
    if data and not data.endswith(b"\n"):
        report.add(part, "line", "the last record is torn (no final 0a)")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    records: list[dict[str, Any] | None] = []
    for index, line in enumerate(lines):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if not isinstance(record, dict):
            records.append(None)
            continue
        records.append(record)
        if canonical(record) != line:
            report.add(part, "record", "not in canonical JSON (docs/formats.md §7.1)", index)
    result = verify_trail(lines)
    for index, message in result.problems:
        report.add(part, "record", message, index)
    report.trails[member] = result.records
    return Trail(part, member, records), set(result.checkpoint_keys)


def verify_anchors(
    report: BundleReport, parts: dict[str, bytes], view: ChainView, trails: dict[str, Trail]
) -> None:
    expected: set[str] = set()
    for height, block in sorted(view.blocks.items()):
        latest: dict[str, CommittedAnchor] = {}
        for committed in anchors_in(block):
            if committed.anchor is None:
                report.add(
                    block_part(height), f"batches[{committed.batch}].transactions"
                    f"[{committed.transaction}]", f"tl_audit payload: {committed.problem}", height,
                )  # fmt: skip
                continue
            latest[committed.anchor.public_key.fingerprint] = committed
            _check_anchor(report, view, trails, committed, committed.anchor)
        for fingerprint, committed in sorted(latest.items()):
            name = anchor_part(height, fingerprint)
            expected.add(name)
            _check_anchor_proof(report, parts, block_facts(view, parts, height), name, committed)
    for name in sorted(parts):
        if name.startswith(ANCHORS_DIR + "/") and name not in expected:
            report.add(name, "anchor", "no tl_audit transaction of this key in this block")


def block_facts(view: ChainView, parts: dict[str, bytes], height: int) -> BlockFacts:
    block = view.blocks[height]
    return BlockFacts(
        height, block.header_bytes, block.proposer_signature, parts.get(certificate_part(height))
    )


def _check_anchor(
    report: BundleReport,
    view: ChainView,
    trails: dict[str, Trail],
    committed: CommittedAnchor,
    anchor: AuditAnchor,
) -> None:
    report.anchors_checked += 1
    height = committed.height
    fingerprint = anchor.public_key.fingerprint
    where = anchor_part(height, fingerprint)
    _check_anchor_key(report, view, where, height, fingerprint)
    trail = trails.get(fingerprint)
    if trail is None:
        return
    head_seq = anchor.head_seq
    if head_seq >= len(trail.records):
        report.add(
            trail.part, "records",
            f"truncated: block {height} anchored head_seq {head_seq}, the trail has "
            f"{len(trail.records)} records", head_seq,
        )  # fmt: skip
        return
    record = trail.records[head_seq]
    if record is None or record.get("hash") != anchor.head_hash.hex():
        report.add(
            trail.part, "hash",
            f"rewritten after anchoring: block {height} anchored head_seq {head_seq} with hash "
            f"{anchor.head_hash.hex()[:16]}", head_seq,
        )  # fmt: skip
        return
    report.anchors_matched += 1


def _check_anchor_key(
    report: BundleReport, view: ChainView, where: str, height: int, fingerprint: str
) -> None:
    """The anchoring key must be a member's at ``height``. A key a member held before and
    has rotated away from is reported as a note: the node keeps signing its checkpoints with
    ``custody.key_label`` until its operator switches it to the new key (docs/consortium.md)."""
    members = view.members_at.get(height)
    if members is None or any(m.fingerprint == fingerprint for m in members):
        return
    holder = next(
        (
            member.name
            for at, earlier in sorted(view.members_at.items())
            if at <= height
            for member in earlier
            if member.fingerprint == fingerprint
        ),
        None,
    )
    if holder is not None and any(m.name == holder for m in members):
        report.notes.append(
            f"block {height}: {holder} anchored with its retired key {fingerprint[:16]} (a "
            "member before its rotation; its node still signs checkpoints with it)"
        )
        return
    report.add(
        where, "public_key",
        f"anchored by key {fingerprint[:16]}, not a member's key at height {height}", height,
    )  # fmt: skip


def _check_anchor_proof(
    report: BundleReport,
    parts: dict[str, bytes],
    facts: BlockFacts,
    name: str,
    committed: CommittedAnchor,
) -> None:
    anchor = committed.anchor
    assert anchor is not None
    data = parts.get(name)
    if data is None:
        report.add(name, "anchor", "missing: the block carries this key's anchor", facts.height)
        return
    address = audit_anchor_address(anchor.public_key.fingerprint)
    proven = check_state_proof_part(report, name, data, facts, address)
    if proven is None:
        return
    if proven.value is None:
        report.add(name, "value", "the proof shows no anchor record at the key's address")
        return
    try:
        record = decode_anchor_record(proven.value)
    except TrustedLedgerError as exc:
        report.add(name, "value", f"not an anchor record: {exc}", facts.height)
        return
    if record.anchor != anchor or record.transaction_id != committed.transaction_id:
        report.add(
            name, "value",
            f"the state's anchor record differs from the block's last tl_audit transaction "
            f"of this key ({committed.transaction_id[:16]})", facts.height,
        )  # fmt: skip
