"""What goes in and out of the consensus state machine (issue 6): messages, inputs, actions.

The machine is sans-I/O (DESIGN.md): no sockets, no clock, no threads, no signing. A driver
(the node, or ``testing/sim``) feeds it verified messages, timer expiries and the
application's answers, and carries out the actions it returns, in order:

- ``SignAndBroadcast``: sign the message through custody's guard at the message's position
  (height, round, step — ``STEP_*`` below match ``chain.signing``'s guard steps), send it to
  every member, **and deliver it back to this machine** (``on_proposal``/``on_vote``): the
  machine counts its own votes only when they come back signed, so a vote the guard refused
  is never counted.
- ``RequestValue``: this member proposes at (height, round) and has no valid block yet: the
  application builds one (the publisher) and answers with ``on_value``.
- ``ValidateBlock``: the application fetches the proposed block's body, checks and
  re-executes it, and answers ``on_block_validated`` (valid or not) — once per block id.
- ``ScheduleTimeout``: call ``on_timeout`` with the same fields after ``delay_ms``.
- ``Decide``: the block is final at this height with these precommits (a quorum for it, in
  one round): the application commits it with the certificate they make, then calls
  ``on_committed(height)``, after which the machine starts the next height.
- ``ReportMisbehaviour``: evidence of a member signing two different messages at one position.

The driver verifies every signature and drops messages from non-members before feeding
them; the machine still re-checks membership, heights and rounds, and bounds what it keeps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NIL: bytes | None = None
"""A vote for no block (prevote/precommit nil)."""

STEP_PROPOSE = 1
STEP_PREVOTE = 2
STEP_PRECOMMIT = 3
"""Guard steps, the same numbers as ``chain.signing`` (precommit = commit vote)."""


class VoteKind(enum.IntEnum):
    PREVOTE = STEP_PREVOTE
    PRECOMMIT = STEP_PRECOMMIT


class TimeoutKind(enum.IntEnum):
    PROPOSE = STEP_PROPOSE
    PREVOTE = STEP_PREVOTE
    PRECOMMIT = STEP_PRECOMMIT


class Step(enum.IntEnum):
    """Where a round stands (Tendermint's ``step_p``); ordered, so ``step >= PREVOTE`` reads
    as in the paper."""

    PROPOSE = STEP_PROPOSE
    PREVOTE = STEP_PREVOTE
    PRECOMMIT = STEP_PRECOMMIT


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer's block for (height, round); ``valid_round`` is the round in which the
    block got a polka (-1 if none), as in Tendermint."""

    height: int
    round: int
    block_id: bytes
    valid_round: int
    proposer: bytes
    """The proposer's member id (its key fingerprint, 32 bytes)."""
    signature: bytes = b""


@dataclass(frozen=True, slots=True)
class VoteMessage:
    kind: VoteKind
    height: int
    round: int
    block_id: bytes | None
    """None is a nil vote."""
    voter: bytes
    signature: bytes = b""


Message = Proposal | VoteMessage


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Tendermint's timeouts, growing linearly with the round so that a round eventually
    lasts long enough for an honest proposer under any bounded delay."""

    propose_ms: int = 1000
    propose_delta_ms: int = 500
    prevote_ms: int = 500
    prevote_delta_ms: int = 250
    precommit_ms: int = 500
    precommit_delta_ms: int = 250

    def delay_ms(self, kind: TimeoutKind, consensus_round: int) -> int:
        base, delta = {
            TimeoutKind.PROPOSE: (self.propose_ms, self.propose_delta_ms),
            TimeoutKind.PREVOTE: (self.prevote_ms, self.prevote_delta_ms),
            TimeoutKind.PRECOMMIT: (self.precommit_ms, self.precommit_delta_ms),
        }[kind]
        return base + delta * consensus_round


@dataclass(frozen=True, slots=True)
class PersistentState:
    """What a node must keep across a crash at its current height (``Consensus.persistent_state``).

    The driver writes it durably *before* it signs any message returned in the same batch
    of actions: the lock (``locked_round``/``locked_value``) is what keeps a restarted node
    from prevoting against a value it may have helped commit, and ``round``/``step`` tell the
    restarted machine which guard positions it may already have used.
    """

    height: int
    round: int
    step: Step
    locked_round: int
    locked_value: bytes | None
    valid_round: int
    valid_value: bytes | None


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignAndBroadcast:
    message: Message
    """Unsigned (empty signature): the driver signs it at its guard position."""


@dataclass(frozen=True, slots=True)
class RequestValue:
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    height: int
    block_id: bytes


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    kind: TimeoutKind
    height: int
    round: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Decide:
    height: int
    round: int
    block_id: bytes
    precommits: tuple[VoteMessage, ...]
    """A quorum of signed precommits for ``block_id`` in ``round``, one per member, sorted
    by voter: the commit certificate's votes."""


@dataclass(frozen=True, slots=True)
class ReportMisbehaviour:
    member: bytes
    first: Message
    second: Message
    """Two different signed messages of ``member`` at one (height, round, step)."""


Action = (
    SignAndBroadcast | RequestValue | ValidateBlock | ScheduleTimeout | Decide | ReportMisbehaviour
)
