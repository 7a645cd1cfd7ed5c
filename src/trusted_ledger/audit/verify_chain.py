"""The chain pass of bundle verification: blocks, hash links, proposers, certificates and
the membership of every height, re-derived from the bundle's state proofs.

Membership rule (docs/formats.md §6.4): height h is decided by the setting
``tl.consensus.members`` in the state after block h - 1, else the bootstrap membership.
The pass starts from the bundle's initial membership (at height 0: the bootstrap, which
every founder must have signed the genesis certificate with), and at each block that may
change the setting (height 0, and any block declaring an output covering its address)
reads the new value from that block's state proof. Heights without such a block keep the
membership before them. Every finding is recorded; the pass never stops at the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trusted_ledger.audit.bundle_format import block_part, certificate_part, membership_part
from trusted_ledger.audit.chain_facts import (
    MEMBERS_ADDRESS,
    members_from_json,
    members_json,
    touches_members,
)
from trusted_ledger.audit.proof_parts import BlockFacts, check_state_proof_part
from trusted_ledger.audit.report import BundleReport
from trusted_ledger.chain.block import Block, BlockHeader, decode_block, decode_header
from trusted_ledger.chain.certificate import CommitCertificate, Membership, decode_certificate
from trusted_ledger.errors import TrustedLedgerError
from trusted_ledger.hashing import sha256
from trusted_ledger.processing.codec import decode_map
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    ChainMember,
    decode_members_setting,
)

Members = tuple[ChainMember, ...]
MANIFEST = "manifest.json"


@dataclass
class ChainView:
    """What the chain pass established, for the trail and anchor pass."""

    blocks: dict[int, Block] = field(default_factory=dict)
    """Blocks that decoded whole (structure, batches, proposer signature)."""
    members_at: dict[int, Members] = field(default_factory=dict)
    keys_of_name: dict[str, set[str]] = field(default_factory=dict)
    """Every key fingerprint each member name held over the bundle's heights."""


@dataclass
class _Walk:
    chain_id: str
    genesis_id: str
    trusted_genesis: bytes | None
    bootstrap: Members | None
    current: Members | None
    previous: tuple[BlockHeader, bytes] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _lenient_header(data: bytes) -> tuple[BlockHeader, bytes] | None:
    """The header of a block that failed to decode, if its header alone decodes: the links
    of the blocks around it can still be checked."""
    if len(data) < 10 or data[:4] != b"TLBK":
        return None
    length = int.from_bytes(data[6:10], "big")
    header_bytes = data[10 : 10 + length]
    try:
        return decode_header(header_bytes), header_bytes
    except TrustedLedgerError:
        return None


def verify_chain(
    report: BundleReport,
    manifest: dict[str, Any],
    parts: dict[str, bytes],
    heights: range,
    trusted_genesis: bytes | None,
) -> ChainView:
    view = ChainView()
    bootstrap = _initial_members(report, manifest, heights)
    walk = _Walk(
        chain_id=str(manifest.get("chain_id", "")),
        genesis_id=str(manifest.get("genesis_block_id", "")),
        trusted_genesis=trusted_genesis,
        bootstrap=bootstrap,
        current=bootstrap,
    )
    if bootstrap is not None:
        walk.history.append({"height": heights.start, "members": members_json(bootstrap)})
    for height in heights:
        _verify_height(report, view, walk, parts, height)
    _compare_history(report, manifest, walk)
    return view


def _initial_members(
    report: BundleReport, manifest: dict[str, Any], heights: range
) -> Members | None:
    try:
        members = members_from_json(manifest.get("initial_members"))
    except ValueError as exc:
        report.add(MANIFEST, "initial_members", str(exc))
        return None
    if heights.start > 0:
        report.notes.append(
            f"the membership of height {heights.start} is taken from the manifest: the blocks "
            "before it are not in the bundle; export from height 0 to re-derive it"
        )
    return members


def _verify_height(
    report: BundleReport, view: ChainView, walk: _Walk, parts: dict[str, bytes], height: int
) -> None:
    name = block_part(height)
    data = parts.get(name)
    if data is None:
        report.add(name, "block", "missing from the bundle", height)
        walk.previous = None
        return
    block: Block | None = None
    try:
        block = decode_block(data)
        header_and_bytes: tuple[BlockHeader, bytes] | None = (block.header, block.header_bytes)
        view.blocks[height] = block
        report.blocks += 1
    except TrustedLedgerError as exc:
        report.add(name, "block", f"does not decode or verify: {exc}", height)
        header_and_bytes = _lenient_header(data)
    members = walk.current
    if members is not None:
        view.members_at[height] = members
        for member in members:
            view.keys_of_name.setdefault(member.name, set()).add(member.fingerprint)
    if header_and_bytes is None:
        walk.previous = None
        return
    header, header_bytes = header_and_bytes
    _check_header(report, walk, name, height, header, header_bytes, members)
    certificate = _check_certificate(report, height, header, header_bytes, members, parts)
    walk.previous = header_and_bytes
    needs_proof = height == 0 or (block is not None and touches_members(block))
    proof_name = membership_part(height)
    if proof_name not in parts:
        if needs_proof:
            why = "genesis" if height == 0 else "it declares an output covering the setting"
            report.add(
                proof_name, "membership", f"missing: block {height} needs one ({why})", height
            )
        return
    if block is not None and not needs_proof:
        report.add(proof_name, "membership", f"block {height} cannot change the setting", height)
        return
    facts = BlockFacts(
        height, header_bytes, None if block is None else block.proposer_signature, certificate
    )
    proven = check_state_proof_part(report, proof_name, parts[proof_name], facts, MEMBERS_ADDRESS)
    if proven is None:
        return
    _apply_membership(report, walk, proof_name, height, proven.value)


def _check_header(
    report: BundleReport,
    walk: _Walk,
    name: str,
    height: int,
    header: BlockHeader,
    header_bytes: bytes,
    members: Members | None,
) -> None:
    block_id = sha256(header_bytes)
    if header.number != height:
        report.add(
            name, "header.number", f"is {header.number}, the part is height {height}", height
        )
    if header.chain_id != walk.chain_id:
        report.add(name, "header.chain_id", f"{header.chain_id!r} is not the manifest's", height)
    if height == 0:
        if block_id.hex() != walk.genesis_id:
            report.add(name, "block_id", "differs from the manifest's genesis_block_id", height)
        if walk.trusted_genesis is not None and block_id != walk.trusted_genesis:
            report.add(name, "block_id", "is not the trusted genesis block id", height)
    previous = walk.previous
    if previous is not None:
        parent_header, parent_bytes = previous
        if header.previous_block_id != sha256(parent_bytes):
            report.add(
                name, "header.previous_block_id",
                f"does not link to block {height - 1} (hash link broken)", height,
            )  # fmt: skip
        if header.timestamp_ms < parent_header.timestamp_ms:
            report.add(name, "header.timestamp_ms", "earlier than its parent's", height)
    if members is not None and header.proposer not in Membership(m.public_key for m in members):
        report.add(
            name, "header.proposer_key",
            f"proposer {header.proposer.fingerprint[:16]} is not a member at height {height}",
            height,
        )  # fmt: skip


def _check_certificate(
    report: BundleReport,
    height: int,
    header: BlockHeader,
    header_bytes: bytes,
    members: Members | None,
    parts: dict[str, bytes],
) -> bytes | None:
    name = certificate_part(height)
    data = parts.get(name)
    if data is None:
        report.add(name, "certificate", "missing from the bundle", height)
        return None
    try:
        certificate = decode_certificate(data)
    except TrustedLedgerError as exc:
        report.add(name, "certificate", f"does not decode: {exc}", height)
        return data
    bound = (certificate.chain_id, certificate.height, certificate.block_id)
    if bound != (header.chain_id, header.number, sha256(header_bytes)):
        report.add(name, "block_id", f"does not bind block {height} of the bundle", height)
        return data
    if members is None:
        return data
    if _votes_verify(report, name, height, certificate, members):
        report.certificates_verified += 1
    return data


def _votes_verify(
    report: BundleReport, name: str, height: int, certificate: CommitCertificate, members: Members
) -> bool:
    try:
        certificate.verify_votes(Membership(m.public_key for m in members))
    except TrustedLedgerError as exc:
        report.add(name, "votes", f"not a quorum of the membership at {height}: {exc}", height)
        return False
    if height == 0:
        voters = {vote.member_fingerprint.hex() for vote in certificate.votes}
        absent = [m.name for m in members if m.fingerprint not in voters]
        if absent:
            report.add(
                name, "votes",
                f"the genesis certificate lacks founders {absent}: every founder signs it",
                height,
            )  # fmt: skip
            return False
    return True


def _apply_membership(
    report: BundleReport, walk: _Walk, name: str, height: int, value: bytes | None
) -> None:
    """The membership from height + 1 on, from the setting's proven value."""
    try:
        text = None if value is None else decode_map(value, "settings record").get(MEMBERS_SETTING)
        if text is not None and not isinstance(text, str):
            raise ValueError("the setting's value is not text")
        following = walk.bootstrap if text is None else decode_members_setting(text)
    except (TrustedLedgerError, ValueError) as exc:
        report.add(name, "value", f"not a usable membership setting: {exc}", height)
        return
    if following is None:
        return
    if height == 0 and text is not None and following != walk.bootstrap:
        report.add(
            MANIFEST, "initial_members",
            "differs from tl.consensus.members in the genesis state", 0,
        )  # fmt: skip
    if following != walk.current:
        walk.history.append({"height": height + 1, "members": members_json(following)})
        report.membership_changes.append(height + 1)
        walk.current = following


def _compare_history(report: BundleReport, manifest: dict[str, Any], walk: _Walk) -> None:
    if walk.current is None:
        return
    if manifest.get("membership_history") != walk.history:
        report.add(
            MANIFEST, "membership_history",
            "differs from the history re-derived from the blocks and membership proofs",
        )  # fmt: skip
    if manifest.get("members") != [member.name for member in walk.current]:
        report.add(MANIFEST, "members", "differs from the re-derived final membership")
