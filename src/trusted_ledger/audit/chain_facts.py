"""What a verifier reads from a block's own transactions, without executing them.

A transaction can change state only at addresses its header declares as outputs (the
executor refuses any other write), and every batch in a committed block was applied
valid (docs/formats.md §6.3.1). So, from the blocks alone: a block that declares no output
covering the ``tl.consensus.members`` setting's address cannot have changed the membership,
and every ``tl_audit`` transaction in a block is an anchor that was committed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trusted_ledger.chain.block import Block
from trusted_ledger.custody.keyspec import PublicKey
from trusted_ledger.processing.families.audit_anchor import FAMILY_NAME as ANCHOR_FAMILY
from trusted_ledger.processing.families.audit_anchor import AuditAnchor, decode_anchor_payload
from trusted_ledger.processing.families.consensus_members import MEMBERS_SETTING, ChainMember
from trusted_ledger.processing.families.settings import setting_address

MEMBERS_ADDRESS = setting_address(MEMBERS_SETTING)


def touches_members(block: Block) -> bool:
    """Whether some transaction of ``block`` may write the membership setting."""
    return any(
        MEMBERS_ADDRESS.startswith(output)
        for batch in block.batches
        for transaction in batch.transactions
        for output in transaction.header.outputs
    )


@dataclass(frozen=True)
class CommittedAnchor:
    """A ``tl_audit`` transaction in a block: where it is and what it anchors."""

    height: int
    batch: int
    transaction: int
    transaction_id: str
    anchor: AuditAnchor | None
    problem: str | None
    """Why the payload does not decode (never, in a block a quorum committed)."""


def anchors_in(block: Block) -> list[CommittedAnchor]:
    found = []
    for b, batch in enumerate(block.batches):
        for t, transaction in enumerate(batch.transactions):
            if transaction.header.family_name != ANCHOR_FAMILY:
                continue
            try:
                anchor: AuditAnchor | None = decode_anchor_payload(transaction.payload)
                problem = None
            except Exception as exc:  # any decoding failure is reported, never raised
                anchor, problem = None, str(exc)
            found.append(
                CommittedAnchor(block.number, b, t, transaction.header_signature, anchor, problem)
            )
    return found


def member_json(member: ChainMember) -> dict[str, Any]:
    return {"name": member.name, "public_key": member.public_key.spki_der.hex()}


def members_json(members: tuple[ChainMember, ...]) -> list[dict[str, Any]]:
    return [member_json(member) for member in members]


def members_from_json(value: object) -> tuple[ChainMember, ...]:
    """Members as the manifest lists them; ``ValueError`` naming what is wrong."""
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of {name, public_key}")
    members = []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict) or sorted(entry) != ["name", "public_key"]:
            raise ValueError(f"entry {index} must have exactly name and public_key")
        name, key_hex = entry["name"], entry["public_key"]
        if not isinstance(name, str) or not isinstance(key_hex, str) or key_hex != key_hex.lower():
            raise ValueError(f"entry {index}: name and lowercase hex public_key are strings")
        try:
            key = PublicKey.from_spki(bytes.fromhex(key_hex))
        except Exception as exc:
            raise ValueError(f"entry {index}: public_key is not a usable key ({exc})") from None
        members.append(ChainMember(name, key))
    return tuple(members)
