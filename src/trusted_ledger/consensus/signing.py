"""What each consensus message signs, and where in the signing guard's order it sits.

The machine never signs (it is sans-I/O); the driver turns a ``SignAndBroadcast`` into a
signature with these two functions: ``message_digest`` (the 32 bytes given to custody) and
``signing_position`` (the guard position, so that the guard refuses a second, different
message at the same height/round/step — invariant 3 — even if this package has a bug).

- A proposal signs its block id. The proposer's block signature in the chain is already a
  signature over the block id at (height, round, ``STEP_PROPOSE``), and the block header binds
  chain id, height and round, so proposal and block signature are one and the same: a
  proposer cannot sign two different blocks at one position, and no extra signature is made.
  ``valid_round`` is not signed: see docs/consensus.md ("What is signed") for why that is safe.
- A prevote signs a digest in its own domain, so that it can never be taken for a commit vote.
- A precommit signs exactly the chain's commit vote (``chain.certificate.vote_digest``): a
  quorum of precommits for a block *is* a ``CommitCertificate``, with no re-signing.

A nil vote signs the all-zero block id. No block has that id (it would be a SHA-256 preimage
of zero), so a nil precommit can never count towards a certificate.
"""

from __future__ import annotations

from trusted_ledger.chain.certificate import vote_digest
from trusted_ledger.chain.wire import encode_chain_id, u32, u64
from trusted_ledger.consensus.types import (
    STEP_PROPOSE,
    Message,
    Proposal,
    VoteKind,
    VoteMessage,
)
from trusted_ledger.custody import Position
from trusted_ledger.errors import InvalidInput
from trusted_ledger.hashing import DIGEST_SIZE, tagged_digest

PREVOTE_DOMAIN = "trusted-ledger/prevote/v1"
NIL_BLOCK_ID = bytes(DIGEST_SIZE)
"""The block id a nil vote signs."""


def _block_id_or_nil(block_id: bytes | None) -> bytes:
    if block_id is None:
        return NIL_BLOCK_ID
    if not isinstance(block_id, bytes) or len(block_id) != DIGEST_SIZE:
        raise InvalidInput(f"a block id is {DIGEST_SIZE} bytes")
    if block_id == NIL_BLOCK_ID:
        # Signing the zero id as a block vote would make it indistinguishable from nil.
        raise InvalidInput("the all-zero block id is reserved for nil votes")
    return block_id


def proposal_digest(chain_id: str, proposal: Proposal) -> bytes:
    """The block id: what the proposer signs in the chain at (height, round, STEP_PROPOSE)."""
    encode_chain_id(chain_id)  # checks the chain id, so a bad one fails here as for votes
    return _block_id_or_nil(proposal.block_id)


def prevote_digest(
    chain_id: str, height: int, consensus_round: int, block_id: bytes | None
) -> bytes:
    """tagged_digest(PREVOTE_DOMAIN, chain id ‖ u64 height ‖ u32 round ‖ block id or 0^32)."""
    body = encode_chain_id(chain_id) + u64(height) + u32(consensus_round)
    return tagged_digest(PREVOTE_DOMAIN, body + _block_id_or_nil(block_id))


def precommit_digest(
    chain_id: str, height: int, consensus_round: int, block_id: bytes | None
) -> bytes:
    """The chain's commit vote digest, so that a precommit quorum is a commit certificate."""
    return vote_digest(chain_id, height, consensus_round, _block_id_or_nil(block_id))


def message_digest(chain_id: str, message: Message) -> bytes:
    """The digest the driver signs (and verifies) for any consensus message."""
    if isinstance(message, Proposal):
        return proposal_digest(chain_id, message)
    if message.kind is VoteKind.PREVOTE:
        return prevote_digest(chain_id, message.height, message.round, message.block_id)
    return precommit_digest(chain_id, message.height, message.round, message.block_id)


def signing_position(message: Message) -> Position:
    """The guard position of ``message``: (height, round, step), step as in ``chain.signing``."""
    if isinstance(message, VoteMessage):
        return Position(message.height, message.round, int(message.kind))
    return Position(message.height, message.round, STEP_PROPOSE)
