"""Tendermint consensus (Buchman, Kwon, Milosevic 2018, Algorithm 1) as a sans-I/O machine.

One ``Consensus`` runs one node's part of the protocol, one height at a time. Inputs are
method calls (verified messages, timer expiries, the application's answers); outputs are
lists of actions (types.py) that the driver carries out in order. Comments cite the lines
of Algorithm 1 each rule implements (docs/consensus.md lists them all).

The paper's rules are "upon <condition> do <action>"; here every input first updates the
state (the message log, validity answers, the round), then ``_progress`` evaluates the rules
repeatedly until none fires, so the order in which inputs arrive never hides a rule whose
condition became true.

Values are block ids. ``valid(v)`` is asked of the application once per block id
(``ValidateBlock``) and a rule that needs it waits until the answer (``on_block_validated``)
arrives — in the paper ``valid`` is a local function that answers at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from trusted_ledger.consensus.types import (
    Action,
    Decide,
    Message,
    PersistentState,
    Proposal,
    ReportMisbehaviour,
    RequestValue,
    ScheduleTimeout,
    SignAndBroadcast,
    Step,
    TimeoutConfig,
    TimeoutKind,
    ValidateBlock,
    VoteKind,
    VoteMessage,
)
from trusted_ledger.consensus.votes import (
    BLOCK_ID_BYTES,
    ROUND_LIMIT,
    Admission,
    HeightLog,
    NextHeightBuffer,
)
from trusted_ledger.errors import InvalidInput

__all__ = ["Consensus", "PersistentState"]
"""``PersistentState`` lives in types.py; it is re-exported here beside the machine whose
state it is, for drivers that import both from one place."""

_DEFAULT_TIMEOUTS = TimeoutConfig()


def _check_members(members: Sequence[bytes]) -> tuple[bytes, ...]:
    ordered = tuple(members)
    if not ordered:
        raise InvalidInput("a consensus membership needs at least one member")
    if any(not isinstance(m, bytes) or not m for m in ordered):
        raise InvalidInput("member ids are non-empty bytes (key fingerprints)")
    if len(set(ordered)) != len(ordered):
        raise InvalidInput("a member id appears twice in the membership")
    return ordered


def _check_block_id(block_id: object, what: str) -> bytes:
    if not isinstance(block_id, bytes) or len(block_id) != BLOCK_ID_BYTES or not any(block_id):
        raise InvalidInput(f"{what} must be a non-zero {BLOCK_ID_BYTES}-byte block id")
    return block_id


class Consensus:
    """One node's Tendermint state machine; see the module docstring and docs/consensus.md."""

    def __init__(
        self,
        me: bytes,
        height: int,
        members: Sequence[bytes],
        *,
        timeouts: TimeoutConfig = _DEFAULT_TIMEOUTS,
        restored: PersistentState | None = None,
    ) -> None:
        if isinstance(height, bool) or not isinstance(height, int) or height < 0:
            raise InvalidInput("height must be a non-negative integer")
        self._me = me
        self._timeouts = timeouts
        self._height = height
        self._members = _check_members(members)
        self._member_set = frozenset(self._members)
        self._started = False
        self._next_height = NextHeightBuffer()
        self._reset_height()
        if restored is not None:
            self._restore(restored)

    # --- the paper's state (lines 2-9), per height -----------------------------------------

    def _reset_height(self) -> None:
        """Line 53: reset locks and valid value, empty the message log."""
        self._round = 0
        self._step = Step.PROPOSE
        self._locked_round = -1
        self._locked_value: bytes | None = None
        self._valid_round = -1
        self._valid_value: bytes | None = None
        self._decision: bytes | None = None
        self._log = HeightLog(self._height)
        self._validity: dict[bytes, bool | None] = {}
        """Block id -> the application's answer (None while asked and unanswered)."""
        self._awaiting_value = False
        # "for the first time" flags of lines 34, 36 and 47; they concern round_p only, so
        # StartRound clears them.
        self._prevote_wait_scheduled = False
        self._polka_seen = False
        self._precommit_wait_scheduled = False
        self._resume_round = 0

    def _restore(self, restored: PersistentState) -> None:
        if restored.height != self._height:
            raise InvalidInput(
                f"restored state is for height {restored.height}, the machine starts at "
                f"{self._height}"
            )
        if not 0 <= restored.round < ROUND_LIMIT:
            raise InvalidInput("restored round out of range")
        if (restored.locked_round >= 0) != (restored.locked_value is not None) or (
            restored.valid_round >= 0
        ) != (restored.valid_value is not None):
            raise InvalidInput("restored lock and valid value must come with their rounds")
        self._locked_round = restored.locked_round
        self._locked_value = restored.locked_value
        self._valid_round = restored.valid_round
        self._valid_value = restored.valid_value
        if restored.valid_value is not None:
            # valid() is deterministic for a block at a height, and this value passed it
            # (line 36 needs valid(v)) before it was persisted.
            self._validity[_check_block_id(restored.valid_value, "valid_value")] = True
        # In the restored round this node may have signed a prevote or precommit whose
        # delivery died with the crash, and the guard would refuse any other vote there;
        # resuming in that round could leave it voteless (and, if every node restarted,
        # the whole consortium stuck). The next round has no signature yet: start there.
        # At the propose step only a proposal may have been signed, which the guard lets
        # this node repeat if it is the same block (a re-proposed valid value).
        self._resume_round = restored.round + (1 if restored.step > Step.PROPOSE else 0)
        self._round = self._resume_round

    # --- public surface ----------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self._height

    @property
    def round(self) -> int:
        return self._round

    @property
    def step(self) -> Step:
        return self._step

    @property
    def members(self) -> tuple[bytes, ...]:
        return self._members

    @property
    def quorum(self) -> int:
        """floor(2n/3) + 1 — 2f + 1 for n = 3f + 1 (the same as ``chain.Membership``)."""
        return 2 * len(self._members) // 3 + 1

    @property
    def faults(self) -> int:
        """f = (n - 1) // 3: the faulty members tolerated."""
        return (len(self._members) - 1) // 3

    @property
    def is_member(self) -> bool:
        """False for an observer: it follows the protocol but never signs."""
        return self._me in self._member_set

    @property
    def decision(self) -> bytes | None:
        """The block id decided at the current height, until ``on_committed``."""
        return self._decision

    @property
    def stored_messages(self) -> int:
        """Messages held for this height and the next (for bounds checks and metrics)."""
        return self._log.stored_messages + len(self._next_height)

    def proposer(self, height: int, round: int) -> bytes:
        """proposer(h, r) = members[(h + r) mod n]: a rotation every node computes alike."""
        return self._members[(height + round) % len(self._members)]

    def persistent_state(self) -> PersistentState:
        return PersistentState(
            height=self._height,
            round=self._round,
            step=self._step,
            locked_round=self._locked_round,
            locked_value=self._locked_value,
            valid_round=self._valid_round,
            valid_value=self._valid_value,
        )

    def start(self) -> list[Action]:
        """Line 10: upon start, StartRound(0) — or the round a restart resumes in."""
        if self._started:
            raise InvalidInput("start() was already called")
        self._started = True
        out: list[Action] = []
        self._start_round(self._resume_round, out)
        self._progress(out)
        return out

    def on_proposal(self, proposal: Proposal) -> list[Action]:
        return self._on_message(proposal, proposal.proposer)

    def on_vote(self, vote: VoteMessage) -> list[Action]:
        return self._on_message(vote, vote.voter)

    def on_value(self, height: int, round: int, block_id: bytes) -> list[Action]:
        """The application's block for our ``RequestValue`` (line 18's getValue)."""
        out: list[Action] = []
        if not (
            self._awaiting_value
            and self._decision is None
            and (height, round) == (self._height, self._round)
            and self._step is Step.PROPOSE
        ):
            return out  # a late answer for a round this node has left
        _check_block_id(block_id, "the proposed value")
        self._awaiting_value = False
        # We built it, so it is valid to us; the guard and peers judge it independently.
        self._validity[block_id] = True
        self._broadcast(
            Proposal(self._height, self._round, block_id, self._valid_round, self._me), out
        )
        self._progress(out)
        return out

    def on_block_validated(self, height: int, block_id: bytes, valid: bool) -> list[Action]:
        """The application's answer to ``ValidateBlock``: ``valid(v)`` in the paper."""
        out: list[Action] = []
        if height != self._height or self._validity.get(block_id, False) is not None:
            return out  # not asked (or already answered): answers are taken once
        self._validity[block_id] = bool(valid)
        self._progress(out)
        return out

    def on_timeout(self, kind: TimeoutKind, height: int, round: int) -> list[Action]:
        """Lines 57-67; a timer for another height, round or step does nothing."""
        out: list[Action] = []
        if height != self._height or round != self._round or self._decision is not None:
            return out
        if kind is TimeoutKind.PROPOSE and self._step is Step.PROPOSE:  # lines 57-60
            self._awaiting_value = False
            self._broadcast(self._vote(VoteKind.PREVOTE, None), out)
            self._step = Step.PREVOTE
        elif kind is TimeoutKind.PREVOTE and self._step is Step.PREVOTE:  # lines 61-64
            self._broadcast(self._vote(VoteKind.PRECOMMIT, None), out)
            self._step = Step.PRECOMMIT
        elif kind is TimeoutKind.PRECOMMIT:  # lines 65-67
            self._start_round(self._round + 1, out)
        self._progress(out)
        return out

    def on_committed(self, height: int, next_members: Sequence[bytes]) -> list[Action]:
        """The application committed ``height`` (after our Decide, or by catch-up): start
        ``height + 1`` with its membership and replay what arrived early for it."""
        if height < self._height:
            return []
        if height > self._height:
            raise InvalidInput(
                f"committed height {height} is ahead of the machine's height {self._height}"
            )
        self._members = _check_members(next_members)
        self._member_set = frozenset(self._members)
        self._height += 1
        self._reset_height()
        out: list[Action] = []
        self._start_round(0, out)
        for sender, message in self._next_height.drain():
            if sender in self._member_set:
                self._admit(message, sender, out)
        self._progress(out)
        return out

    # --- input handling ----------------------------------------------------------------------

    def _on_message(self, message: Message, sender: bytes) -> list[Action]:
        out: list[Action] = []
        if not isinstance(sender, bytes) or sender not in self._member_set:
            return out  # non-members' messages never count
        if message.height == self._height + 1:
            self._next_height.add(message, sender)
            return out
        if message.height != self._height or self._decision is not None:
            return out  # older heights are done; later ones are the driver's catch-up
        self._admit(message, sender, out)
        self._progress(out)
        return out

    def _admit(self, message: Message, sender: bytes, out: list[Action]) -> None:
        """Log a message of the current height; ask for validity of a new proposal."""
        if isinstance(message, Proposal) and sender != self.proposer(message.height, message.round):
            return  # lines 22/28/36/49 only hear proposer(h, r)
        admission, first = self._log.add(message, sender, self._round)
        if admission is Admission.EQUIVOCATION and first is not None:
            out.append(ReportMisbehaviour(sender, first, message))
        elif (
            admission is Admission.ADDED
            and isinstance(message, Proposal)
            and message.block_id not in self._validity
        ):
            self._validity[message.block_id] = None
            out.append(ValidateBlock(self._height, message.block_id))

    # --- the rules ---------------------------------------------------------------------------

    def _progress(self, out: list[Action]) -> None:
        """Fire every enabled rule until none is: the paper's "upon" semantics."""
        if not self._started:
            return
        while self._decision is None:
            if self._try_decide(out):  # line 49
                return
            if self._try_skip_round(out):  # line 55
                continue
            fired = self._on_proposal_rules(out)  # lines 22, 28
            self._on_any_prevote_quorum(out)  # line 34
            fired |= self._on_polka(out)  # line 36
            fired |= self._on_nil_polka(out)  # line 44
            self._on_any_precommit_quorum(out)  # line 47
            if not fired:
                return

    def _start_round(self, consensus_round: int, out: list[Action]) -> None:
        """Lines 11-21 (StartRound)."""
        self._round = consensus_round
        self._step = Step.PROPOSE
        self._awaiting_value = False
        self._prevote_wait_scheduled = False
        self._polka_seen = False
        self._precommit_wait_scheduled = False
        if self.proposer(self._height, consensus_round) == self._me:
            if self._valid_value is not None:  # lines 15-16, 19
                proposal = Proposal(
                    self._height, consensus_round, self._valid_value, self._valid_round, self._me
                )
                self._broadcast(proposal, out)
            else:  # line 18: getValue is asynchronous here (the publisher builds a block)
                self._awaiting_value = True
                out.append(RequestValue(self._height, consensus_round))
        # Line 21. The paper schedules it for non-proposers only; here the proposer's value
        # arrives asynchronously and its proposal counts only once the guard signed it and
        # it came back, so the proposer waits too, and the timeout bounds that wait (a
        # publisher that never answers costs one round, not the height). It acts only while
        # step = propose, so it changes nothing when the proposal arrives in time.
        self._schedule(TimeoutKind.PROPOSE, out)

    def _on_proposal_rules(self, out: list[Action]) -> bool:
        """Lines 22-27 (valid_round = -1) and 28-33 (a polka in valid_round < round_p)."""
        if self._step is not Step.PROPOSE:
            return False
        proposal = self._log.round(self._round).proposal
        if proposal is None:
            return False
        block_id, vr = proposal.block_id, proposal.valid_round
        if vr == -1:
            unlocked_or_same = self._locked_round == -1 or self._locked_value == block_id
        elif self._log.round(vr).count(VoteKind.PREVOTE, block_id) >= self.quorum:
            unlocked_or_same = self._locked_round <= vr or self._locked_value == block_id
        else:
            return False  # line 28 waits for 2f+1 prevotes of round vr
        valid = self._validity.get(block_id)
        if valid is None:
            return False  # valid(v) not answered yet: the proposal is pending
        choice = block_id if valid and unlocked_or_same else None
        self._broadcast(self._vote(VoteKind.PREVOTE, choice), out)
        self._step = Step.PREVOTE
        return True

    def _on_any_prevote_quorum(self, out: list[Action]) -> None:
        """Line 34: 2f+1 prevotes of round_p (any values) while at prevote, first time."""
        if (
            self._step is Step.PREVOTE
            and not self._prevote_wait_scheduled
            and self._log.round(self._round).total(VoteKind.PREVOTE) >= self.quorum
        ):
            self._prevote_wait_scheduled = True
            self._schedule(TimeoutKind.PREVOTE, out)

    def _on_polka(self, out: list[Action]) -> bool:
        """Lines 36-43: proposal v of round_p with 2f+1 prevotes for it, valid, step >=
        prevote, first time: lock and precommit (at prevote), and remember v as valid."""
        if self._polka_seen or self._step < Step.PREVOTE:
            return False
        proposal = self._log.round(self._round).proposal
        if proposal is None:
            return False
        block_id = proposal.block_id
        if self._log.round(self._round).count(VoteKind.PREVOTE, block_id) < self.quorum:
            return False
        if self._validity.get(block_id) is not True:
            return False  # pending or invalid; a pending answer re-runs this rule
        self._polka_seen = True
        if self._step is Step.PREVOTE:
            self._locked_value = block_id
            self._locked_round = self._round
            self._broadcast(self._vote(VoteKind.PRECOMMIT, block_id), out)
            self._step = Step.PRECOMMIT
        self._valid_value = block_id
        self._valid_round = self._round
        return True

    def _on_nil_polka(self, out: list[Action]) -> bool:
        """Lines 44-46: 2f+1 nil prevotes of round_p while at prevote: precommit nil."""
        if self._step is not Step.PREVOTE:
            return False
        if self._log.round(self._round).count(VoteKind.PREVOTE, None) < self.quorum:
            return False
        self._broadcast(self._vote(VoteKind.PRECOMMIT, None), out)
        self._step = Step.PRECOMMIT
        return True

    def _on_any_precommit_quorum(self, out: list[Action]) -> None:
        """Line 47: 2f+1 precommits of round_p (any values), first time."""
        if (
            not self._precommit_wait_scheduled
            and self._log.round(self._round).total(VoteKind.PRECOMMIT) >= self.quorum
        ):
            self._precommit_wait_scheduled = True
            self._schedule(TimeoutKind.PRECOMMIT, out)

    def _try_decide(self, out: list[Action]) -> bool:
        """Line 49: in *any* round r, proposal v from proposer(h, r), 2f+1 precommits for
        id(v) in r, valid(v): decide v. The machine then waits for ``on_committed``."""
        for consensus_round in self._log.rounds():
            messages = self._log.round(consensus_round)
            proposal = messages.proposal
            if proposal is None:
                continue
            block_id = proposal.block_id
            if messages.count(VoteKind.PRECOMMIT, block_id) < self.quorum:
                continue
            if self._validity.get(block_id) is not True:
                continue
            self._decision = block_id
            precommits = sorted(
                messages.voters(VoteKind.PRECOMMIT, block_id).values(),
                key=lambda vote: vote.voter,
            )
            out.append(Decide(self._height, consensus_round, block_id, tuple(precommits)))
            return True
        return False

    def _try_skip_round(self, out: list[Action]) -> bool:
        """Line 55: f+1 members with messages of a round above round_p: go there.

        Counted by each member's highest round at this height, so the rule also sees rounds
        beyond the stored window. The target is the highest round R that f+1 members have
        reached or passed: at least one of them is honest, and an honest member only sends
        messages of rounds it has reached. When f+1 members sent messages of round r, R >= r.
        """
        ahead = sorted(
            (r for r in self._log.highest_rounds().values() if r > self._round), reverse=True
        )
        if len(ahead) < self.faults + 1:
            return False
        self._start_round(ahead[self.faults], out)
        return True

    # --- helpers -----------------------------------------------------------------------------

    def _vote(self, kind: VoteKind, block_id: bytes | None) -> VoteMessage:
        return VoteMessage(kind, self._height, self._round, block_id, self._me)

    def _broadcast(self, message: Message, out: list[Action]) -> None:
        """The paper's broadcast; an observer changes step as a member would, unsigned."""
        if self.is_member:
            out.append(SignAndBroadcast(message))

    def _schedule(self, kind: TimeoutKind, out: list[Action]) -> None:
        delay = self._timeouts.delay_ms(kind, self._round)
        out.append(ScheduleTimeout(kind, self._height, self._round, delay))
