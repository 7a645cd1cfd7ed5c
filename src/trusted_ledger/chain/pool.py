"""The pending batch pool: checked batches waiting for a block, bounded in count and bytes.

Insertion-ordered (first come, first proposed), deduplicated by batch id. A full pool refuses
with ``PoolFull`` (the API answers 429) rather than dropping anything it has accepted
(invariant 5). Batches that execution finds invalid leave the pool with their reason kept, in
a bounded record, so a client asking for the batch's status learns why.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trusted_ledger.errors import InvalidInput, PoolFull
from trusted_ledger.observability.metrics import (
    CHAIN_POOL_BATCHES,
    CHAIN_POOL_BYTES,
    CHAIN_POOL_REJECTED_TOTAL,
)
from trusted_ledger.txn import Batch

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


class BatchPool:
    """Thread-safe: the API adds while the publisher takes and removes."""

    def __init__(
        self,
        batches_max: int = pool_batches_max_default,
        bytes_max: int = pool_bytes_max_default,
    ) -> None:
        if batches_max < 1 or bytes_max < 1:
            raise InvalidInput("pool bounds must be positive")
        self.batches_max = batches_max
        self.bytes_max = bytes_max
        self._pending: OrderedDict[str, PendingBatch] = OrderedDict()
        self._bytes = 0
        self._rejected: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, batch: Batch, now_ms: int) -> bool:
        """Queue ``batch``; False if it is already pending. Raises ``PoolFull``."""
        size = len(batch.encode())
        with self._lock:
            if batch.header_signature in self._pending:
                return False
            if len(self._pending) >= self.batches_max or self._bytes + size > self.bytes_max:
                CHAIN_POOL_REJECTED_TOTAL.labels(reason="full").inc()
                raise PoolFull(
                    f"the pending pool holds {len(self._pending)} batches of "
                    f"{self._bytes} bytes (bounds {self.batches_max} batches, "
                    f"{self.bytes_max} bytes)",
                    hint="retry after the next blocks commit",
                )
            self._pending[batch.header_signature] = PendingBatch(batch, size, now_ms)
            self._rejected.pop(batch.header_signature, None)
            self._bytes += size
            self._publish_gauges()
        return True

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
        with self._lock:
            for pending in self._pending.values():
                return pending.added_ms
        return None

    def remove(self, batch_ids: Iterable[str]) -> None:
        """Forget batches that are now committed."""
        with self._lock:
            for batch_id in batch_ids:
                pending = self._pending.pop(batch_id, None)
                if pending is not None:
                    self._bytes -= pending.size_bytes
            self._publish_gauges()

    def reject(self, batch_id: str, reason: str) -> None:
        """Drop an invalid batch and keep why, for its status."""
        with self._lock:
            pending = self._pending.pop(batch_id, None)
            if pending is not None:
                self._bytes -= pending.size_bytes
            self._rejected[batch_id] = reason[:rejection_reason_chars_max]
            self._rejected.move_to_end(batch_id)
            while len(self._rejected) > rejections_kept_max:
                self._rejected.popitem(last=False)
            self._publish_gauges()
        CHAIN_POOL_REJECTED_TOTAL.labels(reason="invalid").inc()

    def rejection(self, batch_id: str) -> str | None:
        """Why the batch was dropped as invalid, if it was (and is still remembered)."""
        with self._lock:
            return self._rejected.get(batch_id)

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
