"""The BFT driver: runs the sans-I/O consensus machine over a real chain and a transport.

``consensus.Consensus`` decides block ids; it signs nothing, stores nothing and keeps no
time. ``BftDriver`` is the driver docs/consensus.md ("What a driver must do") asks for, on
one asyncio event loop:

- inbound bytes are decoded (node/bft_wire.py), the sender must be a member and its
  signature must verify under that member's key (a proposal: under proposer(h, r)'s key)
  before the machine sees them (node/bft_inbound.py); everything else is dropped and counted;
- the membership is per height (chain/membership.py: the on-chain ``tl.consensus.members``
  in the state the height builds on): member ids, proposer rotation and vote keys of height
  h are that membership's, and this node signs with whichever of its keys (``NodeKeyRing``)
  is a member at h, or not at all. A message of the next height from a sender who is not a
  member now waits (bounded, node/bft_inbound.py) until that height starts and is then
  checked against its membership, so a member added at h+1 is heard from its first message;
- actions are carried out in the order returned, and the machine's ``PersistentState`` is
  handed to ``persist`` *before* any signature leaves the signer, so a lock is never lost
  after a vote that relied on it was sent;
- every signature goes through the ``ChainSigner`` at the message's guard position
  (node/bft_signing.py); a guard refusal means the message is neither sent nor delivered back
  (the machine counts its own messages only when they come back signed);
- chain work (building a block, re-executing a peer's block, committing) is heavy and touches
  the store, so it runs on ONE worker thread (node/bft_loop.py), in submission order: the
  publisher, validator and store never run concurrently with each other, and the loop stays
  free for messages and timers;
- a decision becomes a ``CommitCertificate`` of the deciding round's precommits (a precommit
  *is* a commit vote) and is committed through ``BlockPublisher.commit``, which drops the
  block's batches from this node's pool in the same write.

Two things beyond the machine, both for liveness only (timers and re-sends never touch
safety): an idle height does not spin rounds (the propose timer is parked while this node has
no pending batch and has heard nothing at the height, since the publisher makes no empty
blocks), and this node re-broadcasts its messages of the current round periodically, so a
peer that was away or lost messages rejoins the round (node/bft_relay.py; the transport's
gossip may replace this later). Catch-up of heights a node missed is not built here:
``on_behind`` is the hook.

This module is the driver's loop: it feeds the machine and carries out its actions. Its own
block for a ``RequestValue`` comes from node/bft_proposer.py, block bodies and executions are
cached in node/bft_cache.py, and misbehaviour evidence is kept by node/bft_evidence.py.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from trusted_ledger.chain.block import Block, decode_block
from trusted_ledger.chain.block import block_bytes_max as format_block_bytes_max
from trusted_ledger.chain.certificate import CommitCertificate, Vote
from trusted_ledger.chain.execution import ExecutionOutcome
from trusted_ledger.chain.membership import MemberList
from trusted_ledger.chain.pool import BatchPool
from trusted_ledger.chain.publisher import BlockPublisher, ProposedBlock
from trusted_ledger.chain.signing import ChainSigner
from trusted_ledger.chain.store import ChainStore
from trusted_ledger.chain.validator import BlockValidator
from trusted_ledger.consensus import (
    Action,
    Consensus,
    Decide,
    Message,
    PersistentState,
    Proposal,
    ReportMisbehaviour,
    RequestValue,
    ScheduleTimeout,
    SignAndBroadcast,
    TimeoutConfig,
    TimeoutKind,
    ValidateBlock,
    signing_position,
)
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import (
    InternalError,
    InvalidInput,
    MalformedConsensusMessage,
    VerificationFailed,
)
from trusted_ledger.node.bft_cache import BlockBodyCache, ExecutionCache
from trusted_ledger.node.bft_evidence import Misbehaviour, evidence_max, record_misbehaviour
from trusted_ledger.node.bft_inbound import DeferredMessages, authenticate
from trusted_ledger.node.bft_loop import ChainWorker, DriverTimers
from trusted_ledger.node.bft_proposer import ProposalFile, Proposer
from trusted_ledger.node.bft_relay import MessageRelay
from trusted_ledger.node.bft_signing import PURPOSE_PREVOTE, MessageSigner, kind_name, member_id
from trusted_ledger.node.bft_wire import WireProposal, decode_message
from trusted_ledger.node.keyring import key_ring
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    CONSENSUS_DECISIONS_TOTAL,
    CONSENSUS_HEIGHT,
    CONSENSUS_MESSAGES_TOTAL,
    CONSENSUS_ROUND,
    CONSENSUS_ROUND_CHANGES_TOTAL,
)
from trusted_ledger.txn import DEFAULT_LIMITS, TxnLimits

__all__ = [
    "PURPOSE_PREVOTE",
    "BftDriver",
    "Misbehaviour",
    "ProposalFile",
    "Transport",
    "evidence_max",
    "member_id",
    "validation_retry_ms",
]

log = get_logger("node.bft")

validation_retry_ms = 500
"""Delay before re-executing a block whose execution failed locally (not deterministically)."""

_DEFAULT_TIMEOUTS = TimeoutConfig()


class Transport(Protocol):
    """What the driver needs from the peer transport: send to every other member.

    Delivery is best effort (the protocol tolerates loss, and the driver re-sends its
    messages of the current round). Inbound data goes to ``BftDriver.on_message`` on the
    driver's event loop.
    """

    def broadcast(self, data: bytes) -> None: ...


class BftDriver:
    """One member node's consensus: machine, signer, chain and transport on one event loop.

    ``persist`` must write the state durably before returning (a file with fsync, or a
    storage column); ``restored`` is what it last wrote, for a restart. Call ``start`` from
    the running loop; the transport calls ``on_message`` for each inbound message.
    """

    def __init__(
        self,
        *,
        store: ChainStore,
        pool: BatchPool,
        publisher: BlockPublisher,
        validator: BlockValidator,
        signer: ChainSigner,
        transport: Transport,
        members: Sequence[PublicKey] | None = None,
        persist: Callable[[PersistentState], None],
        restored: PersistentState | None = None,
        timeouts: TimeoutConfig = _DEFAULT_TIMEOUTS,
        clock_ms: Callable[[], int],
        resend_interval_ms: int = 1000,
        idle_poll_ms: int = 50,
        on_behind: Callable[[int], None] | None = None,
        on_commit: Callable[[Block, CommitCertificate], None] | None = None,
        txn_limits: TxnLimits = DEFAULT_LIMITS,
        block_bytes_max: int = format_block_bytes_max,
        proposal_file: ProposalFile | None = None,
    ) -> None:
        if resend_interval_ms <= 0 or idle_poll_ms <= 0:
            raise InvalidInput("resend_interval_ms and idle_poll_ms must be positive")
        self._store = store
        self._pool = pool
        self._publisher = publisher
        self._validator = validator
        self._signer = key_ring(signer)
        self._transport = transport
        self._persist = persist
        self._timeouts = timeouts
        self._clock_ms = clock_ms
        self._resend_s = resend_interval_ms / 1000
        self._idle_poll_s = idle_poll_ms / 1000
        self._on_behind = on_behind
        self._on_commit = on_commit
        self._txn_limits = txn_limits
        self._block_bytes_max = block_bytes_max
        head = store.head
        if head is None:
            raise InternalError("consensus needs a committed genesis block")
        height = head.number + 1
        if restored is not None and restored.height != height:
            # A state of an earlier height is stale (that height is committed); one of a later
            # height means the store lost blocks: the guard still prevents double signing,
            # but the lock cannot be honoured, so say so loudly.
            log_method = log.info if restored.height < height else log.error
            log_method("bft.restored_state_ignored", state_height=restored.height, height=height)
            restored = None
        self._enter_membership(height)
        if members is not None and tuple(member_id(k) for k in members) != self._member_ids:
            # Paired check for callers that still pass the members: they must be the ones
            # the chain says decide this height.
            raise InvalidInput(
                f"the members given differ from the membership of height {height} on chain"
            )
        self._machine = Consensus(
            self._me, height, self._member_ids, timeouts=timeouts, restored=restored
        )
        self._init_runtime(height, restored)
        self._proposer = Proposer(
            store=store,
            pool=pool,
            publisher=publisher,
            validator=validator,
            txn_limits=txn_limits,
            clock_ms=clock_ms,
            proposal_file=proposal_file,
            submit=self._worker.submit,
            me=lambda: self._me,
            on_value=self._on_value,
        )

    def _enter_membership(self, height: int) -> None:
        """Take ``height``'s membership: member ids and keys, and which key of ours signs."""
        members: MemberList = self._validator.memberships.at(height)
        self._keys = dict(zip(members.ids, members.keys, strict=True))
        self._member_ids = members.ids
        chosen = self._signer.choose(members)
        # Not a member at this height: an id of ours outside the membership makes the
        # machine an observer (it follows and decides, never signs).
        key = chosen.public_key if chosen is not None else self._signer.signers[0].public_key
        self._me = member_id(key)
        self.membership = members

    def _init_runtime(self, height: int, restored: PersistentState | None) -> None:
        """The driver's own state beside the machine's: work queue, timers, caches."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker = ChainWorker()
        self._timers = DriverTimers(on_timeout=self._timeout, idle=self._idle)
        self._stopped = False
        self._queue: deque[Action] = deque()
        self._draining = False
        self._last_persisted: PersistentState | None = restored
        self._heard_at_height = False
        self._heard_next_height = False
        self._bodies = BlockBodyCache()
        self._executed = ExecutionCache()
        self._signing = MessageSigner(self._signer, block_bytes_max=self._block_bytes_max)
        self._relay = MessageRelay()
        self._deferred = DeferredMessages()
        self._behind_reported = height + 1
        self._observed = (height, -1)
        self.evidence: deque[Misbehaviour] = deque(maxlen=evidence_max)
        self.failure: BaseException | None = None
        """The first error that stopped this driver's progress (a failed commit)."""

    # --- public surface --------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self._machine.height

    @property
    def round(self) -> int:
        return self._machine.round

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._stopped

    @property
    def signing_refusals(self) -> int:
        """Messages the signing guard refused to sign (none left this node)."""
        return self._signing.refusals

    def start(self) -> None:
        """Start the machine (round 0, or where a restart resumes); call on the loop."""
        if self._loop is not None:
            raise InvalidInput("the driver was already started")
        self._loop = asyncio.get_running_loop()
        self._worker.start(self._loop)
        self._timers.start(self._loop)
        log.info("bft.start", height=self.height, members=len(self._member_ids))
        self._run(self._machine.start())
        self._loop.call_later(self._idle_poll_s, self._tick)
        self._loop.call_later(self._resend_s, self._resend)

    def stop(self) -> None:
        """Stop taking input and cancel timers; chain work already running finishes, and
        its result is ignored. The machine is not usable afterwards (restart = new driver)."""
        self._stopped = True
        self._timers.stop()
        self._worker.stop()

    async def wait_stopped(self) -> None:
        """After ``stop``: wait until chain work that was running has finished, so the store,
        publisher and validator can be handed to someone else (catch-up, a new driver)
        without two threads ever using them at once."""
        await self._worker.wait_stopped()

    def on_message(self, data: bytes) -> None:
        """Inbound bytes from a peer: decode, authenticate, feed the machine."""
        if self._stopped or self._loop is None:
            return
        try:
            decoded = decode_message(data, block_bytes_max=self._block_bytes_max)
        except MalformedConsensusMessage as exc:
            self._count_in("unknown", "malformed")
            log.info("bft.drop_malformed", error=str(exc))
            return
        message: Message = decoded.proposal if isinstance(decoded, WireProposal) else decoded.vote
        kind = kind_name(message)
        reason = authenticate(
            message,
            decoded.chain_id,
            our_chain_id=self._store.chain_id,
            keys=self._keys,
            me=self._me,
            machine=self._machine,
        )
        height = self._machine.height
        if reason == "not_member" and message.height == height + 1:
            self._defer(data, kind, held=False)
            return
        if reason is not None:
            self._count_in(kind, reason)
            return
        if message.height > height + 1:
            self._count_in(kind, "ahead")
            self._report_behind(message.height)
            return
        if message.height < height:
            self._count_in(kind, "old")
            if message.height == height - 1:
                self._send_last_decision()
            return
        self._count_in(kind, "accepted")
        if message.height == height:
            self._hear()
        else:
            self._heard_next_height = True
            self._defer(data, kind, held=True)
        if isinstance(decoded, WireProposal):
            self._bodies.keep(decoded.proposal.block_id, message.height, decoded.block_bytes)
            self._relay.heard_proposal(message.height, message.round, data)
            self._run(self._machine.on_proposal(decoded.proposal))
        else:
            self._run(self._machine.on_vote(decoded.vote))

    # --- inbound checks --------------------------------------------------------------------

    def _defer(self, data: bytes, kind: str, *, held: bool) -> None:
        """Keep a next-height message: one of a sender outside this height's membership
        (``held`` False: the machine drops it), or one the machine buffers (``held``: kept
        for a new machine, should this node's identity change at that height)."""
        kept = self._deferred.keep(data, held=held)
        if not held:
            self._count_in(kind, "deferred" if kept else "not_member")

    def _replay_deferred(self, *, all_messages: bool) -> None:
        """At a new height: feed kept messages again (those of this height are checked
        against its membership; those of a later height are deferred once more). Messages
        the machine buffered itself are replayed only to a new machine."""
        for data, held in self._deferred.take():
            if all_messages or not held:
                self.on_message(data)

    def _report_behind(self, height: int) -> None:
        """A member is at a height this node cannot accept messages of: it missed blocks.
        Catch-up (fetch certified blocks, commit, rebuild the machine) hooks in here."""
        if height <= self._behind_reported:
            return
        self._behind_reported = height
        log.warning("bft.behind", height=self._machine.height, seen_height=height)
        if self._on_behind is not None:
            self._on_behind(height)

    # --- carrying out actions ----------------------------------------------------------------

    def _run(self, actions: list[Action]) -> None:
        """Queue ``actions`` and carry them out in order. Delivering our own message back
        to the machine returns more actions; they go to the end of the queue, so the order
        the machine returned is kept across nested calls."""
        self._queue.extend(actions)
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue and not self._stopped:
                self._perform(self._queue.popleft())
        finally:
            self._draining = False
        self._observe()

    def _perform(self, action: Action) -> None:
        if isinstance(action, SignAndBroadcast):
            self._sign_and_broadcast(action.message)
        elif isinstance(action, RequestValue):
            self._proposer.request(action)
        elif isinstance(action, ValidateBlock):
            self._validate(action.height, action.block_id)
        elif isinstance(action, ScheduleTimeout):
            self._timers.schedule(action)
        elif isinstance(action, Decide):
            self._decide(action)
        elif isinstance(action, ReportMisbehaviour):
            record_misbehaviour(self.evidence, action)

    def _persist_state(self) -> None:
        """Write the machine's state if it changed: always before a signature is made."""
        state = self._machine.persistent_state()
        if state != self._last_persisted:
            self._persist(state)
            self._last_persisted = state

    def _sign_and_broadcast(self, message: Message) -> None:
        chain_id = self._store.chain_id
        self._persist_state()
        signed: tuple[Message, bytes] | None
        if isinstance(message, Proposal):
            block_bytes = self._bodies.get(message.block_id)
            if block_bytes is None:
                # After a restart (or an eviction) the valid value's body is gone: a proposal
                # without it is useless to peers. This round will time out; nothing is signed.
                log.warning("bft.proposal_body_missing", height=message.height, round=message.round)
                return
            executed = self._executed.get(message.block_id)
            signed = self._signing.sign_proposal(
                chain_id,
                message,
                block_bytes,
                executed=None if executed is None else executed[0],
                me=self._me,
            )
        else:
            signed = self._signing.sign_vote(chain_id, message)
        if signed is None:
            return  # the guard refused: neither sent nor delivered back
        sent, data = signed
        self._transport.broadcast(data)
        CONSENSUS_MESSAGES_TOTAL.labels(direction="out", kind=kind_name(sent), result="sent").inc()
        self._relay.sent(signing_position(sent), data)
        self._hear()
        if isinstance(sent, Proposal):
            self._run(self._machine.on_proposal(sent))
        else:
            self._run(self._machine.on_vote(sent))

    # --- proposing -----------------------------------------------------------------------------

    def _on_value(self, request: RequestValue, proposed: ProposedBlock) -> None:
        """Our block for ``request`` is built (and signed): keep it, give its id to the machine."""
        block = proposed.block
        self._bodies.keep(block.id, block.number, block.encode())
        self._executed.keep(block, proposed.outcome, height=self._machine.height)
        self._run(self._machine.on_value(request.height, request.round, block.id))

    # --- validating ------------------------------------------------------------------------------

    def _validate(self, height: int, block_id: bytes) -> None:
        block_bytes = self._bodies.get(block_id)
        if block_bytes is None:
            # Never call a block invalid for lacking its body: wait for it (catch-up or a
            # re-sent proposal would bring it; the machine asks only once, so log it).
            log.warning("bft.block_body_missing", height=height, block=block_id.hex()[:16])
            return

        def work() -> tuple[Block, ExecutionOutcome]:
            block = decode_block(block_bytes, self._txn_limits, known=self._pool.holds)
            return block, self._validator.validate(block)

        def done(result: tuple[Block, ExecutionOutcome]) -> None:
            self._executed.keep(*result, height=self._machine.height)
            self._run(self._machine.on_block_validated(height, block_id, True))

        def failed(exc: BaseException) -> None:
            if isinstance(exc, (InvalidInput, VerificationFailed)):
                # Deterministic: every honest node finds the same (bad batch, bad root...).
                log.info(
                    "bft.block_invalid", height=height, block=block_id.hex()[:16], error=str(exc)
                )
                self._run(self._machine.on_block_validated(height, block_id, False))
                return
            # Local trouble (a processor away, storage hiccup): not the block's fault, so no
            # verdict; retry while the height lasts.
            log.warning("bft.validate_retry", height=height, error=str(exc))
            self._timers.later(validation_retry_ms / 1000, self._revalidate, height, block_id)

        self._worker.submit(work, done, on_error=failed)

    def _revalidate(self, height: int, block_id: bytes) -> None:
        if height == self._machine.height and self._machine.decision is None:
            self._validate(height, block_id)

    # --- timers ------------------------------------------------------------------------------

    def _idle(self) -> bool:
        """Nothing to decide at this height yet: no pending batch here and no message of the
        height heard. Rounds then wait instead of timing out one after another."""
        return not self._heard_at_height and len(self._pool) == 0

    def _hear(self) -> None:
        self._heard_at_height = True
        self._timers.wake()

    def _timeout(self, kind: TimeoutKind, height: int, consensus_round: int) -> None:
        self._run(self._machine.on_timeout(kind, height, consensus_round))

    def _tick(self) -> None:
        """Every ``idle_poll_ms``: wake a parked round, or retry building a block, once the
        pool has batches."""
        if self._stopped:
            return
        if len(self._pool) > 0:
            self._timers.wake()
            self._proposer.try_propose()
        self._timers.later(self._idle_poll_s, self._tick)

    def _resend(self) -> None:
        """Re-broadcast our signed messages of the current round (same bytes, no new
        signature): a peer that lost them, or was away, can rejoin the round."""
        if self._stopped:
            return
        for data in self._relay.own_of_round(self._machine.height, self._machine.round):
            self._transport.broadcast(data)
        self._timers.later(self._resend_s, self._resend)

    # --- deciding ------------------------------------------------------------------------------

    def _decide(self, decision: Decide) -> None:
        self._relay.keep_decision(self._store.chain_id, decision)
        votes = [Vote(vote.voter, vote.signature) for vote in decision.precommits]
        certificate = CommitCertificate.from_votes(
            self._store.chain_id, decision.height, decision.round, decision.block_id, votes
        )
        executed = self._executed.get(decision.block_id)
        block_bytes = self._bodies.get(decision.block_id)
        if executed is None and block_bytes is None:
            raise InternalError("a decided block is neither executed nor held")

        def work() -> Block:
            if executed is not None:
                block, outcome = executed
            else:
                assert block_bytes is not None
                block = decode_block(block_bytes, self._txn_limits, known=self._pool.holds)
                outcome = self._validator.validate(block)
            # Paired assertion: what we are about to commit is certified by its membership.
            certificate.verify(self._validator.membership_at(block.number), block)
            self._publisher.commit(ProposedBlock(block, outcome), certificate)
            return block

        def done(block: Block) -> None:
            CONSENSUS_DECISIONS_TOTAL.inc()
            log.info(
                "bft.committed",
                height=decision.height,
                round=decision.round,
                block=decision.block_id.hex()[:16],
                batches=len(block.batches),
            )
            if self._on_commit is not None:
                self._on_commit(block, certificate)
            self._new_height(decision.height)

        def failed(exc: BaseException) -> None:
            # The decision stands (2f+1 members committed it); this node failed to store it.
            # It must not go on at the next height without the block: catch-up's work.
            self.failure = exc
            log.error("bft.commit_failed", height=decision.height, error=str(exc))

        self._worker.submit(work, done, on_error=failed)

    def _send_last_decision(self) -> None:
        """A member sent a message of the height we just committed: it has not decided it
        (lost messages). Relay the decision, at most once per resend interval."""
        assert self._loop is not None
        for data in self._relay.decision_due(self._loop.time(), self._resend_s):
            self._transport.broadcast(data)

    def _new_height(self, committed: int) -> None:
        self._executed.clear()
        self._relay.forget_through(committed)
        self._bodies.drop_through(committed)
        self._proposer.forget()
        # Messages buffered for the new height are replayed by on_committed: heard already.
        self._heard_at_height, self._heard_next_height = self._heard_next_height, False
        self._timers.drop_parked()
        me_before = self._me
        self._enter_membership(committed + 1)
        rebuilt = self._me != me_before
        if not rebuilt:
            self._run(self._machine.on_committed(committed, self._member_ids))
        else:
            # This node's key changed (a rotation takes effect, or it joins or leaves): the
            # machine's identity is fixed, so the next height gets a new machine, and the
            # next-height messages the old one buffered are replayed to it from here.
            log.info(
                "bft.identity_changed",
                height=committed + 1,
                key=self._me.hex()[:16],
                member=self._me in self._keys,
            )
            self._machine = Consensus(
                self._me, committed + 1, self._member_ids, timeouts=self._timeouts
            )
            self._run(self._machine.start())
        self._replay_deferred(all_messages=rebuilt)

    # --- metrics ----------------------------------------------------------------------------

    def _count_in(self, kind: str, result: str) -> None:
        CONSENSUS_MESSAGES_TOTAL.labels(direction="in", kind=kind, result=result).inc()

    def _observe(self) -> None:
        height, consensus_round = self._machine.height, self._machine.round
        if (height, consensus_round) != self._observed:
            if height == self._observed[0] and consensus_round > self._observed[1] >= 0:
                CONSENSUS_ROUND_CHANGES_TOTAL.inc()
            self._observed = (height, consensus_round)
            CONSENSUS_HEIGHT.set(height)
            CONSENSUS_ROUND.set(consensus_round)
