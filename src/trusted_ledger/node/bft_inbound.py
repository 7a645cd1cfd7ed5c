"""Which inbound consensus messages the BFT driver lets reach the machine, and when.

A decoded message reaches the machine only if it is of this chain, its sender is a member
of the current height's membership (a proposal: the proposer of its round) and its signature
verifies under that member's key; anything else is dropped and counted under the reason
``authenticate`` names. The machine never sees an unauthenticated message, so its quorum
counting can trust the sender ids.

Whether a message counts depends on the membership of its height, and the membership of
height h+1 is known only once h is committed (chain/membership.py: it is read from the state
h+1 builds on). So a message of the next height from a sender outside the current membership
cannot be judged yet: ``DeferredMessages`` keeps it, raw, and the driver feeds it in again at
the new height, where it is checked against the right membership. That way a member added at
h+1 is heard from its first message. Next-height messages the machine buffers itself are kept
too, for the case that this node's own identity changes at that height and a new machine
replaces the old one. The store is bounded in messages and bytes; a message that does not fit
is dropped, which costs at most a re-send (the sender re-broadcasts its current round).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from trusted_ledger.consensus import Consensus, Message, Proposal, message_digest
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import InvalidInput, VerificationFailed

deferred_messages_max = 1024
"""Next-height messages from senders outside the current membership, kept until that
height's membership can say whether they count (more are dropped; re-sends recover)."""
deferred_bytes_max = 64 * 1024 * 1024


def authenticate(
    message: Message,
    chain_id: str,
    *,
    our_chain_id: str,
    keys: Mapping[bytes, PublicKey],
    me: bytes,
    machine: Consensus,
) -> str | None:
    """None if ``message`` (sent for ``chain_id``) may go to ``machine``, else the drop reason
    (a metric label). ``keys`` are the current membership's by member id, ``me`` our id."""
    if chain_id != our_chain_id:
        return "wrong_chain"
    sender = message.proposer if isinstance(message, Proposal) else message.voter
    key = keys.get(sender)
    if key is None:
        return "not_member"
    if sender == me:
        return "own"  # our messages are delivered back directly, once, when signed
    if (
        isinstance(message, Proposal)
        and message.height == machine.height
        and sender != machine.proposer(message.height, message.round)
    ):
        # (A next-height proposal is checked by the machine when that height starts,
        # under that height's membership.)
        return "not_proposer"
    try:
        key.verify(message_digest(chain_id, message), message.signature)
    except (VerificationFailed, InvalidInput):
        return "bad_signature"
    return None


class DeferredMessages:
    """Raw next-height messages: (bytes, whether the machine holds it too)."""

    def __init__(self) -> None:
        self._messages: deque[tuple[bytes, bool]] = deque()
        self._bytes = 0

    def keep(self, data: bytes, *, held: bool) -> bool:
        """Keep ``data`` if the bounds allow; False if it was dropped."""
        if (
            len(self._messages) >= deferred_messages_max
            or self._bytes + len(data) > deferred_bytes_max
        ):
            return False
        self._messages.append((data, held))
        self._bytes += len(data)
        return True

    def take(self) -> deque[tuple[bytes, bool]]:
        """Every kept message, oldest first; the store is empty afterwards."""
        messages, self._messages = self._messages, deque()
        self._bytes = 0
        return messages
