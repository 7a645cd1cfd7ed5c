"""What the chain needs from a node key: the ``ChainSigner`` protocol, and its custody adapter.

In operation every chain signature goes through ``custody.CustodySigner`` (HSM, signing
guard, audit trail); tests may pass any object with the same two members, such as a
``cryptography`` key wrapped in a few lines. Positions put every block signature and every
vote into the guard's (height, round, step) order, so that the guard, not the chain code,
is what makes equivocation impossible (invariant 3).
"""

from __future__ import annotations

from typing import Protocol

from trusted_ledger.custody import CustodySigner, Position, PublicKey, Signature, SigningGuard
from trusted_ledger.errors import InvalidInput

PURPOSE_BLOCK = "block"
"""Audit purpose of a proposer's signature over a block id."""
PURPOSE_VOTE = "vote"
"""Audit purpose of a commit vote."""

STEP_PROPOSE = 1
"""Guard step of a proposal at (height, round): signed before any vote of that round."""
STEP_PREVOTE = 2
"""Reserved for the BFT prevote, so that adding it keeps the order of existing steps."""
STEP_COMMIT_VOTE = 3
"""Guard step of a commit vote: after the proposal of the same (height, round)."""


class ChainSigner(Protocol):
    """A node key that signs 32-byte digests at guarded consensus positions."""

    @property
    def public_key(self) -> PublicKey:
        """The key's public half (its fingerprint names the member in certificates)."""
        ...

    def sign(self, digest: bytes, *, purpose: str, position: Position | None = None) -> Signature:
        """Sign ``digest``; raise ``SigningRefused`` if ``position`` would equivocate."""
        ...


def proposal_position(height: int, consensus_round: int) -> Position:
    return Position(height, consensus_round, STEP_PROPOSE)


def commit_vote_position(height: int, consensus_round: int) -> Position:
    return Position(height, consensus_round, STEP_COMMIT_VOTE)


class CustodyChainSigner:
    """``ChainSigner`` over a ``CustodySigner``; it exists to refuse a signer without a guard."""

    def __init__(self, signer: CustodySigner) -> None:
        if signer.guard is None:
            # Without a guard a crash between two proposals could sign two blocks at one
            # height: refuse to build that node at all.
            raise InvalidInput("a chain signer needs a CustodySigner with a SigningGuard")
        self._signer = signer

    @property
    def public_key(self) -> PublicKey:
        return self._signer.public_key

    @property
    def guard(self) -> SigningGuard:
        """The key's signing guard (node/guard_check.py raises it on evidence)."""
        guard = self._signer.guard
        assert guard is not None  # refused in __init__
        return guard

    def sign(self, digest: bytes, *, purpose: str, position: Position | None = None) -> Signature:
        return self._signer.sign(digest, purpose=purpose, position=position)
