"""Batch status as a client asks for it (Sawtooth's ``/batch_statuses``): committed, pending,
invalid with its reason, or unknown to this node."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trusted_ledger.chain.pool import BatchPool
from trusted_ledger.chain.store import ChainStore


class BatchStatus(enum.Enum):
    COMMITTED = "COMMITTED"
    PENDING = "PENDING"
    INVALID = "INVALID"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class BatchStatusReport:
    status: BatchStatus
    block_id: bytes | None = None  # set when committed
    reason: str | None = None  # set when invalid; when pending, why it waits (if it does)
    transaction_id: str = ""  # the invalid transaction, when execution named one


def batch_status(batch_id: str, store: ChainStore, pool: BatchPool) -> BatchStatusReport:
    """The chain is asked first: a committed batch stays committed whatever the pool says."""
    block_id = store.block_id_of_batch(batch_id)
    if block_id is not None:
        return BatchStatusReport(BatchStatus.COMMITTED, block_id=block_id)
    if batch_id in pool:
        return BatchStatusReport(BatchStatus.PENDING, reason=pool.waiting_reason(batch_id))
    reason = pool.rejection(batch_id)
    if reason is not None:
        return BatchStatusReport(
            BatchStatus.INVALID,
            reason=reason,
            transaction_id=pool.rejected_transaction(batch_id) or "",
        )
    # Unknown also covers an invalid batch whose reason was forgotten (bounded record).
    return BatchStatusReport(BatchStatus.UNKNOWN)
