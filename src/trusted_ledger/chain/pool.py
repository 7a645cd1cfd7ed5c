"""The pending batch pool: checked batches waiting for a block, bounded in count and bytes.

Insertion-ordered (first come, first proposed), deduplicated by batch id. A full pool refuses
with ``PoolFull`` (the API answers 429) rather than dropping anything it has accepted
(invariant 5). Batches that execution finds invalid leave the pool with their reason kept, in
a bounded record, so a client asking for the batch's status learns why.

Given a ``Database``, the pool is durable (docs/formats.md §6.6, ``chain_pending``): ``add``
writes the batch synced before it returns, a rejection deletes it, a block's commit deletes
its batches in the block's own write (``pending_keys``), and a new pool reloads what is left
in arrival order, dropping batches the chain already holds.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence, Set
from dataclasses import dataclass

from trusted_ledger.chain.store import PENDING_CF
from trusted_ledger.chain.wire import u64
from trusted_ledger.errors import InvalidInput, PoolFull
from trusted_ledger.observability.metrics import (
    CHAIN_POOL_BATCHES,
    CHAIN_POOL_BYTES,
    CHAIN_POOL_REJECTED_TOTAL,
)
from trusted_ledger.storage import Database, WriteBatch
from trusted_ledger.txn import DEFAULT_LIMITS, Batch, TxnLimits, decode_batch

pool_batches_max_default = 50_000
"""Default count bound: about 10 s of the target load of 3,000 transfers/s, with slack."""
pool_bytes_max_default = 256 * 1024 * 1024
"""Default byte bound (encoded batches): keeps the pool's memory within a quarter GiB."""
rejections_kept_max = 100_000
"""Invalid-batch reasons remembered for status queries; the oldest is forgotten first."""
rejection_reason_chars_max = 1024


@dataclass(frozen=True)
class PendingBatch:
    batch: Batch
    size_bytes: int
    added_ms: int
    """When it was accepted; 0 for a batch reloaded after a restart (so it is due at once)."""
    sequence: int = 0
    """Arrival number: with the batch id, its ``chain_pending`` key."""

    @property
    def key(self) -> bytes:
        return u64(self.sequence) + bytes.fromhex(self.batch.header_signature)


class BatchPool:
    """Thread-safe: the API adds while the publisher takes and removes."""

    def __init__(
        self,
        batches_max: int = pool_batches_max_default,
        bytes_max: int = pool_bytes_max_default,
        *,
        db: Database | None = None,
        committed: Callable[[Collection[str]], Set[str]] | None = None,
        limits: TxnLimits = DEFAULT_LIMITS,
    ) -> None:
        """In memory only without ``db``; with it, durable, reloading its pending rows and
        dropping (and deleting) those whose batch ``committed`` reports as committed."""
        if batches_max < 1 or bytes_max < 1:
            raise InvalidInput("pool bounds must be positive")
        if db is not None and PENDING_CF not in db.column_families:
            raise InvalidInput(
                f"the pool's database lacks column family {PENDING_CF!r}",
                hint="open it with column_families=CHAIN_COLUMN_FAMILIES",
            )
        self.batches_max = batches_max
        self.bytes_max = bytes_max
        self._db = db
        self._pending: OrderedDict[str, PendingBatch] = OrderedDict()
        self._bytes = 0
        self._next_sequence = 0
        self._rejected: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._waiting: dict[str, str] = {}  # pending batch id -> why it is not proposed yet
        # Transaction id -> how many pending batches carry it (two may: a replay that
        # execution will refuse), so "is it pending?" is a lookup, not a scan of the pool.
        self._transactions: Counter[str] = Counter()
        self._lock = threading.Lock()
        if db is not None:
            self._reload(db, committed, limits)

    def _reload(
        self,
        db: Database,
        committed: Callable[[Collection[str]], Set[str]] | None,
        limits: TxnLimits,
    ) -> None:
        """Pending rows in key (arrival) order; every accepted batch comes back, even past
        the bounds, since none may be lost (invariant 5)."""
        rows = list(db.iterate(PENDING_CF))
        batches = [(key, decode_batch(value, limits), len(value)) for key, value in rows]
        done = committed([b.header_signature for _, b, _ in batches]) if committed else set()
        stale = WriteBatch()
        for key, batch, size in batches:
            batch_id = batch.header_signature
            sequence = int.from_bytes(key[:8], "big")
            self._next_sequence = max(self._next_sequence, sequence + 1)
            if batch_id in done or batch_id in self._pending:
                stale.delete(PENDING_CF, key)
                continue
            self._pending[batch_id] = PendingBatch(batch, size, 0, sequence)
            self._bytes += size
            self._count_transactions(batch, 1)
        if len(stale):
            db.write(stale, sync=True)
        self._publish_gauges()

    def add(self, batch: Batch, now_ms: int) -> bool:
        """Queue ``batch``; False if it is already pending. Raises ``PoolFull``. With a
        database the batch is durable (synced) when this returns True."""
        return self.add_many([batch], now_ms)[0]

    def add_many(self, batches: Sequence[Batch], now_ms: int) -> list[bool]:
        """Queue ``batches`` all or nothing, with one synced write for all of them (what an
        API request costs: one fsync, whatever the number of batches). Per batch, False if
        it was already pending. Raises ``PoolFull`` without queueing any."""
        encoded = [(batch, batch.encode()) for batch in batches]
        with self._lock:
            fresh: list[tuple[Batch, bytes]] = []
            seen: set[str] = set()
            for batch, data in encoded:
                batch_id = batch.header_signature
                if batch_id not in self._pending and batch_id not in seen:
                    seen.add(batch_id)
                    fresh.append((batch, data))
            size = sum(len(data) for _, data in fresh)
            if fresh and (
                len(self._pending) + len(fresh) > self.batches_max
                or self._bytes + size > self.bytes_max
            ):
                CHAIN_POOL_REJECTED_TOTAL.labels(reason="full").inc()
                raise PoolFull(
                    f"the pending pool holds {len(self._pending)} batches of {self._bytes} "
                    f"bytes and cannot take {len(fresh)} more of {size} bytes (bounds "
                    f"{self.batches_max} batches, {self.bytes_max} bytes)",
                    hint="retry after the next blocks commit",
                )
            added: list[PendingBatch] = []
            rows = WriteBatch()
            for offset, (batch, data) in enumerate(fresh):
                pending = PendingBatch(batch, len(data), now_ms, self._next_sequence + offset)
                rows.put(PENDING_CF, pending.key, data)
                added.append(pending)
            if self._db is not None and added:
                self._db.write(rows, sync=True)
            self._next_sequence += len(added)
            for pending in added:
                batch_id = pending.batch.header_signature
                self._pending[batch_id] = pending
                self._rejected.pop(batch_id, None)
                self._bytes += pending.size_bytes
                self._count_transactions(pending.batch, 1)
            self._publish_gauges()
        queued: list[bool] = []
        for batch, _ in encoded:
            queued.append(batch.header_signature in seen)
            seen.discard(batch.header_signature)  # a repeat in the same list is not new
        return queued

    def holds(self, batch: Batch) -> bool:
        """True if exactly ``batch`` (every field equal, not just its id) is pending here.

        Every batch in the pool passed the API's or gossip intake's signature checks (or was
        stored by this node after them), so a block's copy equal to a pooled one needs no
        second secp256k1 check: ``decode_block(known=pool.holds)``."""
        with self._lock:
            pending = self._pending.get(batch.header_signature)
        return pending is not None and pending.batch == batch

    def pending_transactions_among(self, transaction_ids: Iterable[str]) -> set[str]:
        """Those of ``transaction_ids`` that a pending batch carries (one lookup each)."""
        with self._lock:
            return {t for t in transaction_ids if self._transactions.get(t, 0) > 0}

    def _count_transactions(self, batch: Batch, change: int) -> None:
        for transaction in batch.transactions:
            transaction_id = transaction.header_signature
            left = self._transactions[transaction_id] + change
            if left > 0:
                self._transactions[transaction_id] = left
            else:
                del self._transactions[transaction_id]

    def candidates(self, batches_max: int, bytes_max: int) -> list[PendingBatch]:
        """The oldest pending batches, in order, within both bounds (at least one batch if
        any is pending, so a batch larger than ``bytes_max`` cannot block the pool)."""
        chosen: list[PendingBatch] = []
        total = 0
        with self._lock:
            for pending in self._pending.values():
                if len(chosen) >= batches_max:
                    break
                if chosen and total + pending.size_bytes > bytes_max:
                    break
                chosen.append(pending)
                total += pending.size_bytes
        return chosen

    def oldest_added_ms(self) -> int | None:
        """When the oldest batch that is not waiting (``note_waiting``) arrived: what
        decides that a block is due."""
        with self._lock:
            for batch_id, pending in self._pending.items():
                if batch_id not in self._waiting:
                    return pending.added_ms
        return None

    def pending_keys(self, batch_ids: Iterable[str]) -> list[bytes]:
        """The ``chain_pending`` keys of those of ``batch_ids`` that are pending, for the
        block commit to delete atomically with the block; none for an in-memory pool."""
        if self._db is None:
            return []
        with self._lock:
            found = (self._pending.get(batch_id) for batch_id in batch_ids)
            return [pending.key for pending in found if pending is not None]

    def remove(self, batch_ids: Iterable[str]) -> None:
        """Forget batches that are now committed. Their rows are deleted unsynced: a row
        that outlives a crash is dropped on reload, since its batch is committed."""
        deletes = WriteBatch()
        with self._lock:
            for batch_id in batch_ids:
                pending = self._pending.pop(batch_id, None)
                self._waiting.pop(batch_id, None)
                if pending is not None:
                    self._bytes -= pending.size_bytes
                    self._count_transactions(pending.batch, -1)
                    deletes.delete(PENDING_CF, pending.key)
            if self._db is not None and len(deletes):
                self._db.write(deletes, sync=False)
            self._publish_gauges()

    def reject(self, batch_id: str, reason: str, *, transaction_id: str = "") -> None:
        """Drop an invalid batch and keep why (and which transaction, if one is named), for
        its status."""
        with self._lock:
            pending = self._pending.pop(batch_id, None)
            self._waiting.pop(batch_id, None)
            if pending is not None:
                self._bytes -= pending.size_bytes
                self._count_transactions(pending.batch, -1)
                if self._db is not None:
                    self._db.delete(PENDING_CF, pending.key, sync=True)
            self._rejected[batch_id] = (reason[:rejection_reason_chars_max], transaction_id)
            self._rejected.move_to_end(batch_id)
            while len(self._rejected) > rejections_kept_max:
                self._rejected.popitem(last=False)
            self._publish_gauges()
        CHAIN_POOL_REJECTED_TOTAL.labels(reason="invalid").inc()

    def rejection(self, batch_id: str) -> str | None:
        """Why the batch was dropped as invalid, if it was (and is still remembered)."""
        with self._lock:
            found = self._rejected.get(batch_id)
        return None if found is None else found[0]

    def note_waiting(self, batch_id: str, reason: str) -> None:
        """Record why a pending batch is not being proposed (no processor for its family);
        forgotten when the batch leaves the pool or is proposed."""
        with self._lock:
            if batch_id in self._pending:
                self._waiting[batch_id] = reason[:rejection_reason_chars_max]

    def clear_waiting(self, batch_ids: Iterable[str] | None = None) -> None:
        """Forget the notes of batches that are being proposed now (all notes with None:
        the publisher re-checks waiting batches now and then, e.g. after a processor
        registered)."""
        with self._lock:
            if batch_ids is None:
                self._waiting.clear()
            elif self._waiting:
                for batch_id in batch_ids:
                    self._waiting.pop(batch_id, None)

    @property
    def waiting_count(self) -> int:
        with self._lock:
            return len(self._waiting)

    def waiting_reason(self, batch_id: str) -> str | None:
        with self._lock:
            return self._waiting.get(batch_id)

    def rejected_transaction(self, batch_id: str) -> str | None:
        """The invalid transaction a rejection named ("" if none was named; None if the
        batch is not remembered as rejected)."""
        with self._lock:
            found = self._rejected.get(batch_id)
        return None if found is None else found[1]

    def pending_ids(self) -> Sequence[str]:
        with self._lock:
            return tuple(self._pending)

    def __contains__(self, batch_id: object) -> bool:
        with self._lock:
            return batch_id in self._pending

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def byte_size(self) -> int:
        with self._lock:
            return self._bytes

    def _publish_gauges(self) -> None:
        CHAIN_POOL_BATCHES.set(len(self._pending))
        CHAIN_POOL_BYTES.set(self._bytes)
