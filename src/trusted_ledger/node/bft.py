"""The BFT driver: runs the sans-I/O consensus machine over a real chain and a transport.

``consensus.Consensus`` decides block ids; it signs nothing, stores nothing and keeps no
time. ``BftDriver`` is the driver docs/consensus.md ("What a driver must do") asks for, on
one asyncio event loop:

- inbound bytes are decoded (node/bft_wire.py), the sender must be a member and its
  signature must verify under that member's key (a proposal: under proposer(h, r)'s key)
  before the machine sees them; everything else is dropped and counted;
- the membership is per height (chain/membership.py: the on-chain ``tl.consensus.members``
  in the state the height builds on): member ids, proposer rotation and vote keys of height
  h are that membership's, and this node signs with whichever of its keys (``NodeKeyRing``)
  is a member at h, or not at all. A message of the next height from a sender who is not a
  member now waits (bounded) until that height starts and is then checked against its
  membership, so a member added at h+1 is heard from its first message;
- actions are carried out in the order returned, and the machine's ``PersistentState`` is
  handed to ``persist`` *before* any signature leaves the signer, so a lock is never lost
  after a vote that relied on it was sent;
- every signature goes through the ``ChainSigner`` at the message's guard position; a guard
  refusal means the message is neither sent nor delivered back (the machine counts its own
  messages only when they come back signed);
- chain work (building a block, re-executing a peer's block, committing) is heavy and
  touches the store, so it runs on ONE worker thread, in submission order: the publisher,
  validator and store never run concurrently with each other, and the loop stays free for
  messages and timers;
- a decision becomes a ``CommitCertificate`` of the deciding round's precommits (a precommit
  *is* a commit vote) and is committed through ``BlockPublisher.commit``, which drops the
  block's batches from this node's pool in the same write.

Two things beyond the machine, both for liveness only (timers and re-sends never touch
safety): an idle height does not spin rounds (the propose timer is parked while this node has
no pending batch and has heard nothing at the height, since the publisher makes no empty
blocks), and this node re-broadcasts its messages of the current round periodically, so a
peer that was away or lost messages rejoins the round (the transport's gossip may replace
this later). Catch-up of heights a node missed is not built here: ``on_behind`` is the hook.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from trusted_ledger.chain.block import Block, decode_block
from trusted_ledger.chain.block import block_bytes_max as format_block_bytes_max
from trusted_ledger.chain.certificate import CommitCertificate, Vote
from trusted_ledger.chain.execution import ExecutionOutcome
from trusted_ledger.chain.membership import MemberList
from trusted_ledger.chain.pool import BatchPool
from trusted_ledger.chain.publisher import BlockPublisher, ProposedBlock
from trusted_ledger.chain.signing import PURPOSE_BLOCK, PURPOSE_VOTE, ChainSigner
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
    VoteKind,
    VoteMessage,
    message_digest,
    signing_position,
)
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import (
    InternalError,
    InvalidInput,
    MalformedConsensusMessage,
    SigningRefused,
    TrustedLedgerError,
    VerificationFailed,
)
from trusted_ledger.node.bft_wire import (
    WireProposal,
    decode_message,
    encode_proposal,
    encode_vote,
)
from trusted_ledger.node.keyring import key_ring
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    CONSENSUS_DECISIONS_TOTAL,
    CONSENSUS_HEIGHT,
    CONSENSUS_MESSAGES_TOTAL,
    CONSENSUS_MISBEHAVIOUR_TOTAL,
    CONSENSUS_ROUND,
    CONSENSUS_ROUND_CHANGES_TOTAL,
)
from trusted_ledger.txn import DEFAULT_LIMITS, TxnLimits

log = get_logger("node.bft")

PURPOSE_PREVOTE = "prevote"
"""Audit purpose of a prevote: a vote, but never a commit vote, so compliance can tell them
apart in the key-usage trail (precommits use ``chain.signing.PURPOSE_VOTE``)."""

block_cache_max = 32
"""Proposed block bodies kept (by block id) for validation, re-proposal and commit."""
block_cache_bytes_max = 256 * 1024 * 1024
"""Bytes of proposed block bodies kept; the oldest go first (a later need costs liveness,
never safety: a node without the body simply does not vote for the block)."""
executed_blocks_max = 8
"""Executions (state updates) kept for the current height; an evicted one is re-executed
at commit."""
evidence_max = 1024
"""Misbehaviour reports kept in memory (all are logged and counted)."""
deferred_messages_max = 1024
"""Next-height messages from senders outside the current membership, kept until that
height's membership can say whether they count (more are dropped; re-sends recover)."""
deferred_bytes_max = 64 * 1024 * 1024
validation_retry_ms = 500
"""Delay before re-executing a block whose execution failed locally (not deterministically)."""

_DEFAULT_TIMEOUTS = TimeoutConfig()
_KIND_NAMES = {VoteKind.PREVOTE: "prevote", VoteKind.PRECOMMIT: "precommit"}
_T = TypeVar("_T")


class ProposalFile(Protocol):
    """Where the driver keeps the last block it signed as proposer, durably (node/catchup.py
    ``OwnProposalFile``): written before the proposal leaves, so a member that crashes
    between signing and sending re-proposes the same signed block after a restart instead
    of losing the round to its own guard (which refuses a second proposal signature)."""

    def save(self, block: bytes) -> None: ...

    def load(self) -> bytes | None: ...


class Transport(Protocol):
    """What the driver needs from the peer transport: send to every other member.

    Delivery is best effort (the protocol tolerates loss, and the driver re-sends its
    messages of the current round). Inbound data goes to ``BftDriver.on_message`` on the
    driver's event loop.
    """

    def broadcast(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class Misbehaviour:
    """Two different signed messages of ``member`` at one (height, round, step)."""

    member: bytes
    first: Message
    second: Message


def member_id(key: PublicKey) -> bytes:
    """The consensus id of a member: its key fingerprint's 32 raw bytes."""
    return bytes.fromhex(key.fingerprint)


def _kind_name(message: Message) -> str:
    return "proposal" if isinstance(message, Proposal) else _KIND_NAMES[message.kind]


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
        self._proposal_file = proposal_file
        self._saved_proposal = _load_saved(proposal_file)

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
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopped = False
        self._queue: deque[Action] = deque()
        self._draining = False
        self._last_persisted: PersistentState | None = restored
        self._timers: set[asyncio.TimerHandle] = set()
        self._parked: list[ScheduleTimeout] = []
        self._heard_at_height = False
        self._heard_next_height = False
        self._awaiting_value: RequestValue | None = None
        self._proposing = False
        self._blocks: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()
        self._block_bytes_total = 0
        self._executed: OrderedDict[bytes, tuple[Block, ExecutionOutcome]] = OrderedDict()
        self._own_messages: dict[tuple[int, int, int], bytes] = {}
        self._proposals_seen: dict[tuple[int, int], bytes] = {}
        self._last_decision: list[bytes] = []
        self._last_decision_sent_s = 0.0
        self._deferred: deque[tuple[bytes, bool]] = deque()
        """Raw next-height messages: (bytes, whether the machine holds it too)."""
        self._deferred_bytes = 0
        self._behind_reported = height + 1
        self._observed = (height, -1)
        self.evidence: deque[Misbehaviour] = deque(maxlen=evidence_max)
        self.signing_refusals = 0
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

    def start(self) -> None:
        """Start the machine (round 0, or where a restart resumes); call on the loop."""
        if self._loop is not None:
            raise InvalidInput("the driver was already started")
        self._loop = asyncio.get_running_loop()
        self._worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bft-chain"
        )
        log.info("bft.start", height=self.height, members=len(self._member_ids))
        self._run(self._machine.start())
        self._loop.call_later(self._idle_poll_s, self._tick)
        self._loop.call_later(self._resend_s, self._resend)

    def stop(self) -> None:
        """Stop taking input and cancel timers; chain work already running finishes, and
        its result is ignored. The machine is not usable afterwards (restart = new driver)."""
        self._stopped = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._parked.clear()
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)

    async def wait_stopped(self) -> None:
        """After ``stop``: wait until chain work that was running has finished, so the store,
        publisher and validator can be handed to someone else (catch-up, a new driver)
        without two threads ever using them at once."""
        if self._worker is not None:
            await asyncio.to_thread(self._worker.shutdown, wait=True)

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
        kind = _kind_name(message)
        reason = self._authenticate(decoded.chain_id, message)
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
            self._keep_block(decoded.proposal.block_id, message.height, decoded.block_bytes)
            self._proposals_seen.setdefault((message.height, message.round), data)
            self._run(self._machine.on_proposal(decoded.proposal))
        else:
            self._run(self._machine.on_vote(decoded.vote))

    # --- inbound checks --------------------------------------------------------------------

    def _authenticate(self, chain_id: str, message: Message) -> str | None:
        """None if ``message`` may go to the machine, else the drop reason (a metric label)."""
        if chain_id != self._store.chain_id:
            return "wrong_chain"
        sender = message.proposer if isinstance(message, Proposal) else message.voter
        key = self._keys.get(sender)
        if key is None:
            return "not_member"
        if sender == self._me:
            return "own"  # our messages are delivered back directly, once, when signed
        if (
            isinstance(message, Proposal)
            and message.height == self._machine.height
            and sender != self._machine.proposer(message.height, message.round)
        ):
            # (A next-height proposal is checked by the machine when that height starts,
            # under that height's membership.)
            return "not_proposer"
        try:
            key.verify(message_digest(chain_id, message), message.signature)
        except (VerificationFailed, InvalidInput):
            return "bad_signature"
        return None

    def _defer(self, data: bytes, kind: str, *, held: bool) -> None:
        """Keep a next-height message: one of a sender outside this height's membership
        (``held`` False: the machine drops it), or one the machine buffers (``held``: kept
        for a new machine, should this node's identity change at that height)."""
        if (
            len(self._deferred) >= deferred_messages_max
            or self._deferred_bytes + len(data) > deferred_bytes_max
        ):
            if not held:
                self._count_in(kind, "not_member")
            return
        self._deferred.append((data, held))
        self._deferred_bytes += len(data)
        if not held:
            self._count_in(kind, "deferred")

    def _replay_deferred(self, *, all_messages: bool) -> None:
        """At a new height: feed kept messages again (those of this height are checked
        against its membership; those of a later height are deferred once more). Messages
        the machine buffered itself are replayed only to a new machine."""
        deferred, self._deferred = self._deferred, deque()
        self._deferred_bytes = 0
        for data, held in deferred:
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
            self._awaiting_value = action
            self._try_propose()
        elif isinstance(action, ValidateBlock):
            self._validate(action.height, action.block_id)
        elif isinstance(action, ScheduleTimeout):
            self._schedule(action)
        elif isinstance(action, Decide):
            self._decide(action)
        elif isinstance(action, ReportMisbehaviour):
            self._report(action)

    def _persist_state(self) -> None:
        """Write the machine's state if it changed: always before a signature is made."""
        state = self._machine.persistent_state()
        if state != self._last_persisted:
            self._persist(state)
            self._last_persisted = state

    def _sign_and_broadcast(self, message: Message) -> None:
        chain_id = self._store.chain_id
        self._persist_state()
        if isinstance(message, Proposal):
            cached = self._blocks.get(message.block_id)
            if cached is None:
                # After a restart (or an eviction) the valid value's body is gone: a proposal
                # without it is useless to peers. This round will time out; nothing is signed.
                log.warning("bft.proposal_body_missing", height=message.height, round=message.round)
                return
            signature = self._proposal_signature(message, chain_id)
            if signature is None:
                return
            signed: Message = _with_signature(message, signature)
            assert isinstance(signed, Proposal)
            data = encode_proposal(
                chain_id, signed, cached[1], block_bytes_max=self._block_bytes_max
            )
        else:
            purpose = PURPOSE_VOTE if message.kind is VoteKind.PRECOMMIT else PURPOSE_PREVOTE
            signature = self._sign(message_digest(chain_id, message), purpose, message)
            if signature is None:
                return
            signed = _with_signature(message, signature)
            assert isinstance(signed, VoteMessage)
            data = encode_vote(chain_id, signed)
        self._transport.broadcast(data)
        CONSENSUS_MESSAGES_TOTAL.labels(
            direction="out", kind=_kind_name(signed), result="sent"
        ).inc()
        position = signing_position(signed)
        self._own_messages[(position.height, position.round, position.step)] = data
        self._hear()
        if isinstance(signed, Proposal):
            self._run(self._machine.on_proposal(signed))
        else:
            self._run(self._machine.on_vote(signed))

    def _proposal_signature(self, proposal: Proposal, chain_id: str) -> bytes | None:
        """Our block's own signature when the proposal is in the round the block was signed
        for (the same digest at the same guard position: one signature, one audit record);
        otherwise (a valid value re-proposed in a later round, or a peer's block we hold as
        valid) a new signature over the block id at (h, r', propose)."""
        executed = self._executed.get(proposal.block_id)
        if executed is not None:
            block = executed[0]
            if (
                block.header.consensus_round == proposal.round
                and member_id(block.header.proposer) == self._me
            ):
                return block.proposer_signature
        return self._sign(message_digest(chain_id, proposal), PURPOSE_BLOCK, proposal)

    def _sign(self, digest: bytes, purpose: str, message: Message) -> bytes | None:
        try:
            return self._signer.sign(
                digest, purpose=purpose, position=signing_position(message)
            ).raw
        except SigningRefused as exc:
            # The guard is the last line against equivocation (invariant 3): a refused
            # message is dropped, never delivered back, so the machine never counts it.
            self.signing_refusals += 1
            CONSENSUS_MESSAGES_TOTAL.labels(
                direction="out", kind=_kind_name(message), result="refused"
            ).inc()
            log.warning(
                "bft.signing_refused",
                kind=_kind_name(message),
                height=message.height,
                round=message.round,
                error=str(exc),
            )
            return None

    # --- proposing -----------------------------------------------------------------------------

    def _try_propose(self) -> None:
        """Build a block for the pending ``RequestValue`` on the worker thread. With an empty
        pool nothing is built (the publisher makes no empty blocks); ``_tick`` retries."""
        request = self._awaiting_value
        if request is None or self._proposing or len(self._pool) == 0:
            return
        self._proposing = True
        now_ms = self._clock_ms()

        def work() -> ProposedBlock | None:
            reused = self._reuse_saved_proposal(request)
            if reused is not None:
                return reused
            proposed = self._publisher.propose(now_ms, first_round=request.round)
            if proposed is not None and self._proposal_file is not None:
                self._proposal_file.save(proposed.block.encode())
            return proposed

        self._submit(
            work,
            lambda result: self._proposed(request, result),
            on_error=lambda exc: self._propose_failed(request, exc),
        )

    def _reuse_saved_proposal(self, request: RequestValue) -> ProposedBlock | None:
        """The block this member signed for exactly this height and round before a restart,
        re-executed (worker thread); None if there is none or it is for another position."""
        data, self._saved_proposal = self._saved_proposal, None
        if data is None:
            return None
        try:
            block = decode_block(data, self._txn_limits, verify_batch_signatures=False)
        except TrustedLedgerError as exc:
            log.warning("bft.saved_proposal_unreadable", error=str(exc))
            return None
        head = self._store.head
        if (
            head is None
            or block.number != request.height
            or block.header.consensus_round != request.round
            or block.header.previous_block_id != head.block_id
            or member_id(block.header.proposer) != self._me
        ):
            return None
        outcome = self._validator.validate(block)
        log.info(
            "bft.saved_proposal_reused",
            height=request.height,
            round=request.round,
            block=block.id.hex()[:16],
        )
        return ProposedBlock(block, outcome)

    def _proposed(self, request: RequestValue, proposed: ProposedBlock | None) -> None:
        self._proposing = False
        if self._awaiting_value != request:
            return  # the round moved on; the block (if any) is never sent
        if proposed is None:
            return  # nothing valid waits; _tick tries again when the pool changes
        block = proposed.block
        if block.number != request.height or block.header.consensus_round != request.round:
            # The guard refused round r (we signed a proposal there before a restart) and the
            # publisher signed a later round: that block cannot be this round's proposal.
            log.warning(
                "bft.proposal_round_moved",
                height=request.height,
                round=request.round,
                signed_round=block.header.consensus_round,
            )
            self._awaiting_value = None
            return
        self._awaiting_value = None
        self._keep_block(block.id, block.number, block.encode())
        self._keep_executed(block, proposed.outcome)
        self._run(self._machine.on_value(request.height, request.round, block.id))

    def _propose_failed(self, request: RequestValue, exc: BaseException) -> None:
        self._proposing = False
        log.error("bft.propose_failed", height=request.height, round=request.round, error=str(exc))
        if self._awaiting_value == request:
            self._awaiting_value = None  # the propose timeout moves the round on

    # --- validating ------------------------------------------------------------------------------

    def _validate(self, height: int, block_id: bytes) -> None:
        cached = self._blocks.get(block_id)
        if cached is None:
            # Never call a block invalid for lacking its body: wait for it (catch-up or a
            # re-sent proposal would bring it; the machine asks only once, so log it).
            log.warning("bft.block_body_missing", height=height, block=block_id.hex()[:16])
            return
        block_bytes = cached[1]

        def work() -> tuple[Block, ExecutionOutcome]:
            block = decode_block(block_bytes, self._txn_limits, known=self._pool.holds)
            return block, self._validator.validate(block)

        def done(result: tuple[Block, ExecutionOutcome]) -> None:
            self._keep_executed(*result)
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
            self._later(validation_retry_ms / 1000, self._revalidate, height, block_id)

        self._submit(work, done, on_error=failed)

    def _revalidate(self, height: int, block_id: bytes) -> None:
        if height == self._machine.height and self._machine.decision is None:
            self._validate(height, block_id)

    # --- timers ------------------------------------------------------------------------------

    def _schedule(self, action: ScheduleTimeout) -> None:
        if action.kind is TimeoutKind.PROPOSE and self._idle():
            self._parked.append(action)
            return
        self._later(action.delay_ms / 1000, self._timeout, action.kind, action.height, action.round)

    def _idle(self) -> bool:
        """Nothing to decide at this height yet: no pending batch here and no message of the
        height heard. Rounds then wait instead of timing out one after another."""
        return not self._heard_at_height and len(self._pool) == 0

    def _hear(self) -> None:
        self._heard_at_height = True
        self._arm_parked()

    def _arm_parked(self) -> None:
        parked, self._parked = self._parked, []
        for action in parked:
            self._later(
                action.delay_ms / 1000, self._timeout, action.kind, action.height, action.round
            )

    def _timeout(self, kind: TimeoutKind, height: int, consensus_round: int) -> None:
        self._run(self._machine.on_timeout(kind, height, consensus_round))

    def _tick(self) -> None:
        """Every ``idle_poll_ms``: wake a parked round, or retry building a block, once the
        pool has batches."""
        if self._stopped:
            return
        if len(self._pool) > 0:
            self._arm_parked()
            self._try_propose()
        self._later(self._idle_poll_s, self._tick)

    def _resend(self) -> None:
        """Re-broadcast our signed messages of the current round (same bytes, no new
        signature): a peer that lost them, or was away, can rejoin the round."""
        if self._stopped:
            return
        height, consensus_round = self._machine.height, self._machine.round
        for (h, r, _step), data in sorted(self._own_messages.items()):
            if (h, r) == (height, consensus_round):
                self._transport.broadcast(data)
        self._later(self._resend_s, self._resend)

    def _later(self, delay_s: float, callback: Callable[..., object], *args: object) -> None:
        assert self._loop is not None
        if self._stopped:
            return
        timer: asyncio.TimerHandle | None = None

        def fire() -> None:
            if timer is not None:
                self._timers.discard(timer)
            if not self._stopped:
                callback(*args)

        timer = self._loop.call_later(delay_s, fire)
        self._timers.add(timer)

    # --- deciding ------------------------------------------------------------------------------

    def _decide(self, decision: Decide) -> None:
        self._keep_decision(decision)
        votes = [Vote(vote.voter, vote.signature) for vote in decision.precommits]
        certificate = CommitCertificate.from_votes(
            self._store.chain_id, decision.height, decision.round, decision.block_id, votes
        )
        executed = self._executed.get(decision.block_id)
        cached = self._blocks.get(decision.block_id)
        if executed is None and cached is None:
            raise InternalError("a decided block is neither executed nor held")

        def work() -> Block:
            if executed is not None:
                block, outcome = executed
            else:
                assert cached is not None
                block = decode_block(cached[1], self._txn_limits, known=self._pool.holds)
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

        self._submit(work, done, on_error=failed)

    def _keep_decision(self, decision: Decide) -> None:
        """The decision's proposal and precommits, as signed by their senders, to relay to
        a member still at this height: they are exactly what its machine needs to decide
        (line 49), and signatures, not the relay, make them count."""
        key = (decision.height, decision.round)
        proposal = self._proposals_seen.get(key) or self._own_messages.get((*key, 1))
        chain_id = self._store.chain_id
        precommits = [encode_vote(chain_id, vote) for vote in decision.precommits]
        self._last_decision = ([proposal] if proposal is not None else []) + precommits

    def _send_last_decision(self) -> None:
        """A member sent a message of the height we just committed: it has not decided it
        (lost messages). Relay the decision, at most once per resend interval."""
        assert self._loop is not None
        now_s = self._loop.time()
        if not self._last_decision or now_s - self._last_decision_sent_s < self._resend_s:
            return
        self._last_decision_sent_s = now_s
        for data in self._last_decision:
            self._transport.broadcast(data)

    def _new_height(self, committed: int) -> None:
        self._executed.clear()
        self._proposals_seen = {k: v for k, v in self._proposals_seen.items() if k[0] > committed}
        self._own_messages = {k: v for k, v in self._own_messages.items() if k[0] > committed}
        for block_id in [b for b, (h, _) in self._blocks.items() if h <= committed]:
            self._drop_block(block_id)
        self._awaiting_value = None
        # Messages buffered for the new height are replayed by on_committed: heard already.
        self._heard_at_height, self._heard_next_height = self._heard_next_height, False
        self._parked.clear()
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

    def _report(self, report: ReportMisbehaviour) -> None:
        self.evidence.append(Misbehaviour(report.member, report.first, report.second))
        CONSENSUS_MISBEHAVIOUR_TOTAL.inc()
        log.warning(
            "bft.misbehaviour",
            member=report.member.hex()[:16],
            kind=_kind_name(report.first),
            height=report.first.height,
            round=report.first.round,
        )

    # --- caches, worker, metrics -----------------------------------------------------------

    def _keep_block(self, block_id: bytes, height: int, data: bytes) -> None:
        if block_id in self._blocks:
            self._blocks.move_to_end(block_id)
            return
        self._blocks[block_id] = (height, data)
        self._block_bytes_total += len(data)
        while len(self._blocks) > block_cache_max or (
            self._block_bytes_total > block_cache_bytes_max and len(self._blocks) > 1
        ):
            self._drop_block(next(iter(self._blocks)))

    def _drop_block(self, block_id: bytes) -> None:
        _, data = self._blocks.pop(block_id)
        self._block_bytes_total -= len(data)

    def _keep_executed(self, block: Block, outcome: ExecutionOutcome) -> None:
        if block.number != self._machine.height:
            return  # a late answer for a height already committed
        self._executed[block.id] = (block, outcome)
        while len(self._executed) > executed_blocks_max:
            self._executed.popitem(last=False)

    def _submit(
        self,
        work: Callable[[], _T],
        done: Callable[[_T], None],
        *,
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Run ``work`` on the chain worker thread; ``done``/``on_error`` run on the loop,
        unless the driver stopped meanwhile."""
        assert self._loop is not None and self._worker is not None
        try:
            future = self._loop.run_in_executor(self._worker, work)
        except RuntimeError:  # the worker was shut down by stop()
            return

        def finished(completed: asyncio.Future[_T]) -> None:
            if self._stopped or completed.cancelled():
                return
            exc = completed.exception()
            if exc is None:
                done(completed.result())
            elif isinstance(exc, (TrustedLedgerError, OSError)):
                on_error(exc)
            else:
                # A bug, not an input problem: surface it through the loop's handler.
                on_error(exc)
                raise exc

        future.add_done_callback(finished)

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


def _load_saved(proposal_file: ProposalFile | None) -> bytes | None:
    if proposal_file is None:
        return None
    try:
        return proposal_file.load()
    except OSError as exc:
        # Losing it costs one round at most (the guard still refuses a second signature).
        log.warning("bft.saved_proposal_unreadable", error=repr(exc))
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
