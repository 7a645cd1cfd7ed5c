"""Signed consensus messages the BFT driver keeps to send again, for liveness only.

Delivery between members is best effort, so a peer that was away or lost messages must be
able to catch up with a round without anyone signing anything twice. The driver therefore
keeps the exact bytes it already sent or received: its own messages of the current round,
which it re-broadcasts periodically, and the messages that decided the last height (the
proposal and the deciding round's precommits), which it relays to a member that is still at
that height. Re-sent bytes carry their original signatures, and those, not the relay, are
what make a message count; re-sending never touches safety.
"""

from __future__ import annotations

from trusted_ledger.consensus import STEP_PROPOSE, Decide
from trusted_ledger.custody import Position
from trusted_ledger.node.bft_wire import encode_vote


class MessageRelay:
    """Own messages by guard position, proposals heard, and the last decision's messages."""

    def __init__(self) -> None:
        self._own_messages: dict[tuple[int, int, int], bytes] = {}
        self._proposals_seen: dict[tuple[int, int], bytes] = {}
        self._last_decision: list[bytes] = []
        self._last_decision_sent_s = 0.0

    def sent(self, position: Position, data: bytes) -> None:
        """This node sent ``data``, signed at ``position``."""
        self._own_messages[(position.height, position.round, position.step)] = data

    def heard_proposal(self, height: int, consensus_round: int, data: bytes) -> None:
        """An accepted proposal of a peer (the first one heard at its height and round)."""
        self._proposals_seen.setdefault((height, consensus_round), data)

    def own_of_round(self, height: int, consensus_round: int) -> list[bytes]:
        """This node's messages of one round, in guard-position order."""
        return [
            data
            for (h, r, _step), data in sorted(self._own_messages.items())
            if (h, r) == (height, consensus_round)
        ]

    def keep_decision(self, chain_id: str, decision: Decide) -> None:
        """The decision's proposal and precommits, as signed by their senders, to relay to
        a member still at this height: they are exactly what its machine needs to decide
        (line 49), and signatures, not the relay, make them count."""
        key = (decision.height, decision.round)
        proposal = self._proposals_seen.get(key) or self._own_messages.get((*key, STEP_PROPOSE))
        precommits = [encode_vote(chain_id, vote) for vote in decision.precommits]
        self._last_decision = ([proposal] if proposal is not None else []) + precommits

    def decision_due(self, now_s: float, interval_s: float) -> list[bytes]:
        """The last decision's messages if none were relayed in the last ``interval_s``
        (and then counted as relayed at ``now_s``); else nothing."""
        if not self._last_decision or now_s - self._last_decision_sent_s < interval_s:
            return []
        self._last_decision_sent_s = now_s
        return self._last_decision

    def forget_through(self, committed: int) -> None:
        """Drop the messages of heights up to ``committed`` (the last decision stays)."""
        self._proposals_seen = {k: v for k, v in self._proposals_seen.items() if k[0] > committed}
        self._own_messages = {k: v for k, v in self._own_messages.items() if k[0] > committed}
