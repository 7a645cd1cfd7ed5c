"""``export_bundle``: a node's committed chain, membership history, anchors and trails, as
one self-contained file an auditor verifies offline (``verify_bundle``; docs/formats.md §9).

What goes in is read from the chain store (blocks, certificates, state proofs of the
membership setting and of anchor records) and from the trail files handed in. Nothing is
trusted by the verifier that it can re-derive: the membership history in the manifest is
recomputed from the proofs, the anchors from the blocks' own transactions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trusted_ledger.audit.bundle_format import (
    BUNDLE_FORMAT,
    Part,
    anchor_part,
    block_part,
    canonical_json,
    certificate_part,
    manifest_bytes,
    membership_part,
    trail_part,
    write_container,
)
from trusted_ledger.audit.chain_facts import (
    MEMBERS_ADDRESS,
    anchors_in,
    members_json,
    touches_members,
)
from trusted_ledger.chain.membership import MembershipSchedule, bootstrap_members
from trusted_ledger.chain.proofs import state_proof
from trusted_ledger.chain.store import ChainStore
from trusted_ledger.custody.keyspec import PublicKey
from trusted_ledger.errors import ChainCorrupted, InvalidInput
from trusted_ledger.processing.families.audit_anchor import audit_anchor_address
from trusted_ledger.processing.families.consensus_members import NAME_PATTERN, ChainMember


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    from_height: int
    to_height: int
    parts: int
    membership_proofs: int
    anchor_proofs: int
    trails: tuple[str, ...]
    bytes: int


def check_trail_name(name: str) -> str:
    if len(name) > 64 or not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"trail name {name!r} is not a member name",
            hint="use the member's name as in the membership: 1..64 of [A-Za-z0-9._-]",
        )
    return name


def _range(store: ChainStore, from_height: int, to_height: int | None) -> tuple[int, int]:
    head = store.head
    if head is None:
        raise InvalidInput("the chain is empty: nothing to export", hint="start the node first")
    last = head.number if to_height is None else to_height
    if not 0 <= from_height <= last <= head.number:
        raise InvalidInput(
            f"height range {from_height}..{last} is not within the chain 0..{head.number}",
            hint="choose --from N --to M with 0 <= N <= M <= the head height",
        )
    return from_height, last


def _proof_part(name: str, proof: dict[str, Any] | None) -> Part:
    if proof is None:
        raise ChainCorrupted(f"cannot build {name}: its block is missing")
    return Part(name, canonical_json(proof))


def export_bundle(
    store: ChainStore,
    out: Path,
    *,
    bootstrap: Sequence[ChainMember] | None = None,
    trails: Mapping[str, bytes] | None = None,
    own_trail: bytes | None = None,
    from_height: int = 0,
    to_height: int | None = None,
) -> ExportSummary:
    """Write the bundle of blocks ``from_height..to_height`` (default: to the head).

    ``bootstrap``: the membership the node was started with (the members file; None: the
    genesis proposer alone, as in single mode). ``trails``: member name -> trail bytes.
    ``own_trail``: the exporting node's trail, named after the member whose key it records
    (an entry of ``trails`` of that name wins)."""
    first, last = _range(store, from_height, to_height)
    genesis = store.block_at(0)
    if genesis is None:
        raise ChainCorrupted("block 0 is missing")
    if bootstrap is None:
        bootstrap = bootstrap_members([genesis.header.proposer])
    schedule = MembershipSchedule(store, bootstrap)
    initial = schedule.at(first).members
    history: list[dict[str, Any]] = [{"height": first, "members": members_json(initial)}]
    blocks, certificates, memberships, anchors = [], [], [], []
    current = initial
    for height in range(first, last + 1):
        block_id = store.block_id_at(height)
        data = None if block_id is None else store.block_bytes(block_id)
        certificate = None if block_id is None else store.certificate(block_id)
        if block_id is None or data is None or certificate is None:
            raise ChainCorrupted(f"block {height} or its certificate is missing from the store")
        block = store.block(block_id)
        assert block is not None
        blocks.append(Part(block_part(height), data))
        certificates.append(Part(certificate_part(height), certificate.encode()))
        if height == 0 or touches_members(block):
            proof = state_proof(store, MEMBERS_ADDRESS, height)
            memberships.append(_proof_part(membership_part(height), proof))
        following = schedule.at_root(block.header.state_root).members
        if following != current:
            history.append({"height": height + 1, "members": members_json(following)})
            current = following
        fingerprints = sorted(
            {a.anchor.public_key.fingerprint for a in anchors_in(block) if a.anchor is not None}
        )
        for fingerprint in fingerprints:
            proof = state_proof(store, audit_anchor_address(fingerprint), height)
            anchors.append(_proof_part(anchor_part(height, fingerprint), proof))
    handed = dict(trails or {})
    if own_trail is not None:
        handed.setdefault(trail_owner(own_trail, history), own_trail)
    trail_parts = [
        Part(trail_part(check_trail_name(name)), data) for name, data in sorted(handed.items())
    ]
    parts = [*blocks, *certificates, *memberships, *anchors, *trail_parts]
    genesis_id = genesis.id.hex()
    fields = {
        "format": BUNDLE_FORMAT,
        "chain_id": store.chain_id,
        "genesis_block_id": genesis_id,
        "from_height": first,
        "to_height": last,
        "initial_members": members_json(initial),
        "membership_history": history,
        "members": [member.name for member in current],
    }
    manifest = manifest_bytes(fields, parts)
    write_container(out, manifest, parts)
    return ExportSummary(
        out, first, last, len(parts) + 1, len(memberships), len(anchors),
        tuple(sorted(handed)), out.stat().st_size,
    )  # fmt: skip


def trail_owner(trail: bytes, history: Sequence[dict[str, Any]]) -> str:
    """The member whose key the trail's records name (the last such key: after a rotation
    the node's trail records both its keys, and both belong to the same member)."""
    names = {entry["public_key"]: entry["name"] for step in history for entry in step["members"]}
    by_fingerprint = {
        PublicKey.from_spki(bytes.fromhex(spki)).fingerprint: name for spki, name in names.items()
    }
    for line in reversed(trail.splitlines()):
        try:
            key = json.loads(line).get("key")
        except (ValueError, AttributeError):
            continue
        if key in by_fingerprint:
            return str(by_fingerprint[key])
    raise InvalidInput(
        "the node's own trail records no key of any member in the exported heights",
        hint="name it explicitly with --trail NAME=PATH",
    )
