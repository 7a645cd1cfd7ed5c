"""The chain's ``BlockExecutor`` over the processing layer's executor and schedulers.

The chain sits above processing (DESIGN.md: the publisher and validator execute through
it), so the adapter lives here and processing knows nothing of the chain. It runs one
block on the committed state at a root, never writes, and turns processing's results into
the chain's: a batch's reason ``None`` becomes ``""``, and every receipt becomes bytes in
the canonical CBOR encoding of docs/families.md ("Receipt encoding"), which is what the
chain store keeps by transaction id.
"""

from __future__ import annotations

from collections.abc import Sequence

from trusted_ledger.chain.execution import BatchResult, ExecutionOutcome
from trusted_ledger.errors import FamilyNotServed
from trusted_ledger.processing import (
    BlockExecutor,
    HandlerRegistry,
    PolicyFactory,
    Scheduler,
    SerialScheduler,
    TransactionReceipt,
)
from trusted_ledger.processing.codec import encode_canonical
from trusted_ledger.state import StateStore
from trusted_ledger.txn import Batch


def encode_receipt(receipt: TransactionReceipt) -> bytes:
    """Canonical CBOR of ``receipt`` (docs/families.md, "Receipt encoding"): equal receipts
    give equal bytes on every node, whichever scheduler produced them."""
    return encode_canonical(
        {
            "transaction_id": receipt.transaction_id,
            "family_name": receipt.family_name,
            "state_changes": [[change.address, change.value] for change in receipt.state_changes],
            "events": [
                {
                    "event_type": event.event_type,
                    "attributes": [[key, value] for key, value in event.attributes],
                    "data": event.data,
                }
                for event in receipt.events
            ],
            "data": list(receipt.data),
        }
    )


class ProcessingBlockExecutor:
    """Implements ``chain.BlockExecutor`` with processing's handlers and a scheduler.

    ``scheduler`` is ``SerialScheduler()`` (the default) or a ``ParallelScheduler``; both
    give the same outcome, so nodes may differ in the one they run.
    """

    def __init__(
        self,
        registry: HandlerRegistry,
        state: StateStore,
        scheduler: Scheduler | None = None,
        *,
        policy_factory: PolicyFactory | None = None,
    ) -> None:
        self._registry = registry
        self._executor = BlockExecutor(
            registry,
            state,
            scheduler if scheduler is not None else SerialScheduler(),
            policy_factory=policy_factory,
        )

    @property
    def scheduler(self) -> Scheduler:
        return self._executor.scheduler

    def waiting_reason(self, batch: Batch) -> str | None:
        """A transaction's family version that no handler serves now, said as the status
        a client sees (the batch waits for a processor to register)."""
        for transaction in batch.transactions:
            header = transaction.header
            try:
                self._registry.lookup(header.family_name, header.family_version)
            except FamilyNotServed:
                return (
                    f"waiting for a transaction processor for family {header.family_name!r} "
                    f"version {header.family_version!r}"
                )
        return None

    def execute(self, batches: Sequence[Batch], base_state_root: bytes) -> ExecutionOutcome:
        """Apply ``batches`` in order to the committed state at ``base_state_root``.

        Raises ``TransactionProcessingFailed`` (from processing) if a handler keeps failing
        internally: no outcome exists for the block then.
        """
        execution = self._executor.execute(base_state_root, batches)
        results = tuple(
            BatchResult(
                result.batch_id,
                result.valid,
                result.reason or "",
                result.invalid_transaction_id or "",
            )
            for result in execution.batch_results
        )
        receipts = {
            receipt.transaction_id: encode_receipt(receipt) for receipt in execution.receipts
        }
        return ExecutionOutcome(execution.state_root, execution.state_update, results, receipts)
