"""What the REST API needs from the node, and the read helpers it builds on them.

The node hands the API one ``NodeServices``: the chain store (committed blocks, receipts,
state), the pending pool, this node's public key and a way to wake the publisher. Nothing in
here starts threads or owns storage; the node owns both and the API only borrows them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

from trusted_ledger.chain import (
    BatchPool,
    Block,
    BlockHeader,
    ChainStore,
    decode_header,
)
from trusted_ledger.custody import PublicKey
from trusted_ledger.txn import DEFAULT_LIMITS, TxnLimits

_BLOCK_PREFIX_BYTES = 10
"""Block encoding before the header (docs/formats.md §6.3): magic 4, version 2, length 4."""

block_cache_bytes_max = 64 * 1024 * 1024
"""Encoded bytes of decoded blocks kept for repeated reads (block lists, /batches/{id}):
decoding a block of 1,000 batches re-parses and re-hashes them all."""
header_cache_entries_max = 100_000
"""Block headers kept by id, for batch statuses (a header is ~300 bytes decoded)."""


def wall_clock_ms() -> int:
    """Milliseconds since the epoch: the time a batch is stamped with when it enters the pool."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class NodeServices:
    """The node's components the API reads and feeds; built by the node, shared by threads."""

    store: ChainStore
    """Chain reads; ``store.state`` is the state store."""
    pool: BatchPool
    """Pending batches (thread-safe)."""
    node_public_key: PublicKey
    """This node's custody key, shown by ``/status`` and used to name its certificate votes."""
    scheduler_name: str
    """``"serial"`` or ``"parallel"``: shown by ``/status``."""
    wake_publisher: Callable[[], None]
    """Thread-safe; called after batches were accepted so a block is cut without delay."""
    limits: TxnLimits = DEFAULT_LIMITS
    clock_ms: Callable[[], int] = field(default=wall_clock_ms)
    processors: Callable[[], list[ProcessorSummary]] = field(default=lambda: [])
    """The external transaction processors connected now (``/status``)."""
    on_accepted: Callable[[bytes], None] = field(default=lambda _batch_list: None)
    """Called on the API's event loop with each batch list's bytes once accepted into the
    pool (bft mode: gossip to the other members)."""
    consensus: Callable[[], ConsensusSummary | None] = field(default=lambda: None)
    """bft mode: where consensus stands (``/status``); None in single mode."""
    readiness: Callable[[], Sequence[ReadinessCheck]] = field(default=lambda: ())
    """The node's own readiness checks (custody token, publisher or consensus, peers) for
    ``/readyz``; the API adds its own (``api``, ``chain``). Cheap: called per request."""
    audit_path: Path | None = None
    """The node's key-usage audit trail file (``config.audit_path``), read by
    ``/proofs/audit``; None: the node keeps none and the route answers 404."""
    signing_key: Callable[[], PublicKey] | None = None
    """The key this node signs with now: during a key rotation it changes at the height the
    new membership takes effect (node/keyring.py). None: always ``node_public_key``."""

    def current_key(self) -> PublicKey:
        """The key ``/status`` shows: the one signing now."""
        return self.signing_key() if self.signing_key is not None else self.node_public_key


@dataclass(frozen=True)
class ReadinessCheck:
    """One named condition of ``/readyz``: whether it holds, and what was seen."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ProcessorSummary:
    """One connected external processor, as ``/status`` shows it."""

    family: str
    version: str
    namespaces: tuple[str, ...]
    max_occupancy: int
    in_flight: int
    dispatched: int


@dataclass(frozen=True)
class ConsensusSummary:
    """A bft node's consensus, as ``/status`` shows it."""

    height: int | None
    """The height being decided; None while catching up."""
    round: int | None
    peers_connected: int
    members: int


class CommittedOrPendingTransactions:
    """``txn.CommittedTransactions`` for ``check_against_chain`` at the API's door.

    ``check_against_chain`` asks one question for two checks: an id in the answer is a
    replay if the list carries it and a met dependency if a transaction declares it. The API
    wants a dependency on a *pending* transaction accepted (a client may submit a chain of
    transfers without waiting for each block) but must not call a list's own transactions
    replays because they are pending (a resubmitted pending batch is accepted again without
    effect). So pending ids are added to the answer only for ids the list does not carry.
    (A dependency on a pending transaction that the same list also carries, later in it, is
    refused as out of order, which is what the block rule would do with it anyway.)
    """

    def __init__(
        self, store: ChainStore, pool: BatchPool, own_transaction_ids: Collection[str]
    ) -> None:
        self._store = store
        self._pool = pool
        self._own = frozenset(own_transaction_ids)

    def committed_among(self, transaction_ids: Collection[str]) -> Set[str]:
        present = set(self._store.committed_among(transaction_ids))
        unanswered = set(transaction_ids) - present - self._own
        if unanswered:
            present |= self._pool.pending_transactions_among(unanswered)
        return present


class BlockReader:
    """Committed blocks and headers by id, with bounded caches (thread-safe).

    A committed block never changes under its id, so cached copies never go stale. Headers
    are decoded alone from the stored bytes (docs/formats.md §6.3), so a batch status costs a
    header parse, not the re-verification of a whole block.
    """

    def __init__(self, store: ChainStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._blocks: OrderedDict[bytes, tuple[Block, int]] = OrderedDict()
        self._block_bytes = 0
        self._headers: OrderedDict[bytes, BlockHeader] = OrderedDict()

    def block(self, block_id: bytes) -> Block | None:
        with self._lock:
            cached = self._blocks.get(block_id)
            if cached is not None:
                self._blocks.move_to_end(block_id)
                return cached[0]
        data = self._store.block_bytes(block_id)
        # The store's own decoding: it knows its limits, and which checks its blocks need.
        block = None if data is None else self._store.block(block_id)
        if data is None or block is None:
            return None
        with self._lock:
            if block_id not in self._blocks and len(data) <= block_cache_bytes_max:
                self._blocks[block_id] = (block, len(data))
                self._block_bytes += len(data)
                while self._block_bytes > block_cache_bytes_max:
                    _, (_, size) = self._blocks.popitem(last=False)
                    self._block_bytes -= size
        return block

    def block_at(self, number: int) -> Block | None:
        block_id = self._store.block_id_at(number)
        return None if block_id is None else self.block(block_id)

    def header(self, block_id: bytes) -> BlockHeader | None:
        with self._lock:
            header = self._headers.get(block_id)
            if header is not None:
                return header
        data = self._store.block_bytes(block_id)
        if data is None:
            return None
        length = int.from_bytes(data[6:_BLOCK_PREFIX_BYTES], "big")
        header = decode_header(data[_BLOCK_PREFIX_BYTES : _BLOCK_PREFIX_BYTES + length])
        with self._lock:
            self._headers[block_id] = header
            if len(self._headers) > header_cache_entries_max:
                self._headers.popitem(last=False)
        return header
