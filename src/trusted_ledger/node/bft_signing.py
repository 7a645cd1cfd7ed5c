"""How the BFT driver signs its consensus messages: through the custody guard, into wire bytes.

Every signature goes through the node's ``ChainSigner`` (a ``NodeKeyRing``) at the message's
guard position (height, round, step), so the guard, not this code, is what makes two
different signatures at one position impossible (invariant 3). A refusal is not an error
here: the message is dropped, counted and logged, and the driver neither sends it nor
delivers it back, so the machine never counts a message that was not signed.

A proposal of this node's own block in the round the block was built for reuses the block's
proposer signature: it is the same digest at the same guard position, so one signature and
one audit record serve both, and the guard (which refuses a second proposal signature) is
not asked twice. The driver persists the machine's state before it calls in here.
"""

from __future__ import annotations

from trusted_ledger.chain.block import Block
from trusted_ledger.chain.signing import PURPOSE_BLOCK, PURPOSE_VOTE
from trusted_ledger.consensus import (
    Message,
    Proposal,
    VoteKind,
    VoteMessage,
    message_digest,
    signing_position,
)
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import SigningRefused
from trusted_ledger.node.bft_wire import encode_proposal, encode_vote
from trusted_ledger.node.keyring import NodeKeyRing
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import CONSENSUS_MESSAGES_TOTAL

log = get_logger("node.bft")

PURPOSE_PREVOTE = "prevote"
"""Audit purpose of a prevote: a vote, but never a commit vote, so compliance can tell them
apart in the key-usage trail (precommits use ``chain.signing.PURPOSE_VOTE``)."""

_KIND_NAMES = {VoteKind.PREVOTE: "prevote", VoteKind.PRECOMMIT: "precommit"}


def member_id(key: PublicKey) -> bytes:
    """The consensus id of a member: its key fingerprint's 32 raw bytes."""
    return bytes.fromhex(key.fingerprint)


def kind_name(message: Message) -> str:
    """The message's kind as metrics and logs name it."""
    return "proposal" if isinstance(message, Proposal) else _KIND_NAMES[message.kind]


class MessageSigner:
    """Signs the driver's proposals and votes and encodes them; counts guard refusals."""

    def __init__(self, signer: NodeKeyRing, *, block_bytes_max: int) -> None:
        self._signer = signer
        self._block_bytes_max = block_bytes_max
        self.refusals = 0

    def sign_proposal(
        self,
        chain_id: str,
        proposal: Proposal,
        block_bytes: bytes,
        *,
        executed: Block | None,
        me: bytes,
    ) -> tuple[Proposal, bytes] | None:
        """``proposal`` signed, and its wire bytes carrying ``block_bytes``; None if the
        guard refused. ``executed`` is the proposed block if this node executed it, ``me``
        this node's member id at the proposal's height."""
        signature = self._proposal_signature(chain_id, proposal, executed, me)
        if signature is None:
            return None
        signed = _with_signature(proposal, signature)
        assert isinstance(signed, Proposal)
        data = encode_proposal(chain_id, signed, block_bytes, block_bytes_max=self._block_bytes_max)
        return signed, data

    def sign_vote(self, chain_id: str, vote: VoteMessage) -> tuple[VoteMessage, bytes] | None:
        """``vote`` signed, and its wire bytes; None if the guard refused."""
        purpose = PURPOSE_VOTE if vote.kind is VoteKind.PRECOMMIT else PURPOSE_PREVOTE
        signature = self._sign(message_digest(chain_id, vote), purpose, vote)
        if signature is None:
            return None
        signed = _with_signature(vote, signature)
        assert isinstance(signed, VoteMessage)
        return signed, encode_vote(chain_id, signed)

    def _proposal_signature(
        self, chain_id: str, proposal: Proposal, executed: Block | None, me: bytes
    ) -> bytes | None:
        """Our block's own signature when the proposal is in the round the block was signed
        for (the same digest at the same guard position: one signature, one audit record);
        otherwise (a valid value re-proposed in a later round, or a peer's block we hold as
        valid) a new signature over the block id at (h, r', propose)."""
        if (
            executed is not None
            and executed.header.consensus_round == proposal.round
            and member_id(executed.header.proposer) == me
        ):
            return executed.proposer_signature
        return self._sign(message_digest(chain_id, proposal), PURPOSE_BLOCK, proposal)

    def _sign(self, digest: bytes, purpose: str, message: Message) -> bytes | None:
        try:
            return self._signer.sign(
                digest, purpose=purpose, position=signing_position(message)
            ).raw
        except SigningRefused as exc:
            # The guard is the last line against equivocation (invariant 3): a refused
            # message is dropped, never delivered back, so the machine never counts it.
            self.refusals += 1
            CONSENSUS_MESSAGES_TOTAL.labels(
                direction="out", kind=kind_name(message), result="refused"
            ).inc()
            log.warning(
                "bft.signing_refused",
                kind=kind_name(message),
                height=message.height,
                round=message.round,
                error=str(exc),
            )
            return None


def _with_signature(message: Message, signature: bytes) -> Message:
    if isinstance(message, Proposal):
        return Proposal(
            message.height,
            message.round,
            message.block_id,
            message.valid_round,
            message.proposer,
            signature,
        )
    return VoteMessage(
        message.kind, message.height, message.round, message.block_id, message.voter, signature
    )
