"""``node run``: one process wiring custody, chain, processing and the REST API.

Threads and their jobs:

- the asyncio loop (main thread) serves the API; decoding and signature checks of submitted
  batches, and the pool's synced write, run in its thread executor;
- one publisher thread cuts blocks (single-node consensus: this node proposes and certifies
  every block) and wakes the API's status waiters after each commit.

Durability is the chain's business (one synced write per block, a synced write per accepted
request in the pool), so a stop is never required for safety: SIGKILL at any instant leaves
a node that restarts whole (invariant 6). SIGTERM/SIGINT stop it politely: the API stops
accepting, the publisher finishes the block it is cutting, files are closed.

Failure policy of the publisher: an unavailable HSM or storage (``TemporarilyUnavailable``)
or a block that cannot be executed now (``TransactionProcessingFailed``) is retried with
backoff while the API keeps accepting into the pool; any other error stops the node with
exit status 70, because continuing after an unexplained failure risks the chain. So does a
database whose reopen after a failed write shows that write on the disk after all
(``StorageNeedsRestart``), in whichever thread finds it: a restart reloads chain and pool.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trusted_ledger.api import ApiServer, NodeServices
from trusted_ledger.api.services import ConsensusSummary, ProcessorSummary
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    Block,
    BlockPublisher,
    BlockValidator,
    ChainStore,
    PublisherLimits,
)
from trusted_ledger.chain.membership import ChainMember
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.chain.signing import ChainSigner
from trusted_ledger.consensus import TimeoutConfig
from trusted_ledger.custody import AuditLog, PublicKey, TokenPool
from trusted_ledger.errors import (
    ConfigurationError,
    TemporarilyUnavailable,
    TransactionProcessingFailed,
)
from trusted_ledger.node.anchoring import AuditAnchorer
from trusted_ledger.node.backup import BackupResult, create_backup, prune_backups
from trusted_ledger.node.catchup import ConsensusStateFile, OwnProposalFile
from trusted_ledger.node.config import NodeConfig
from trusted_ledger.node.consortium import Consortium, ConsortiumSettings, listen
from trusted_ledger.node.control import BackupRequest, ControlServer
from trusted_ledger.node.custody_setup import node_key_ring, open_audit_log, open_token
from trusted_ledger.node.guard_check import GuardCheck, guarded_keys
from trusted_ledger.node.keyring import key_ring
from trusted_ledger.node.members import load_members
from trusted_ledger.node.operations import (
    api_security,
    bind_log_context,
    node_readiness,
    warn_exposed_binds,
)
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.processing import (
    HandlerRegistry,
    ParallelScheduler,
    Scheduler,
    SerialScheduler,
)
from trusted_ledger.processing.families import builtin_registry
from trusted_ledger.processing.families.identity import IdentitySubmissionPolicy
from trusted_ledger.storage import RocksDatabase

if TYPE_CHECKING:
    from trusted_ledger.processing.tp import ProcessorServer

EXIT_OK = 0
EXIT_PUBLISHER_FAILED = 70
_RETRY_BACKOFF_INITIAL_S = 0.1
_RETRY_BACKOFF_MAX_S = 5.0
_IDLE_WAIT_S = 1.0
_RECHECK_WAITING_S = 2.0

log = get_logger("node")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PublisherLoop:
    """The publisher thread: publish whenever a block is due, sleep until the next one is."""

    def __init__(
        self,
        publisher: BlockPublisher,
        pool: BatchPool,
        on_commit: Callable[[Block], None],
        on_failure: Callable[[BaseException], None],
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._publisher = publisher
        self._pool = pool
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._clock_ms = clock_ms
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._backoff_s = _RETRY_BACKOFF_INITIAL_S
        self._waiting_checked = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        """Thread-safe: batches arrived, the next block may be due earlier."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the block being cut, then end the thread."""
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                block = self._publisher.publish_if_due(self._clock_ms())
            except (TemporarilyUnavailable, TransactionProcessingFailed) as exc:
                log.warning("publish.retry", error=str(exc), backoff_s=self._backoff_s)
                self._stopping.wait(self._backoff_s)
                self._backoff_s = min(2 * self._backoff_s, _RETRY_BACKOFF_MAX_S)
                continue
            except BaseException as exc:
                log.exception("publish.failed", error=str(exc))
                self._on_failure(exc)
                return
            self._backoff_s = _RETRY_BACKOFF_INITIAL_S
            self._recheck_waiting()
            if block is not None:
                log.info(
                    "block.committed",
                    height=block.number,
                    block_id=block.id.hex(),
                    batches=len(block.batches),
                    round=block.header.consensus_round,
                )
                self._on_commit(block)
                continue
            self._wake.wait(self._wait_s())

    def _recheck_waiting(self) -> None:
        """Batches waiting for a processor do not make blocks due; every few seconds
        their notes are dropped so the next publish looks at them again (a processor may
        have registered since)."""
        now = time.monotonic()
        if self._pool.waiting_count and now - self._waiting_checked >= _RECHECK_WAITING_S:
            self._waiting_checked = now
            self._pool.clear_waiting()

    def _wait_s(self) -> float:
        oldest = self._pool.oldest_added_ms()
        if oldest is None:
            return _IDLE_WAIT_S
        due_in_ms = oldest + self._publisher.limits.block_interval_ms - self._clock_ms()
        return max(0.0, min(due_in_ms / 1000, _IDLE_WAIT_S))


def make_scheduler(name: str, workers: int) -> Scheduler:
    return ParallelScheduler(workers) if name == "parallel" else SerialScheduler()


@dataclass
class NodeParts:
    """What ``open_node`` opened, to close in reverse order."""

    config: NodeConfig
    db: RocksDatabase
    audit: AuditLog
    store: ChainStore
    pool: BatchPool
    publisher: BlockPublisher
    public_key: PublicKey
    registry: HandlerRegistry
    """Built-in families, and the external processors that register while the node runs."""
    signer: ChainSigner
    """The node's guarded custody signer (blocks, votes, handshakes)."""
    executor: ProcessingBlockExecutor
    token: TokenPool | None = None
    """The node key's token (``/readyz`` asks whether it is reachable)."""
    guard_check: GuardCheck | None = None
    """Raises the signing guards on evidence of signatures they do not remember."""

    def close(self) -> None:
        self.db.close()
        self.audit.close()


def open_node(config: NodeConfig) -> NodeParts:
    """Open token, key, trail, database, chain and pool; refuse a node without genesis."""
    token = open_token(config)
    audit = open_audit_log(config)
    try:
        # The node key, and a next key while a rotation is under way (node/keyring.py).
        signer = node_key_ring(config, token, audit)
        if not config.chain_dir.is_dir():
            raise ConfigurationError(
                f"no chain database at {config.chain_dir}",
                hint="create the node with `trusted-ledger node init`, or fix node.data_dir",
            )
        db = RocksDatabase(config.chain_dir, CHAIN_COLUMN_FAMILIES)
    except BaseException:
        audit.close()
        raise
    try:
        store = ChainStore(db, config.node.chain_id)
        if store.head is None:
            raise ConfigurationError(
                f"the chain database {config.chain_dir} has no genesis block",
                hint="node init did not finish: remove the directory and run node init again",
            )
        pool = BatchPool(
            config.pool.batches_max,
            config.pool.bytes_max,
            db=db,
            committed=store.batches_committed_among,
        )
        registry = builtin_registry()
        executor = ProcessingBlockExecutor(
            registry,
            store.state,
            make_scheduler(config.processing.scheduler, config.processing.workers),
            policy_factory=IdentitySubmissionPolicy,
        )
        limits = PublisherLimits(
            block_batches_max=config.publisher.block_batches_max,
            block_bytes_max=config.publisher.block_bytes_max,
            block_interval_ms=config.publisher.block_interval_ms,
        )
        publisher = BlockPublisher(store, pool, executor, signer, limits)
        # Before anything is signed: a guard behind its key's own signatures (in the trail,
        # or in the chain's newest blocks) is raised (node/guard_check.py).
        guard_check = GuardCheck(guarded_keys(signer.signers))
        found = guard_check.check_at_start(store, config.audit_path)
        head_number = store.head.number
        # head + 1 is a block signed but not committed when the node stopped (a crash
        # between the two): the publisher signs that height again in a later round.
        if config.consensus.mode == "single" and found.trail_height > head_number + 1:
            raise ConfigurationError(
                f"the chain in {config.chain_dir} ends at height {head_number}, but this "
                f"node's key signed blocks up to height {found.trail_height} (key-usage "
                f"trail {config.audit_path}): the chain database is older than the node's "
                "own signatures, and going on would sign a second, different block at "
                f"height {head_number + 1}",
                hint="put back the newest chain: `trusted-ledger node restore --from "
                f"BACKUP` with a backup of height {found.trail_height} or more, or the "
                "chain directory this node last ran with; never an older guard file. If "
                "those heights were given up knowingly (restore --accept-lost-heights), "
                "the node needs a new key (docs/operations.md §6)",
            )
    except BaseException:
        db.close()
        audit.close()
        raise
    return NodeParts(
        config, db, audit, store, pool, publisher, signer.public_key, registry, signer, executor,
        token, guard_check,
    )  # fmt: skip


@dataclass(frozen=True)
class Endpoints:
    """Where a running node serves: its REST API, and the processor endpoint (if any)."""

    api_url: str
    processors: str | None
    peers: str | None = None
    """bft mode: ``HOST:PORT`` where this node accepts its peers."""


def open_consortium(
    config: NodeConfig, parts: NodeParts, on_commit: Callable[[Block], None]
) -> Consortium:
    """bft mode: the members file (address book, and the membership of a chain without
    ``tl.consensus.members``), the validator over the membership of each height, this node's
    place in it and the durable consensus state (docs/consortium.md)."""
    members_path = config.resolve(config.consensus.members_file)
    members = load_members(members_path)
    validator = BlockValidator(
        parts.store, parts.executor, [ChainMember(m.name, m.public_key) for m in members]
    )
    current = validator.memberships.next()
    ring = key_ring(parts.signer)
    known = {m.fingerprint for m in members} | {m.fingerprint for m in current.members}
    if not any(key.fingerprint in known for key in ring.public_keys):
        mine = parts.public_key.fingerprint
        raise ConfigurationError(
            f"this node's key {mine[:16]} is neither in {members_path} nor in the "
            "membership on chain",
            hint="the members file must list this node's custody key "
            "(`trusted-ledger keys show --token T --label L --format der-hex` shows it); "
            "a rotated key is set as custody.next_key_label",
        )
    state_file = ConsensusStateFile(config.consensus_state_path)
    timeouts = TimeoutConfig(
        propose_ms=config.consensus.propose_timeout_ms,
        propose_delta_ms=config.consensus.propose_timeout_ms // 2,
        prevote_ms=config.consensus.vote_timeout_ms,
        prevote_delta_ms=config.consensus.vote_timeout_ms // 2,
        precommit_ms=config.consensus.vote_timeout_ms,
        precommit_delta_ms=config.consensus.vote_timeout_ms // 2,
    )
    return Consortium(
        store=parts.store,
        pool=parts.pool,
        publisher=parts.publisher,
        validator=validator,
        signer=parts.signer,
        members=members,
        persist=state_file.save,
        restored=state_file.load(),
        proposal_file=OwnProposalFile(config.own_proposal_path),
        clock_ms=wall_clock_ms,
        settings=ConsortiumSettings(timeouts=timeouts),
        on_commit=on_commit,
        guard_check=parts.guard_check,
    )


def _processor_server(config: NodeConfig, parts: NodeParts) -> ProcessorServer | None:
    if not config.processors.bind:
        return None
    from trusted_ledger.processing.tp import ProcessorServer  # noqa: PLC0415

    return ProcessorServer(
        parts.registry,
        config.processors.bind,
        request_timeout_s=config.processors.request_timeout_ms / 1000,
        ping_interval_s=config.processors.ping_interval_ms / 1000,
        ping_misses_max=config.processors.ping_misses_max,
    )


def _consensus_summary(consortium: Consortium | None) -> ConsensusSummary | None:
    if consortium is None:
        return None
    return ConsensusSummary(
        consortium.height, consortium.round, consortium.peers_connected, len(consortium.members)
    )


def _log_ready(config: NodeConfig, parts: NodeParts, endpoints: Endpoints) -> None:
    head = parts.store.head
    assert head is not None
    log.info(
        "node.ready",
        chain_id=config.node.chain_id,
        url=endpoints.api_url,
        height=head.number,
        pending_batches=len(parts.pool),
        scheduler=config.processing.scheduler,
        processors=endpoints.processors,
        consensus=config.consensus.mode,
        peers=endpoints.peers,
    )


def _processor_summaries(processors: ProcessorServer | None) -> list[ProcessorSummary]:
    if processors is None:
        return []
    return [
        ProcessorSummary(
            p.family, p.version, p.namespaces, p.max_occupancy, p.in_flight, p.dispatched
        )
        for p in processors.processors()
    ]


def _backup(config: NodeConfig, parts: NodeParts, wanted: BackupRequest) -> BackupResult:
    """An on-line backup (node/backup.py), signed by the key that signs the trail's
    checkpoints (``custody.key_label``), into the directory asked for or the configured
    one; then, if asked, only the newest ``keep`` backups of this chain are kept there."""
    into = wanted.into or config.backup_dir_path
    result = create_backup(
        db=parts.db,
        audit=parts.audit,
        signer=key_ring(parts.signer).signers[0],
        chain_id=config.node.chain_id,
        into=into,
    )
    if wanted.keep is not None:
        result = prune_backups(result, into, config.node.chain_id, wanted.keep)
    return result


async def serve(config: NodeConfig, *, on_ready: Callable[[Endpoints], None] | None = None) -> int:  # noqa: PLR0915
    """Run the node until SIGTERM/SIGINT (status 0), or a publisher failure or a database
    that needs a restart (status 70).

    ``consensus.mode = "single"``: the publisher thread cuts and certifies every block.
    ``"bft"``: the consortium (peer mesh, BFT driver, gossip, catch-up) decides blocks with
    the other members; the API's accepted batches are gossiped to them."""
    warn_exposed_binds(config)
    security = api_security(config)  # an unusable certificate stops the node before the HSM
    parts = open_node(config)
    store, pool = parts.store, parts.pool
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []
    bft = config.consensus.mode == "bft"

    def failed(exc: BaseException) -> None:
        failure.append(exc)
        loop.call_soon_threadsafe(stop.set)

    def storage_needs_restart(exc: BaseException) -> None:
        # Found by whichever thread wrote first (often the API's): the publisher may be
        # idle, so the node stops here rather than wait for its next write.
        log.error("node.storage_needs_restart", error=str(exc))
        failed(exc)

    parts.db.on_needs_restart = storage_needs_restart

    publisher_loop: PublisherLoop | None = None
    consortium: Consortium | None = None

    def wake() -> None:
        # bft: the driver polls its pool every idle_poll_ms; nothing to wake.
        if publisher_loop is not None:
            publisher_loop.wake()

    processors = _processor_server(config, parts)
    api = ApiServer(
        NodeServices(
            store=store,
            pool=pool,
            node_public_key=parts.public_key,
            signing_key=lambda: parts.signer.public_key,  # the ring's active key (rotation)
            scheduler_name=config.processing.scheduler,
            wake_publisher=wake,
            processors=lambda: _processor_summaries(processors),
            on_accepted=lambda body: None if consortium is None else consortium.gossip(body),
            consensus=lambda: _consensus_summary(consortium),
            readiness=lambda: node_readiness(parts.token, publisher_loop, consortium),
            audit_path=config.audit_path,
        ),
        access=security.access,
    )
    peers_endpoint: str | None = None
    control = ControlServer(config.control_socket_path, lambda want: _backup(config, parts, want))
    anchorer = AuditAnchorer(
        parts.audit, store, pool, every_s=config.custody.anchor_every_s, wake=wake,
        gossip=lambda body: None if consortium is None else consortium.gossip(body),
    )  # fmt: skip
    try:
        if bft:
            consortium = open_consortium(config, parts, lambda _block: api.notify_committed())
        else:
            publisher_loop = PublisherLoop(
                parts.publisher, pool, lambda _block: api.notify_committed(), failed
            )
        bind_log_context(store, parts.public_key, consortium)
        processors_endpoint = processors.start() if processors is not None else None
        port = await api.start(config.api.host, config.api.port, ssl_context=security.ssl_context)
        await control.start()  # node backup (node/control.py)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if consortium is not None:
            server = await listen(config.network.bind, consortium.peer_settings)
            peers_endpoint = f"{config.network.host}:{server.port}"
            consortium.start(server)
        if publisher_loop is not None:
            publisher_loop.start()
        api.set_ready(True)
        endpoints = Endpoints(
            f"{security.scheme}://{config.api.host}:{port}", processors_endpoint, peers_endpoint
        )
        _log_ready(config, parts, endpoints)
        if on_ready is not None:
            on_ready(endpoints)
        anchorer.start()  # issue 7: the trail's checkpoints anchored in the ledger
        await stop.wait()
    finally:
        api.set_ready(False)
        await loop.run_in_executor(None, anchorer.stop)
        if publisher_loop is not None and publisher_loop.running:
            await loop.run_in_executor(None, publisher_loop.stop)
        if consortium is not None:
            await consortium.stop()
        await api.stop()
        await control.stop()
        if processors is not None:
            processors.stop()
        parts.close()
        log.info("node.stopped", failed=bool(failure))
    return EXIT_PUBLISHER_FAILED if failure else EXIT_OK
