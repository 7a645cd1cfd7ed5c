"""A simulated member: the consensus machine plus everything a real node's driver does.

A ``SimNode`` is a driver in the sense of ``consensus.types``: it verifies every signature
and drops non-members before the machine sees a message, signs what the machine asks through
a guard with the real guard's rule, persists the machine's state *before* any signature it
asked for leaves, delivers its own signed messages back to it, answers ``RequestValue`` and
``ValidateBlock`` from a toy application, commits decisions with their certificates, and
catches up from peers. Its "disk" (``Disk``) is the only thing a crash keeps.

Liveness needs what a real gossip layer gives (Tendermint assumes that a message one correct
node received eventually reaches every correct node), so the driver adds what the machine
does not know about: when its machine has made no progress for a gossip interval it relays
this height's recent proposals and votes, its own and others', with the proof of lock of the
current proposal; a proposer sends that proof with any re-proposal; and it gossips its
committed height so that a node left behind fetches the blocks it missed, each with a
certificate it verifies itself (a minimal catch-up: one peer at a time, none trusted).

A node that lacks a block body never calls it invalid: it waits until the body arrives by
gossip or catch-up. Safety must not depend on that choice, and liveness does not either,
since proposals are relayed with their bodies.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from trusted_ledger.chain.certificate import CommitCertificate, Membership, Vote
from trusted_ledger.consensus.machine import Consensus
from trusted_ledger.consensus.signing import message_digest, signing_position
from trusted_ledger.consensus.types import (
    Action,
    Decide,
    Message,
    Proposal,
    ReportMisbehaviour,
    RequestValue,
    ScheduleTimeout,
    SignAndBroadcast,
    TimeoutConfig,
    ValidateBlock,
    VoteKind,
    VoteMessage,
)
from trusted_ledger.consensus.votes import future_rounds_max
from trusted_ledger.custody.guard import Watermark
from trusted_ledger.errors import InvalidInput, SigningRefused, VerificationFailed
from trusted_ledger.testing.sim.app import (
    CommittedBlock,
    SimBlock,
    next_state_root,
    payload_bytes_max,
)
from trusted_ledger.testing.sim.clock import US_PER_MS
from trusted_ledger.testing.sim.disk import Disk
from trusted_ledger.testing.sim.guard import MemoryGuard
from trusted_ledger.testing.sim.keys import MemberKey
from trusted_ledger.testing.sim.messages import (
    BlockChecked,
    Deliver,
    Event,
    GossipTick,
    Payload,
    ProposalGossip,
    Status,
    SyncRequest,
    SyncResponse,
    TimerFired,
    ValueBuilt,
)

if TYPE_CHECKING:
    from trusted_ledger.testing.sim.byzantine import Behaviour

MessageT = TypeVar("MessageT", bound=Proposal | VoteMessage)

FIRST_HEIGHT = 1
bodies_per_height_max = 64
"""Block bodies a node keeps per height (its own, and gossiped ones): an equivocating
proposer can make many, and only the ones for this height and the next are kept at all."""
sync_entries_max = 16
"""Committed blocks in one catch-up response; a laggard asks again for the rest."""
votes_per_position_max = 2
"""Votes relayed per (round, kind, voter): the first and one conflicting, enough to show
every node an equivocation without letting an equivocator fill memory."""
inputs_per_event_max = 10_000
"""Machine inputs one event may cause (self-deliveries chain): more means a loop."""


@dataclass(frozen=True, slots=True)
class NodeTiming:
    """The driver's own clocks (the machine's timeouts are ``TimeoutConfig``)."""

    gossip_interval_ms: int = 400
    sync_retry_ms: int = 800
    build_delay_ms_max: float = 5.0
    check_delay_ms_max: float = 5.0


class NodeServices(Protocol):
    """What the runner gives a node: time, the network, the event queue, a verifier."""

    @property
    def now_us(self) -> int: ...

    def send(self, source: int, destination: int, payload: Payload) -> None: ...

    def schedule(self, delay_us: int, event: Event) -> None: ...

    def verify(self, signer: int, digest: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class GuardRefusal:
    """The guard refused what an honest machine asked to sign: evidence of a machine bug."""

    node: int
    message: Message
    reason: str


@dataclass(slots=True)
class NodeCounters:
    """What a node dropped or caught up, for reports and for tests that a fault happened."""

    dropped_garbage: int = 0
    dropped_bad_signature: int = 0
    dropped_non_member: int = 0
    sync_rejected: int = 0
    sync_committed: int = 0
    crashes: int = 0


def _committed(machine: Consensus, *, height: int, members: Sequence[bytes]) -> list[Action]:
    return machine.on_committed(height, members)


class SimNode:
    """One member. ``behaviour`` is None for an honest node."""

    def __init__(
        self,
        key: MemberKey,
        members: Sequence[MemberKey],
        membership: Membership,
        chain_id: str,
        services: NodeServices,
        rng: random.Random,
        *,
        timeouts: TimeoutConfig,
        timing: NodeTiming,
        behaviour: Behaviour | None = None,
    ) -> None:
        self.key = key
        self.index = key.index
        self.members = tuple(members)
        self.member_ids = tuple(m.fingerprint for m in members)
        self._index_of = {m.fingerprint: m.index for m in members}
        self.membership = membership
        self.chain_id = chain_id
        self.services = services
        self.rng = rng
        self.timeouts = timeouts
        self.timing = timing
        self.behaviour = behaviour
        self.disk = Disk()
        self.counters = NodeCounters()
        self.evidence: list[ReportMisbehaviour] = []
        self.guard_refusals: list[GuardRefusal] = []
        self.up = False
        self.incarnation = 0
        self.machine: Consensus | None = None
        self.guard = MemoryGuard(None, self._persist_watermark)
        self._reset_volatile()

    @property
    def honest(self) -> bool:
        return self.behaviour is None

    @property
    def committed_height(self) -> int:
        return self.disk.committed_height

    # --- life cycle ----------------------------------------------------------------------

    def _reset_volatile(self) -> None:
        """Forget everything not on disk (a crash, or before the first start)."""
        self.bodies: dict[bytes, SimBlock] = {}
        self._pending_checks: dict[bytes, int] = {}
        self._pending_decide: Decide | None = None
        self._peer_heights: dict[int, int] = {}
        self._sync_retry_at_us = 0
        self._votes: dict[int, dict[tuple[int, bytes], list[VoteMessage]]] = {}
        """This height's verified votes: round -> (kind, voter) -> the first vote seen and at
        most one conflicting one (relaying both lets every node see an equivocation)."""
        self._last_progress: tuple[int, int, int] | None = None
        self._proposals: dict[int, ProposalGossip] = {}
        """This height's first verified proposal per round (with its body, if it came)."""
        self._inputs: deque[Callable[[Consensus], list[Action]]] = deque()
        self._draining = False

    def _persist_watermark(self, watermark: Watermark) -> None:
        self.disk.watermark = watermark

    def start(self) -> None:
        """Boot (or reboot) from disk: a new machine at the next height to commit, restored
        from the persisted state if that state is for this height."""
        self.up = True
        self.incarnation += 1
        self._reset_volatile()
        self.guard = MemoryGuard(self.disk.watermark, self._persist_watermark)
        next_height = self.disk.committed_height + 1
        state = self.disk.consensus_state
        restored = state if state is not None and state.height == next_height else None
        self.machine = Consensus(
            self.key.fingerprint,
            next_height,
            self.member_ids,
            timeouts=self.timeouts,
            restored=restored,
        )
        self._drive(lambda machine: machine.start())
        self._schedule_tick()

    def crash(self) -> None:
        """Lose everything but the disk; pending timers of this incarnation become stale."""
        self.up = False
        self.machine = None
        self.counters.crashes += 1
        self._reset_volatile()

    def _schedule_tick(self) -> None:
        jitter = self.rng.uniform(0.8, 1.2)
        delay_us = int(self.timing.gossip_interval_ms * jitter * US_PER_MS)
        self.services.schedule(delay_us, GossipTick(self.index, self.incarnation))

    # --- the machine ---------------------------------------------------------------------

    def _drive(self, call: Callable[[Consensus], list[Action]]) -> None:
        """Feed one input; carry out the actions in order, each call's state persisted first.

        Inputs caused while carrying out actions (a signed message delivered back, a block
        body that was already known) queue behind, so actions run in the order returned.
        """
        self._inputs.append(call)
        if self._draining:
            return
        self._draining = True
        try:
            steps = 0
            while self._inputs and self.machine is not None:
                steps += 1
                assert steps <= inputs_per_event_max, "machine input loop"
                actions = self._inputs.popleft()(self.machine)
                # Persist before any SignAndBroadcast below is carried out: a crash after
                # a signature left must restart into a machine that knows it signed.
                self.disk.consensus_state = self.machine.persistent_state()
                for action in actions:
                    self._carry_out(action)
        finally:
            self._inputs.clear()
            self._draining = False

    def _carry_out(self, action: Action) -> None:
        if isinstance(action, SignAndBroadcast):
            if self.behaviour is None:
                self.sign_and_broadcast(action.message)
            else:
                self.behaviour.outgoing(self, action.message)
        elif isinstance(action, ScheduleTimeout):
            event = TimerFired(
                self.index, self.incarnation, action.kind, action.height, action.round
            )
            self.services.schedule(action.delay_ms * US_PER_MS, event)
        elif isinstance(action, RequestValue):
            block = self.make_block(action.height, action.round, self.rng.randbytes(16))
            delay = int(self.rng.uniform(0, self.timing.build_delay_ms_max) * US_PER_MS)
            self.services.schedule(
                delay, ValueBuilt(self.index, self.incarnation, action.height, action.round, block)
            )
        elif isinstance(action, ValidateBlock):
            self._pending_checks[action.block_id] = action.height
            if action.block_id in self.bodies:
                self._schedule_check(action.height, action.block_id)
        elif isinstance(action, Decide):
            self._pending_decide = action
            self._try_commit_decided()
        else:
            self.evidence.append(action)

    # --- signing (honest) and helpers the Byzantine behaviours share ----------------------

    def sign_raw(self, message: MessageT) -> MessageT:
        """Sign with no guard at all: what a Byzantine member can always do."""
        signature = self.key.private.sign(message_digest(self.chain_id, message))
        return dataclasses.replace(message, signature=signature)

    def gossip_payload(self, signed: Message) -> Payload:
        if isinstance(signed, Proposal):
            return self.proposal_gossip(signed)
        return signed

    def proposal_gossip(self, signed: Proposal) -> ProposalGossip:
        """A proposal travels with its block body when this node has it."""
        return ProposalGossip(signed, self.bodies.get(signed.block_id))

    def sign_and_broadcast(self, message: Message) -> None:
        """The honest path: guard, sign, send to every member, deliver back to the machine."""
        digest = message_digest(self.chain_id, message)
        try:
            self.guard.authorise(signing_position(message), digest)
        except SigningRefused as exc:
            # The machine asked for a second, different message at one position (or below
            # its watermark): the guard is doing its job, and the checkers call it a bug.
            self.guard_refusals.append(GuardRefusal(self.index, message, str(exc)))
            return
        signed = dataclasses.replace(message, signature=self.key.private.sign(digest))
        payload = self.gossip_payload(signed)
        self.broadcast(payload)
        if isinstance(signed, Proposal):
            for vote in self.proof_of_lock(signed):
                self.broadcast(vote)
        self.deliver_back(signed)

    def broadcast(self, payload: Payload) -> None:
        for peer in range(len(self.members)):
            if peer != self.index:
                self.services.send(self.index, peer, payload)

    def send_to(self, peer: int, payload: Payload) -> None:
        self.services.send(self.index, peer, payload)

    def deliver_back(self, signed: Message) -> None:
        if isinstance(signed, Proposal):
            self._remember_proposal(self.proposal_gossip(signed))
            self._drive(lambda machine: machine.on_proposal(signed))
        else:
            self._remember_vote(signed)
            self._drive(lambda machine: machine.on_vote(signed))

    def _remember_vote(self, vote: VoteMessage) -> None:
        """Keep what gossip relays: this height's votes, rounds bounded as the machine bounds
        them, at most two per (round, kind, voter)."""
        machine = self.machine
        if (
            machine is None
            or vote.height != machine.height
            or not 0 <= vote.round <= machine.round + future_rounds_max
        ):
            return
        held = self._votes.setdefault(vote.round, {}).setdefault((int(vote.kind), vote.voter), [])
        if len(held) < votes_per_position_max and all(v.block_id != vote.block_id for v in held):
            held.append(vote)

    def _remember_proposal(self, gossip: ProposalGossip) -> None:
        machine = self.machine
        proposal = gossip.proposal
        if (
            machine is not None
            and proposal.height == machine.height
            and 0 <= proposal.round <= machine.round + future_rounds_max
        ):
            self._proposals.setdefault(proposal.round, gossip)

    def proof_of_lock(self, proposal: Proposal) -> list[VoteMessage]:
        """The prevotes of ``proposal.valid_round`` for its block that this node holds.

        A proposal with valid_round vr >= 0 is acted on (Algorithm 1, line 28) only by a
        node holding 2f+1 prevotes of round vr for the block, and the machine's message log
        does not survive a crash; nodes that missed round vr (partitioned, restarted) would
        wait for them forever while the nodes locked in vr refuse everything else. So the
        driver relays them, as Tendermint's gossip layer does.
        """
        if proposal.valid_round < 0:
            return []
        held = self._votes.get(proposal.valid_round, {})
        return [
            vote
            for (kind, _), votes in sorted(held.items())
            for vote in votes
            if kind == VoteKind.PREVOTE and vote.block_id == proposal.block_id
        ]

    def make_block(self, height: int, consensus_round: int, payload: bytes) -> SimBlock:
        block = SimBlock(
            self.chain_id, height, consensus_round, self.disk.head_id, self.key.fingerprint, payload
        )
        self._keep_body(block)
        return block

    # --- inputs from the runner -----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Handle an event addressed to this node (the runner filters stale incarnations)."""
        if isinstance(event, Deliver):
            self._receive(event.source, event.payload)
        elif isinstance(event, TimerFired):
            kind, height, consensus_round = event.kind, event.height, event.round
            self._drive(lambda machine: machine.on_timeout(kind, height, consensus_round))
        elif isinstance(event, ValueBuilt):
            block = event.block
            self._keep_body(block)
            consensus_round = event.round
            self._drive(
                lambda machine: machine.on_value(block.height, consensus_round, block.block_id)
            )
        elif isinstance(event, BlockChecked):
            self._finish_check(event.height, event.block_id)
        elif isinstance(event, GossipTick):
            self._gossip()

    def _receive(self, source: int, payload: Payload) -> None:
        if isinstance(payload, ProposalGossip):
            self._receive_proposal(payload)
        elif isinstance(payload, VoteMessage):
            if self._verified(payload):
                self._remember_vote(payload)
                self._drive(lambda machine: machine.on_vote(payload))
        elif isinstance(payload, Status):
            if payload.committed_height >= 0:
                self._peer_heights[source] = payload.committed_height
        elif isinstance(payload, SyncRequest):
            self._answer_sync(source, payload.from_height)
        elif isinstance(payload, SyncResponse):
            self._catch_up(payload)
        else:
            self.counters.dropped_garbage += 1

    def _verified(self, message: Message) -> bool:
        """Signature and membership, checked before the machine ever sees ``message``."""
        signer_id = message.proposer if isinstance(message, Proposal) else message.voter
        signer = self._index_of.get(signer_id)
        if signer is None:
            self.counters.dropped_non_member += 1
            return False
        try:
            digest = message_digest(self.chain_id, message)
        except InvalidInput:
            self.counters.dropped_garbage += 1
            return False
        if not self.services.verify(signer, digest, message.signature):
            self.counters.dropped_bad_signature += 1
            return False
        return True

    def _receive_proposal(self, gossip: ProposalGossip) -> None:
        proposal = gossip.proposal
        if not self._verified(proposal):
            return
        block = gossip.block
        if block is not None and block.block_id == proposal.block_id:
            self._keep_body(block)
        else:
            gossip = ProposalGossip(proposal, self.bodies.get(proposal.block_id))
        self._remember_proposal(gossip)
        self._drive(lambda machine: machine.on_proposal(proposal))

    def _keep_body(self, block: SimBlock) -> None:
        """Keep a body for this height or the next, within the per-height bound; a body
        that was awaited unblocks a check or a commit."""
        if self.machine is None or not (
            self.machine.height <= block.height <= self.machine.height + 1
        ):
            return
        block_id = block.block_id
        if block_id not in self.bodies:
            same_height = sum(1 for b in self.bodies.values() if b.height == block.height)
            if same_height >= bodies_per_height_max:
                return
            self.bodies[block_id] = block
        if block_id in self._pending_checks:
            self._schedule_check(self._pending_checks[block_id], block_id)
        if self._pending_decide is not None and self._pending_decide.block_id == block_id:
            self._try_commit_decided()

    # --- the application ------------------------------------------------------------------

    def _schedule_check(self, height: int, block_id: bytes) -> None:
        delay = int(self.rng.uniform(0, self.timing.check_delay_ms_max) * US_PER_MS)
        self.services.schedule(delay, BlockChecked(self.index, self.incarnation, height, block_id))

    def _finish_check(self, height: int, block_id: bytes) -> None:
        if self._pending_checks.pop(block_id, None) is None or self.machine is None:
            return
        block = self.bodies.get(block_id)
        if block is None or height != self.machine.height:
            return
        valid = self.block_is_valid(block, height)
        self._drive(lambda machine: machine.on_block_validated(height, block_id, valid))

    def block_is_valid(self, block: SimBlock, height: int) -> bool:
        """Deterministic on every honest node at this height: a property of the block and
        the committed chain only, never of timing."""
        assert self.machine is not None
        return (
            block.chain_id == self.chain_id
            and block.height == height
            and block.parent_id == self.disk.head_id
            and 0 <= block.round < 2**32
            and len(block.payload) <= payload_bytes_max
            and self.machine.proposer(height, block.round) == block.proposer
        )

    def _try_commit_decided(self) -> None:
        decide = self._pending_decide
        if decide is None or self.machine is None:
            return
        block = self.bodies.get(decide.block_id)
        if block is None:
            return  # wait for the body (gossip or catch-up); never guess
        self._pending_decide = None
        certificate = CommitCertificate.from_votes(
            self.chain_id,
            decide.height,
            decide.round,
            decide.block_id,
            (Vote(v.voter, v.signature) for v in decide.precommits),
        )
        self._commit(block, certificate)
        height = decide.height
        members = self.member_ids
        self._drive(lambda machine: machine.on_committed(height, members))

    def _commit(self, block: SimBlock, certificate: CommitCertificate) -> None:
        root = next_state_root(self.disk.head_state_root, block.payload)
        self.disk.chain.append(CommittedBlock(block, certificate, root))
        self._votes.clear()
        self._proposals.clear()
        height = block.height
        self.bodies = {k: b for k, b in self.bodies.items() if b.height > height}
        self._pending_checks = {}

    # --- gossip and catch-up --------------------------------------------------------------

    def _gossip(self) -> None:
        """Status; a relay of this height's messages if the machine is stuck; a catch-up
        request to one peer that claims to be ahead."""
        self._schedule_tick()
        if self.behaviour is not None:
            self.behaviour.tick(self)
        self.broadcast(Status(self.committed_height))
        machine = self.machine
        if machine is not None:
            progress = (machine.height, machine.round, int(machine.step))
            if progress == self._last_progress:
                self._relay(machine.round)
            self._last_progress = progress
        ahead = sorted(p for p, h in self._peer_heights.items() if h > self.committed_height)
        now = self.services.now_us
        if ahead and now >= self._sync_retry_at_us:
            self._sync_retry_at_us = now + self.timing.sync_retry_ms * US_PER_MS
            self.send_to(self.rng.choice(ahead), SyncRequest(self.committed_height + 1))

    def _relay(self, current_round: int) -> None:
        """Re-send this height's proposals and votes of the current and previous round, and
        the proof of lock of the current proposal.

        Called when the machine made no progress for a whole gossip interval: it waits for
        messages that were lost, or that died with a crashed sender (whose restarted
        machine resumes in a later round and never re-sends them). Tendermint assumes that
        a message one correct node received eventually reaches every correct node; this
        relay is what provides that here, at no cost while the consortium is progressing.
        """
        for consensus_round in (current_round - 1, current_round):
            gossip = self._proposals.get(consensus_round)
            if gossip is not None:
                self.broadcast(gossip)
            for _, votes in sorted(self._votes.get(consensus_round, {}).items()):
                for vote in votes:
                    self.broadcast(vote)
        current = self._proposals.get(current_round)
        if current is not None and current.proposal.valid_round < current_round - 1:
            for vote in self.proof_of_lock(current.proposal):
                self.broadcast(vote)

    def _answer_sync(self, peer: int, from_height: int) -> None:
        if not FIRST_HEIGHT <= from_height <= self.committed_height:
            return
        entries = tuple(self.disk.chain[from_height - 1 : from_height - 1 + sync_entries_max])
        self.send_to(peer, SyncResponse(entries))

    def _catch_up(self, response: SyncResponse) -> None:
        """Commit each entry that extends the head and carries a valid certificate; stop at
        the first that does not (the rest cannot extend a head we do not have)."""
        for entry in response.entries[:sync_entries_max]:
            if self.machine is None:
                return
            height = self.committed_height + 1
            block, certificate = entry.block, entry.certificate
            if block.height < height:
                continue
            if not self._certified(block, certificate, height):
                self.counters.sync_rejected += 1
                return
            self._pending_decide = None
            self._commit(block, certificate)
            self.counters.sync_committed += 1
            # The machine's documented path for a height committed by catch-up: it starts
            # the next height and replays what it buffered for it.
            self._drive(functools.partial(_committed, height=height, members=self.member_ids))

    def _certified(self, block: SimBlock, certificate: CommitCertificate, height: int) -> bool:
        if (block.chain_id, block.height, block.parent_id) != (
            self.chain_id,
            height,
            self.disk.head_id,
        ):
            return False
        if (certificate.chain_id, certificate.height, certificate.block_id) != (
            self.chain_id,
            height,
            block.block_id,
        ):
            return False
        try:
            certificate.verify_votes(self.membership)
        except VerificationFailed:
            return False
        return True
