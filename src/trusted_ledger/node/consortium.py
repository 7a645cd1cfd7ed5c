"""A member node in the consortium: peer mesh, BFT driver, batch gossip and catch-up.

``PeerMesh`` (node/mesh.py) is the ``Transport`` the BFT driver asks for: one connection to
every other member of the membership on chain, dialled from the members file (the address
book).

``Consortium`` wires it to the chain:

- CONSENSUS messages go to the current ``BftDriver``;
- **gossip**: the API calls ``gossip(body)`` with every batch list it accepted; the list is
  sent to every peer as BATCHES. A receiving node checks it exactly as its API would
  (decode and verify, replay and dependency checks against committed + pending ids, pool)
  and does not gossip it on: every member is connected to every other, so one hop reaches
  the proposer, and a list that gets lost (a peer down, a full intake queue) is still in
  the pool of the node that accepted it, which proposes it at its own turn;
- **catch-up** (``BlockSync``): when the driver reports members ahead, or a peer reports a
  higher head, committed blocks are fetched with their certificates, one per BLOCK_RESPONSE,
  from peers in turn. A block is committed only under a certificate with a quorum of the
  membership *of its height* (computed from the state this node re-executed, never taken
  from a peer), re-executed by ``BlockValidator.commit``, in height order — so no single
  peer is trusted. Catch-up stops the driver (and waits for its chain work to end) before the
  first commit, and starts a new driver at the new head afterwards, because a driver
  follows the store only through its own decisions;
- **membership**: after each commit the mesh follows the next height's membership (and
  this node's key, which the driver switches when a rotation takes effect);
- a peer that sends bytes that break a format (consensus, batches, catch-up) or a block
  whose certificate does not verify is disconnected (and reconnects later, when it is an
  honest member that had a bad moment).

Everything runs on one asyncio loop; chain work runs on threads (the driver's worker, one
catch-up thread, one gossip intake thread), and catch-up never commits while the driver's
worker is busy. docs/consortium.md is the reference.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field

from trusted_ledger.api.services import CommittedOrPendingTransactions
from trusted_ledger.chain import BatchPool, Block, BlockPublisher, BlockValidator, ChainStore
from trusted_ledger.chain.block import block_bytes_max as format_block_bytes_max
from trusted_ledger.chain.block import decode_block
from trusted_ledger.chain.certificate import CommitCertificate, decode_certificate
from trusted_ledger.chain.membership import ChainMember, MemberList
from trusted_ledger.chain.signing import ChainSigner
from trusted_ledger.consensus import PersistentState, TimeoutConfig
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import (
    BatchListFault,
    InvalidInput,
    MalformedBatch,
    MalformedConsensusMessage,
    PeerFault,
    PoolFull,
    TemporarilyUnavailable,
    TrustedLedgerError,
    VerificationFailed,
)
from trusted_ledger.network import (
    MessageType,
    PeerConnection,
    PeerMessage,
    PeerServer,
)
from trusted_ledger.node.bft import BftDriver, ProposalFile
from trusted_ledger.node.bft_wire import decode_message as decode_consensus
from trusted_ledger.node.catchup import (
    BlockResponse,
    decode_block_request,
    decode_block_response,
    encode_block_request,
    encode_block_response,
)
from trusted_ledger.node.guard_check import GuardCheck
from trusted_ledger.node.keyring import key_ring
from trusted_ledger.node.members import Member
from trusted_ledger.node.mesh import PeerMesh, listen, message_limits, peer_settings
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    CONSORTIUM_CATCHUP_BLOCKS_TOTAL,
    CONSORTIUM_GOSSIP_BATCHES_TOTAL,
)
from trusted_ledger.txn import DEFAULT_LIMITS, TxnLimits, check_against_chain, decode_batch_list

__all__ = [
    "Consortium",
    "ConsortiumSettings",
    "PeerMesh",
    "listen",
    "message_limits",
    "peer_settings",
]

log = get_logger("node.consortium")

blocks_per_request_max = 16
"""Heights one BLOCK_REQUEST may ask for: a responder reads at most this many blocks for one
request, and serves one request per peer at a time."""
gossip_lists_max = 256
"""Batch lists received from peers and waiting for the intake thread; more are dropped."""
gossip_bytes_max = 64 * 1024 * 1024
"""Bytes of those waiting lists; more are dropped (they stay in their origin's pool)."""
previous_membership_heights_max = 64
"""At start, how far back the membership before the last change is looked for (its keys
stay admitted so a member one change behind can connect and catch up)."""


@dataclass(frozen=True)
class ConsortiumSettings:
    """Timing of the consortium node (consensus timeouts and the mesh's own)."""

    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    resend_interval_ms: int = 1000
    idle_poll_ms: int = 50
    reconnect_initial_ms: int = 100
    """First redial delay after a failed dial or a lost connection; doubles per failure."""
    reconnect_max_ms: int = 5000
    head_probe_interval_ms: int = 5000
    """Every this often each peer is asked for its head (a BLOCK_REQUEST for our head + 1):
    how a node that hears no consensus traffic still notices it fell behind."""
    block_response_timeout_ms: int = 5000
    """A peer that does not deliver the next requested block in this time: ask the next."""
    block_bytes_max: int = format_block_bytes_max
    """The largest block accepted from peers (proposals and catch-up)."""


# --- the consortium node -------------------------------------------------------------------


class Consortium:
    """This node's part in the consortium: mesh, driver, gossip and catch-up on one loop."""

    def __init__(
        self,
        *,
        store: ChainStore,
        pool: BatchPool,
        publisher: BlockPublisher,
        validator: BlockValidator,
        signer: ChainSigner,
        members: Sequence[Member],
        persist: Callable[[PersistentState], None],
        restored: PersistentState | None,
        clock_ms: Callable[[], int],
        settings: ConsortiumSettings = ConsortiumSettings(),
        on_commit: Callable[[Block], None] | None = None,
        txn_limits: TxnLimits = DEFAULT_LIMITS,
        proposal_file: ProposalFile | None = None,
        guard_check: GuardCheck | None = None,
    ) -> None:
        """``members`` is the members file: the address book (and, for a chain without
        ``tl.consensus.members``, the membership the validator was made with).
        ``guard_check`` sees every committed block with its certificate, decided here or
        caught up, before this node signs at the next height (node/guard_check.py)."""
        self._store = store
        self._pool = pool
        self._publisher = publisher
        self._validator = validator
        self._signer = key_ring(signer)
        self.address_book = list(members)
        self._persist_state = persist
        self._last_state = restored
        self._clock_ms = clock_ms
        self.settings = settings
        self._on_commit = on_commit
        self._txn_limits = txn_limits
        self._proposal_file = proposal_file
        self._guard_check = guard_check
        self.peer_settings = peer_settings(
            store.chain_id, self._signer, self._admits, settings.block_bytes_max
        )
        """What the server passed to ``start`` must be listening with."""
        self._membership = validator.memberships.next()
        self.mesh = PeerMesh(
            settings=self.peer_settings,
            address_book=members,
            members=self._membership.members,
            deliver=self._deliver,
            on_connected=self._probe,
            reconnect_initial_ms=settings.reconnect_initial_ms,
            reconnect_max_ms=settings.reconnect_max_ms,
        )
        self._previous = self._membership
        self.driver: BftDriver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        # gossip intake
        self._intake: deque[tuple[PeerConnection, bytes]] = deque()
        self._intake_bytes = 0
        self._intake_ready = asyncio.Event()
        self._intake_worker = concurrent.futures.ThreadPoolExecutor(1, "gossip-intake")
        # catch-up
        self._sync_worker = concurrent.futures.ThreadPoolExecutor(1, "catch-up")
        self._target = 0
        self._responses: dict[int, tuple[PeerConnection, BlockResponse]] = {}
        self._response_arrived = asyncio.Event()
        self._syncing = False
        self._next_peer = 0
        self.caught_up_blocks = 0

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def peers_connected(self) -> int:
        return len(self.mesh.connected)

    @property
    def members(self) -> tuple[ChainMember, ...]:
        """The membership deciding the next height."""
        return self._membership.members

    def _admits(self, key: PublicKey) -> bool:
        return self.mesh.admits(key)

    def _membership_before(self, current: MemberList) -> MemberList:
        """The membership before the last change, looked for in the last
        ``previous_membership_heights_max`` heights (else ``current``)."""
        head = self._head_number()
        for height in range(head, max(0, head - previous_membership_heights_max), -1):
            members = self._validator.memberships.at(height)
            if members != current:
                return members
        return current

    def _membership_changed(self) -> None:
        """After a commit: follow the membership of the next height (and this node's key,
        which the driver switched when it entered that height)."""
        if self._stopping:
            return
        members = self._validator.memberships.next()
        if members != self._membership:
            log.info(
                "consortium.membership_changed",
                height=self._head_number() + 1,
                members=list(members.names),
            )
            # The keys of the membership before the change stay admitted until the next
            # one: a member one change behind can still connect and catch up.
            self._previous = self._membership
            self._membership = members
            self.mesh.set_members(members.members, self._previous.members)

    @property
    def height(self) -> int | None:
        return None if self.driver is None else self.driver.height

    @property
    def round(self) -> int | None:
        return None if self.driver is None else self.driver.round

    def start(self, server: PeerServer) -> None:
        """Start the driver at the store's head, the mesh on ``server`` (already listening,
        with ``peer_settings``), gossip intake and the head probe. Call on the loop."""
        self._loop = asyncio.get_running_loop()
        self._start_driver()
        self._membership = self._validator.memberships.next()
        self._previous = self._membership_before(self._membership)
        self.mesh.set_members(self._membership.members, self._previous.members)
        self.mesh.start(server)
        self._spawn(self._intake_loop())
        self._spawn(self._probe_loop())

    async def stop(self) -> None:
        """Stop the driver (waiting for its chain work), the mesh and the workers."""
        self._stopping = True
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.stop()
            await driver.wait_stopped()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.mesh.close()
        await asyncio.to_thread(self._intake_worker.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self._sync_worker.shutdown, wait=True, cancel_futures=True)

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_driver(self) -> None:
        """A driver at the store's head + 1 (a restored state of that height resumes it)."""
        settings = self.settings
        self.driver = BftDriver(
            store=self._store,
            pool=self._pool,
            publisher=self._publisher,
            validator=self._validator,
            signer=self._signer,
            transport=self.mesh,
            persist=self._persist,
            restored=self._last_state,
            timeouts=settings.timeouts,
            clock_ms=self._clock_ms,
            resend_interval_ms=settings.resend_interval_ms,
            idle_poll_ms=settings.idle_poll_ms,
            on_behind=self._behind,
            on_commit=self._committed,
            txn_limits=self._txn_limits,
            block_bytes_max=settings.block_bytes_max,
            proposal_file=self._proposal_file,
        )
        self.driver.start()

    def _persist(self, state: PersistentState) -> None:
        self._persist_state(state)
        self._last_state = state

    def _committed(self, block: Block, certificate: CommitCertificate) -> None:
        if self._guard_check is not None:
            self._guard_check.committed(block, certificate)
        if self._on_commit is not None:
            self._on_commit(block)
        # After the driver entered the next height (it does right after this callback).
        asyncio.get_running_loop().call_soon(self._membership_changed)

    def _head_number(self) -> int:
        head = self._store.head
        assert head is not None  # the driver refuses a store without genesis
        return head.number

    # --- inbound ---------------------------------------------------------------------------

    def _deliver(
        self, connection: PeerConnection, message: PeerMessage
    ) -> asyncio.Future[None] | None:
        payload = message.payload
        match message.type:
            case MessageType.CONSENSUS:
                try:
                    decode_consensus(payload, block_bytes_max=self.settings.block_bytes_max)
                except MalformedConsensusMessage as exc:
                    self.mesh.drop(connection, "malformed_consensus", str(exc))
                    return None
                if self.driver is not None:
                    self.driver.on_message(payload)
            case MessageType.BATCHES:
                self._queue_intake(connection, payload)
            case MessageType.BLOCK_REQUEST:
                return asyncio.ensure_future(self._serve_blocks(connection, payload))
            case MessageType.BLOCK_RESPONSE:
                self._take_response(connection, payload)
            case MessageType.PING | MessageType.PONG:
                pass
        return None

    # --- gossip ------------------------------------------------------------------------------

    def gossip(self, batch_list: bytes) -> None:
        """Send a batch list this node's API accepted to every peer. Thread-safe."""
        loop = self._loop
        if loop is None or self._stopping:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            loop.call_soon_threadsafe(self.gossip, batch_list)
            return
        if self.mesh.send_all(MessageType.BATCHES, batch_list):
            CONSORTIUM_GOSSIP_BATCHES_TOTAL.labels(direction="out", result="sent").inc()

    def _queue_intake(self, connection: PeerConnection, payload: bytes) -> None:
        if len(self._intake) >= gossip_lists_max or self._intake_bytes + len(payload) > (
            gossip_bytes_max
        ):
            # Safe to drop: the list is in its origin's pool, proposed at the origin's turn.
            CONSORTIUM_GOSSIP_BATCHES_TOTAL.labels(direction="in", result="dropped").inc()
            return
        self._intake.append((connection, payload))
        self._intake_bytes += len(payload)
        self._intake_ready.set()

    async def _intake_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._intake:
                self._intake_ready.clear()
                await self._intake_ready.wait()
            connection, payload = self._intake.popleft()
            self._intake_bytes -= len(payload)
            result, detail = await loop.run_in_executor(self._intake_worker, self._admit, payload)
            CONSORTIUM_GOSSIP_BATCHES_TOTAL.labels(direction="in", result=result).inc()
            if result == "invalid":
                self.mesh.drop(connection, "invalid_batches", detail)

    def _admit(self, payload: bytes) -> tuple[str, str]:
        """The API's checks on a gossiped list (intake thread): (result, detail)."""
        try:
            batch_list = decode_batch_list(payload, self._txn_limits)
        except BatchListFault as exc:
            # The origin's API ran the same decoding: an honest member never sends this.
            return "invalid", str(exc)
        try:
            view = CommittedOrPendingTransactions(
                self._store, self._pool, batch_list.transaction_ids
            )
            check_against_chain(batch_list, view)
            added = self._pool.add_many(batch_list.batches, self._clock_ms())
        except (MalformedBatch, BatchListFault) as exc:
            # Replays and unmet dependencies depend on what each node committed already:
            # a race with a commit, not the peer's fault.
            return "rejected", str(exc)
        except PoolFull as exc:
            return "pool_full", str(exc)
        except TrustedLedgerError as exc:
            log.warning("consortium.gossip_intake_failed", error=str(exc))
            return "rejected", str(exc)
        return ("accepted" if any(added) else "duplicate"), ""

    # --- catch-up: serving -------------------------------------------------------------------

    async def _serve_blocks(self, connection: PeerConnection, payload: bytes) -> None:
        try:
            first, count = decode_block_request(payload, blocks_per_request_max)
        except InvalidInput as exc:
            self.mesh.drop(connection, "malformed_block_request", str(exc))
            return
        responses = await asyncio.to_thread(self._read_blocks, first, count)
        for response in responses:
            try:
                connection.send(
                    MessageType.BLOCK_RESPONSE,
                    encode_block_response(response, self.settings.block_bytes_max),
                )
            except PeerFault:
                return
            if response.block:
                CONSORTIUM_CATCHUP_BLOCKS_TOTAL.labels(result="served").inc()

    def _read_blocks(self, first: int, count: int) -> list[BlockResponse]:
        """Committed blocks ``first .. first + count - 1`` with certificates (a thread);
        a single empty response saying our head when we hold none of them."""
        head = self._head_number()
        responses = []
        for height in range(first, min(first + count, head + 1)):
            block_id = self._store.block_id_at(height)
            block = None if block_id is None else self._store.block_bytes(block_id)
            certificate = None if block_id is None else self._store.certificate(block_id)
            if block is None or certificate is None:
                break
            responses.append(BlockResponse(head, height, block, certificate.encode()))
        return responses or [BlockResponse(head, first, b"", b"")]

    # --- catch-up: fetching ----------------------------------------------------------------

    def _probe(self, connection: PeerConnection) -> None:
        """Ask ``connection``'s member for our next block: its answer carries its head."""
        with contextlib.suppress(PeerFault):
            connection.send(
                MessageType.BLOCK_REQUEST, encode_block_request(self._head_number() + 1, 1)
            )

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.head_probe_interval_ms / 1000)
            for connection in self.mesh.connected:
                self._probe(connection)

    def _behind(self, height: int) -> None:
        """The driver heard a member at ``height``: heights below it are committed there."""
        self._note_head(height - 1)

    def _note_head(self, head: int) -> None:
        self._target = max(self._target, head)
        if not self._syncing and not self._stopping and self._target > self._head_number():
            self._syncing = True
            self._spawn(self._sync())

    def _take_response(self, connection: PeerConnection, payload: bytes) -> None:
        try:
            response = decode_block_response(payload, self.settings.block_bytes_max)
        except InvalidInput as exc:
            self.mesh.drop(connection, "malformed_block_response", str(exc))
            return
        next_height = self._head_number() + 1
        if response.block and next_height <= response.height < next_height + blocks_per_request_max:
            self._responses.setdefault(response.height, (connection, response))
            self._response_arrived.set()
        elif not response.block and response.height >= next_height:
            # "I have nothing from there": a negative answer for what we wait for.
            self._responses.setdefault(-response.height, (connection, response))
            self._response_arrived.set()
        self._note_head(response.head)

    async def _sync(self) -> None:
        """Fetch and commit blocks up to the highest head heard, asking peers in turn; a
        full turn of peers without progress gives up until the next report."""
        paused = False
        fruitless = 0
        try:
            while not self._stopping and self._head_number() < self._target:
                peers = self.mesh.connected
                if not peers or fruitless >= 2 * len(peers):
                    break
                peer = peers[self._next_peer % len(peers)]
                self._next_peer += 1
                first = self._head_number() + 1
                count = min(blocks_per_request_max, self._target - first + 1)
                with contextlib.suppress(PeerFault):
                    peer.send(MessageType.BLOCK_REQUEST, encode_block_request(first, count))
                committed, paused = await self._commit_from(peer, first, first + count - 1, paused)
                fruitless = 0 if committed else fruitless + 1
        finally:
            self._syncing = False
            self._responses.clear()
            if paused and not self._stopping:
                log.info("consortium.caught_up", head=self._head_number(), target=self._target)
                self._last_state = None
                self._start_driver()
                self._membership_changed()
            if not self._stopping and self._head_number() < self._target and self.mesh.connected:
                # Gave up for now; the next probe or driver report tries again.
                self._target = self._head_number()

    async def _commit_from(
        self, peer: PeerConnection, first: int, last: int, paused: bool
    ) -> tuple[int, bool]:
        """Commit heights ``first..last`` as their responses arrive; (committed, paused)."""
        committed = 0
        loop = asyncio.get_running_loop()
        timeout_s = self.settings.block_response_timeout_ms / 1000
        height = first
        while height <= last and not self._stopping:
            entry = self._responses.pop(height, None)
            if entry is None:
                if self._responses.pop(-height, None) is not None or peer.closed:
                    break
                self._response_arrived.clear()
                try:
                    await asyncio.wait_for(self._response_arrived.wait(), timeout_s)
                except TimeoutError:
                    break
                continue
            sender, response = entry
            try:
                block, certificate = await loop.run_in_executor(
                    self._sync_worker, self._verify, response
                )
            except (InvalidInput, VerificationFailed) as exc:
                CONSORTIUM_CATCHUP_BLOCKS_TOTAL.labels(result="rejected").inc()
                self.mesh.drop(sender, "uncertified_block", str(exc))
                break
            if not paused:
                # The store is about to change under the driver: stop it and wait for its
                # chain work to end; a new one starts at the new head when catch-up ends.
                driver, self.driver = self.driver, None
                if driver is not None:
                    driver.stop()
                    await driver.wait_stopped()
                paused = True
            try:
                done = await loop.run_in_executor(
                    self._sync_worker, self._commit, block, certificate
                )
            except TemporarilyUnavailable as exc:
                log.warning("consortium.catch_up_retry", height=height, error=str(exc))
                break
            except (InvalidInput, VerificationFailed) as exc:
                # Certified by a quorum yet not valid here: this node's execution differs
                # from the members' (a processor version?), not something a peer can fix.
                CONSORTIUM_CATCHUP_BLOCKS_TOTAL.labels(result="rejected").inc()
                log.error("consortium.certified_block_rejected", height=height, error=str(exc))
                self._target = self._head_number()
                break
            if done:
                committed += 1
                self.caught_up_blocks += 1
                CONSORTIUM_CATCHUP_BLOCKS_TOTAL.labels(result="committed").inc()
                if self._on_commit is not None:
                    self._on_commit(block)
            height += 1
        return committed, paused

    def _verify(self, response: BlockResponse) -> tuple[Block, CommitCertificate]:
        """Decode the block and certificate and check a quorum signed it (catch-up thread)."""
        block = decode_block(response.block, self._txn_limits, known=self._pool.holds)
        certificate = decode_certificate(response.certificate)
        if block.number != response.height:
            raise InvalidInput(f"response for height {response.height} holds block {block.number}")
        # The membership of THIS height, from the state this node re-executed itself up to
        # block - 1 (blocks are verified and committed in height order): never the peer's.
        certificate.verify(self._validator.membership_at(block.number), block)
        return block, certificate

    def _commit(self, block: Block, certificate: CommitCertificate) -> bool:
        """Re-execute and commit (catch-up thread, the driver stopped); False if the height
        is committed already (the driver decided it before it stopped)."""
        existing = self._store.block_id_at(block.number)
        if existing is not None:
            if existing != block.id:
                # Two certified blocks at one height: a safety failure of the consortium
                # (more than f Byzantine members). Never overwrite; say it loudly.
                log.error("consortium.conflicting_certified_block", height=block.number)
            return False
        self._validator.commit(block, certificate)
        self._pool.remove(block.batch_ids)  # as BlockPublisher.commit does for its blocks
        if self._guard_check is not None:
            # Before the driver restarts above it: a block certified with this node's vote
            # that its guard does not remember means the guard file was put back.
            self._guard_check.committed(block, certificate)
        return True
