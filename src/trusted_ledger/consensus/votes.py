"""The message log of one height: proposals and votes per round, tallies, equivocation.

Tendermint's rules are all of the form "upon 2f+1 messages of this kind, round and value",
so the log keeps, per round, the first proposal and, per kind, every member's votes by
value, so that every rule is a dictionary look-up rather than a scan.

A member that signs two different votes at one position (equivocation) is reported, and
*both* votes count, each for its own value, as in the paper's model where every signed
message counts. Counting only the first one seen lets a double-voter give honest nodes
permanently different views of which value has a polka (a liveness loss the simulation
found: seed 24 of the one-Byzantine scenarios). "Any 2f+1 votes" (the paper's ``*``)
counts distinct members. A member's votes at one position are capped at
``values_per_position_max`` distinct values, which bounds memory by the membership.

Everything here is bounded by the membership, not by what senders choose:

- rounds above ``current round + future_rounds_max`` are never stored (a member may claim
  any round; only a window just ahead of ours is worth keeping for when we get there);
- a member's highest round is kept as one integer per member, which is all that the
  round-skip rule (Algorithm 1, line 55) needs for rounds beyond the window;
- rounds at or below the current round are kept, because a polka or a precommit quorum of
  any earlier round still matters (lines 28 and 49). Their number grows only as this node's
  own round grows, which needs either its own timeouts or f+1 members — one honest — ahead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from trusted_ledger.consensus.types import Message, Proposal, VoteKind, VoteMessage

values_per_position_max = 3
"""Distinct values one member's votes count for at one position: the first vote and two
conflicting ones. Honest members vote in a round only for its proposal(s) or nil, so a
Byzantine vote matters only for those values; more would let one member grow the log."""

future_rounds_max = 8
"""How many rounds ahead of the current one are stored; messages further ahead only raise
their sender's highest round (enough for the round-skip rule)."""


class Admission(enum.Enum):
    """What became of a message offered to the log."""

    ADDED = "added"
    DUPLICATE = "duplicate"
    """The same message (signatures aside) is already held: nothing changes."""
    EQUIVOCATION = "equivocation"
    """A different message holds the position; the first one is kept, the caller reports."""
    EQUIVOCATION_REPORTED = "equivocation-reported"
    """As above, but this position was already reported once."""
    OUT_OF_WINDOW = "out-of-window"
    """Too far ahead to store; only the sender's highest round was updated."""
    INVALID = "invalid"
    """Malformed for this height (negative round, impossible valid round, bad block id)."""


@dataclass(slots=True)
class RoundMessages:
    """Everything received for one round of one height."""

    proposal: Proposal | None = None
    prevotes: dict[bytes, VoteMessage] = field(default_factory=dict)
    """Each member's first prevote (what "any 2f+1" counts, one per member)."""
    precommits: dict[bytes, VoteMessage] = field(default_factory=dict)
    prevotes_by_value: dict[bytes | None, dict[bytes, VoteMessage]] = field(default_factory=dict)
    """Value -> member -> that member's prevote for it (equivocators under several values)."""
    precommits_by_value: dict[bytes | None, dict[bytes, VoteMessage]] = field(default_factory=dict)

    def votes(self, kind: VoteKind) -> dict[bytes, VoteMessage]:
        return self.prevotes if kind is VoteKind.PREVOTE else self.precommits

    def by_value(self, kind: VoteKind) -> dict[bytes | None, dict[bytes, VoteMessage]]:
        return self.prevotes_by_value if kind is VoteKind.PREVOTE else self.precommits_by_value

    def voters(self, kind: VoteKind, block_id: bytes | None) -> dict[bytes, VoteMessage]:
        """Member -> vote, of every member whose votes of ``kind`` include ``block_id``."""
        return self.by_value(kind).get(block_id, {})

    def count(self, kind: VoteKind, block_id: bytes | None) -> int:
        """Members who voted ``kind`` for ``block_id`` (None: nil)."""
        return len(self.voters(kind, block_id))

    def total(self, kind: VoteKind) -> int:
        """Members who voted ``kind`` for anything, nil included (the paper's ``*``)."""
        return len(self.votes(kind))

    def values_of(self, kind: VoteKind, member: bytes) -> int:
        return sum(member in voters for voters in self.by_value(kind).values())


_EMPTY_ROUND = RoundMessages()
"""Answer for rounds nothing was received in; never written to."""

ROUND_LIMIT = 2**32 - 1
"""Rounds are u32 in every signed digest and in the guard's positions."""
BLOCK_ID_BYTES = 32


def _same_signed_content(first: Message, second: Message) -> bool:
    """Whether two messages at one position carry the same *signed* content.

    Signatures are left out (a signer may sign the same digest twice with different
    randomness), and so is a proposal's ``valid_round``, which is not signed: two proposals
    with one block id are one signed message, however a relay altered ``valid_round``.
    """
    if isinstance(first, Proposal) and isinstance(second, Proposal):
        return first.block_id == second.block_id
    if isinstance(first, VoteMessage) and isinstance(second, VoteMessage):
        return first.block_id == second.block_id
    return False


class HeightLog:
    """Proposals and votes of one height, by round; see the module docstring for bounds."""

    def __init__(self, height: int) -> None:
        self.height = height
        self._rounds: dict[int, RoundMessages] = {}
        self._highest_round: dict[bytes, int] = {}
        self._reported: set[tuple[bytes, int, int]] = set()

    def round(self, consensus_round: int) -> RoundMessages:
        """The messages of ``consensus_round`` (an empty, shared view if none)."""
        return self._rounds.get(consensus_round, _EMPTY_ROUND)

    def rounds(self) -> list[int]:
        """Rounds with anything stored, ascending."""
        return sorted(self._rounds)

    def highest_rounds(self) -> dict[bytes, int]:
        """Each member's highest round seen at this height (for Algorithm 1, line 55)."""
        return dict(self._highest_round)

    @property
    def stored_messages(self) -> int:
        """How many messages the log holds (for bounds checks in tests and metrics)."""
        return sum(
            (rm.proposal is not None)
            + sum(len(voters) for voters in rm.prevotes_by_value.values())
            + sum(len(voters) for voters in rm.precommits_by_value.values())
            for rm in self._rounds.values()
        )

    def add(  # noqa: PLR0911 - one return per admission outcome reads best
        self, message: Message, sender: bytes, current_round: int
    ) -> tuple[Admission, Message | None]:
        """Offer a verified message of this height from member ``sender``.

        Returns the admission and, for an equivocation, the first message at the position.
        """
        if not _well_formed(message):
            return Admission.INVALID, None
        consensus_round = message.round
        if consensus_round > self._highest_round.get(sender, -1):
            self._highest_round[sender] = consensus_round
        if consensus_round > current_round + future_rounds_max:
            return Admission.OUT_OF_WINDOW, None
        messages = self._rounds.get(consensus_round)
        if messages is None:
            messages = self._rounds[consensus_round] = RoundMessages()
        if isinstance(message, Proposal):
            first: Message | None = messages.proposal
            if first is None:
                messages.proposal = message
                return Admission.ADDED, None
            step = 1
        else:
            held = messages.votes(message.kind)
            first = held.get(sender)
            if first is None:
                held[sender] = message
                messages.by_value(message.kind).setdefault(message.block_id, {})[sender] = message
                return Admission.ADDED, None
            step = int(message.kind)
            voters = messages.by_value(message.kind).setdefault(message.block_id, {})
            if sender in voters:
                return Admission.DUPLICATE, None
            if messages.values_of(message.kind, sender) < values_per_position_max:
                voters[sender] = message  # a conflicting vote counts for its own value too
        if _same_signed_content(first, message):
            return Admission.DUPLICATE, None
        position = (sender, consensus_round, step)
        if position in self._reported:
            return Admission.EQUIVOCATION_REPORTED, first
        # One entry per stored position at most: bounded like the messages themselves.
        self._reported.add(position)
        return Admission.EQUIVOCATION, first


def _is_block_id(block_id: object) -> bool:
    # The all-zero id is what a nil vote signs (consensus.signing): as a block id it would
    # let a relay turn a signed nil vote into a "vote for block 0^32".
    return isinstance(block_id, bytes) and len(block_id) == BLOCK_ID_BYTES and any(block_id)


def _well_formed(message: Message) -> bool:
    if not 0 <= message.round <= ROUND_LIMIT:
        return False
    if isinstance(message, Proposal):
        return -1 <= message.valid_round < message.round and _is_block_id(message.block_id)
    return message.block_id is None or _is_block_id(message.block_id)


class NextHeightBuffer:
    """Messages for the next height that arrived before this node committed the current one.

    Peers a little ahead of us start height h+1 as soon as they commit h; their first
    proposal and votes would be lost if dropped, costing a round. Kept per member: every
    position of rounds 0..``future_rounds_max`` (the window the next height will accept, as
    it starts at round 0) with at most two messages each (the first and one conflicting one,
    so equivocation is still reported on replay), plus that member's single highest-round
    message, which feeds the round-skip rule if the others are far ahead.
    """

    def __init__(self) -> None:
        self._window: dict[bytes, dict[tuple[int, int], list[Message]]] = {}
        self._highest: dict[bytes, Message] = {}

    def add(self, message: Message, sender: bytes) -> None:
        if not _well_formed(message):
            return
        highest = self._highest.get(sender)
        if highest is None or message.round > highest.round:
            self._highest[sender] = message
        if message.round > future_rounds_max:
            return
        step = 1 if isinstance(message, Proposal) else int(message.kind)
        held = self._window.setdefault(sender, {}).setdefault((message.round, step), [])
        if len(held) < 2 and all(not _identical(message, kept) for kept in held):
            held.append(message)

    def __len__(self) -> int:
        return sum(len(v) for positions in self._window.values() for v in positions.values())

    def drain(self) -> list[tuple[bytes, Message]]:
        """Everything held, in (round, step, sender) order, and empty the buffer."""
        items = [
            (key, sender, message)
            for sender, positions in self._window.items()
            for key, messages in positions.items()
            for message in messages
        ]
        items.sort(key=lambda item: (item[0], item[1]))
        out = [(sender, message) for _, sender, message in items]
        for sender, message in sorted(self._highest.items()):
            if message.round > future_rounds_max:
                out.append((sender, message))
        self._window.clear()
        self._highest.clear()
        return out


def _identical(first: Message, second: Message) -> bool:
    return type(first) is type(second) and _same_signed_content(first, second)
