"""The consensus messages member nodes exchange: a proposal with its block, and votes.

The byte layout is specified in docs/bft-driver.md ("Wire format"); this module is its one
implementation. Every message has exactly one encoding (fixed field order, big-endian
integers, explicit lengths, no trailing bytes), and decoding is strict: any deviation raises
``MalformedConsensusMessage`` naming the field, before anything is allocated beyond the
declared bounds.

A proposal carries the whole encoded block because peers need the body to re-execute it
(valid(v) in Tendermint). Its block id is not sent separately: it is SHA-256 of the header
bytes inside the block encoding, so a proposal cannot name one id and carry another body.
The block itself is only framed here (magic, version, header); the full ``decode_block``
(batch signatures, Merkle root) is expensive and runs in the driver's worker thread.

Signatures are carried as they are made (64 bytes); *what* is signed is
``consensus.signing``'s business, so the wire format never changes when a digest does.
``valid_round`` is not signed (docs/consensus.md explains why that is safe); -1 is sent as
``0xFFFFFFFF``, a value no real round can take since ``valid_round < round <= 2**32 - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from trusted_ledger.chain.block import (
    BLOCK_MAGIC,
    SIGNATURE_BYTES,
    header_bytes_max,
)
from trusted_ledger.chain.block import (
    FORMAT_VERSION as BLOCK_FORMAT_VERSION,
)
from trusted_ledger.chain.block import (
    block_bytes_max as format_block_bytes_max,
)
from trusted_ledger.chain.certificate import FINGERPRINT_BYTES
from trusted_ledger.chain.wire import Reader, encode_chain_id, u8, u16, u32, u64
from trusted_ledger.consensus import NIL_BLOCK_ID, Proposal, VoteKind, VoteMessage
from trusted_ledger.errors import InvalidInput, MalformedConsensusMessage
from trusted_ledger.hashing import DIGEST_SIZE, sha256

WIRE_MAGIC = b"TLCM"
WIRE_VERSION = 1
KIND_PROPOSAL = 1
"""Message kinds: the guard steps of ``chain.signing`` (propose 1, prevote 2, precommit 3)."""
KIND_PREVOTE = int(VoteKind.PREVOTE)
KIND_PRECOMMIT = int(VoteKind.PRECOMMIT)
NO_VALID_ROUND = 0xFFFF_FFFF
"""``valid_round = -1`` on the wire."""
ROUND_MAX = 0xFFFF_FFFF
HEIGHT_MAX = 2**64 - 1

_BLOCK_FRAME_PREFIX_BYTES = len(BLOCK_MAGIC) + 2 + 4  # magic, u16 version, u32 header length
vote_message_bytes_max = 4 + 2 + 1 + 1 + 64 + 8 + 4 + FINGERPRINT_BYTES + SIGNATURE_BYTES + 32
"""Longest vote: magic, version, kind, chain id (u8 length + 64), height, round, voter,
signature, block id."""


@dataclass(frozen=True, slots=True)
class WireProposal:
    """A decoded proposal and the block bytes it carries (framed, not yet fully decoded)."""

    chain_id: str
    proposal: Proposal
    block_bytes: bytes


@dataclass(frozen=True, slots=True)
class WireVote:
    chain_id: str
    vote: VoteMessage


WireMessage = WireProposal | WireVote


def proposal_message_bytes_max(block_bytes_max: int = format_block_bytes_max) -> int:
    """Longest proposal message carrying a block of at most ``block_bytes_max`` bytes: what a
    transport's frame bound must allow."""
    return (
        4 + 2 + 1 + 1 + 64 + 8 + 4 + FINGERPRINT_BYTES + SIGNATURE_BYTES + 4 + 4 + (block_bytes_max)
    )


def block_id_of(block_bytes: bytes) -> bytes:
    """SHA-256 of the header bytes inside a block encoding (docs/formats.md §6): the id.

    Only the frame is read (magic, version, header length); raises
    ``MalformedConsensusMessage`` if that frame is wrong."""
    reader = Reader(block_bytes, "proposal block", MalformedConsensusMessage)
    reader.expect(BLOCK_MAGIC, "block.magic")
    version = reader.u16("block.format_version")
    if version != BLOCK_FORMAT_VERSION:
        raise reader.fail("block.format_version", f"{version} is not supported")
    size = reader.bounded_length(4, 1, header_bytes_max, "block.header")
    return sha256(reader.take(size, "block.header"))


def _check_common(chain_id: str, height: int, consensus_round: int, sender: bytes) -> bytes:
    if not 0 <= height <= HEIGHT_MAX:
        raise InvalidInput(f"height {height} is outside u64")
    if not 0 <= consensus_round <= ROUND_MAX:
        raise InvalidInput(f"round {consensus_round} is outside u32")
    if len(sender) != FINGERPRINT_BYTES:
        raise InvalidInput(f"a member id is {FINGERPRINT_BYTES} bytes")
    return encode_chain_id(chain_id) + u64(height) + u32(consensus_round) + sender


def _check_signature(signature: bytes) -> bytes:
    if len(signature) != SIGNATURE_BYTES:
        raise InvalidInput(f"a signature is {SIGNATURE_BYTES} bytes, got {len(signature)}")
    return signature


def encode_proposal(
    chain_id: str,
    proposal: Proposal,
    block_bytes: bytes,
    *,
    block_bytes_max: int = format_block_bytes_max,
) -> bytes:
    """A signed proposal with the block it names; the block must hash to its id."""
    if not 1 <= len(block_bytes) <= block_bytes_max:
        raise InvalidInput(f"block of {len(block_bytes)} bytes outside [1, {block_bytes_max}]")
    if block_id_of(block_bytes) != proposal.block_id:
        raise InvalidInput("the block carried is not the block the proposal names")
    if not -1 <= proposal.valid_round < proposal.round:
        raise InvalidInput(f"valid_round {proposal.valid_round} outside [-1, round)")
    valid_round = NO_VALID_ROUND if proposal.valid_round == -1 else proposal.valid_round
    return b"".join((
        WIRE_MAGIC, u16(WIRE_VERSION), u8(KIND_PROPOSAL),
        _check_common(chain_id, proposal.height, proposal.round, proposal.proposer),
        _check_signature(proposal.signature), u32(valid_round), u32(len(block_bytes)),
        block_bytes,
    ))  # fmt: skip


def encode_vote(chain_id: str, vote: VoteMessage) -> bytes:
    """A signed prevote or precommit; a nil vote carries the all-zero block id."""
    if vote.block_id is None:
        block_id = NIL_BLOCK_ID
    elif len(vote.block_id) != DIGEST_SIZE or vote.block_id == NIL_BLOCK_ID:
        raise InvalidInput(f"a vote's block id is {DIGEST_SIZE} non-zero bytes or None")
    else:
        block_id = vote.block_id
    return b"".join((
        WIRE_MAGIC, u16(WIRE_VERSION), u8(int(vote.kind)),
        _check_common(chain_id, vote.height, vote.round, vote.voter),
        _check_signature(vote.signature), block_id,
    ))  # fmt: skip


def decode_message(data: bytes, *, block_bytes_max: int = format_block_bytes_max) -> WireMessage:
    """Parse one consensus message; signatures are not checked (that needs the membership
    and the chain id: the driver's job). Raises ``MalformedConsensusMessage``."""
    if not isinstance(data, bytes):
        raise MalformedConsensusMessage(f"a consensus message is bytes, not {type(data).__name__}")
    if len(data) > proposal_message_bytes_max(block_bytes_max):
        raise MalformedConsensusMessage(
            f"consensus message of {len(data)} bytes exceeds the bound for blocks of "
            f"{block_bytes_max} bytes"
        )
    reader = Reader(data, "consensus message", MalformedConsensusMessage)
    reader.expect(WIRE_MAGIC, "magic")
    version = reader.u16("version")
    if version != WIRE_VERSION:
        raise reader.fail("version", f"{version} is not supported (want {WIRE_VERSION})")
    kind = reader.u8("kind")
    if kind not in (KIND_PROPOSAL, KIND_PREVOTE, KIND_PRECOMMIT):
        raise reader.fail("kind", f"unknown kind {kind}")
    chain_id = reader.chain_id()
    height = reader.u64("height")
    consensus_round = reader.u32("round")
    sender = reader.take(FINGERPRINT_BYTES, "sender")
    signature = reader.take(SIGNATURE_BYTES, "signature")
    if kind == KIND_PROPOSAL:
        raw_valid_round = reader.u32("valid_round")
        valid_round = -1 if raw_valid_round == NO_VALID_ROUND else raw_valid_round
        if valid_round >= consensus_round:
            raise reader.fail("valid_round", f"{valid_round} is not below round {consensus_round}")
        size = reader.bounded_length(4, _BLOCK_FRAME_PREFIX_BYTES + 1, block_bytes_max, "block")
        block_bytes = reader.take(size, "block")
        reader.finish()
        proposal = Proposal(
            height, consensus_round, block_id_of(block_bytes), valid_round, sender, signature
        )
        return WireProposal(chain_id, proposal, block_bytes)
    block_id = reader.take(DIGEST_SIZE, "block_id")
    reader.finish()
    vote = VoteMessage(
        VoteKind(kind),
        height,
        consensus_round,
        None if block_id == NIL_BLOCK_ID else block_id,
        sender,
        signature,
    )
    return WireVote(chain_id, vote)
