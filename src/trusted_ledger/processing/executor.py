"""The block executor: schedule a block's batches, merge valid writes, compute the state root.

Nothing is committed here: the result carries the state update (new root and node writes)
for the chain layer to store in the same atomic write as the block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from trusted_ledger.observability.metrics import PROCESSING_BLOCK_SECONDS
from trusted_ledger.processing.handler import HandlerRegistry
from trusted_ledger.processing.plan import BlockPlan
from trusted_ledger.processing.receipts import BatchResult, TransactionReceipt
from trusted_ledger.processing.runner import SubmissionPolicy, TransactionRunner
from trusted_ledger.processing.scheduler import BatchVerdict, Scheduler, SerialScheduler
from trusted_ledger.state import StateStore, StateUpdate, StateView
from trusted_ledger.txn import Batch

PolicyFactory = Callable[[StateView], SubmissionPolicy]
"""Builds the submission policy of a block from the state the block starts from."""


@dataclass(frozen=True)
class BlockExecution:
    """Everything executing one block produced, for the chain layer to record."""

    previous_root: bytes
    state_update: StateUpdate
    batch_results: tuple[BatchResult, ...]
    receipts: tuple[TransactionReceipt, ...]  # valid batches' transactions, in block order
    changes: Mapping[str, bytes | None]  # merged writes of the valid batches

    @property
    def state_root(self) -> bytes:
        return self.state_update.root

    @property
    def valid_batch_ids(self) -> tuple[str, ...]:
        return tuple(result.batch_id for result in self.batch_results if result.valid)


class BlockExecutor:
    """Executes blocks with one registry, one state store and one scheduler."""

    def __init__(
        self,
        registry: HandlerRegistry,
        store: StateStore,
        scheduler: Scheduler | None = None,
        *,
        policy_factory: PolicyFactory | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.scheduler = scheduler if scheduler is not None else SerialScheduler()
        self._policy_factory = policy_factory

    def execute(
        self,
        root: bytes,
        batches: Sequence[Batch],
        pending: Mapping[bytes, bytes] | None = None,
    ) -> BlockExecution:
        """Execute ``batches`` on the state at ``root`` (``pending``: uncommitted nodes).

        Raises ``TransactionProcessingFailed`` if a handler keeps failing internally; no
        part of the block's outcome may be used then.
        """
        started = time.perf_counter()
        base = self.store.view(root, pending)
        # Permissions come from the state before the block (as Sawtooth reads them at the
        # previous block's root): a change to them takes effect from the next block.
        policy = self._policy_factory(base) if self._policy_factory is not None else None
        runner = TransactionRunner(self.registry, base, policy)
        plan = BlockPlan(batches)
        verdicts = self.scheduler.run(plan, runner)
        execution = _assemble(root, plan, verdicts, self.store, pending)
        PROCESSING_BLOCK_SECONDS.labels(self.scheduler.name).observe(time.perf_counter() - started)
        return execution


def _assemble(
    root: bytes,
    plan: BlockPlan,
    verdicts: list[BatchVerdict],
    store: StateStore,
    pending: Mapping[bytes, bytes] | None,
) -> BlockExecution:
    """Merge valid batches' writes in block order and build the results: shared by all
    schedulers, so that they can differ only in the verdicts they hand in."""
    assert len(verdicts) == len(plan.batches), "a scheduler returns one verdict per batch"
    changes: dict[str, bytes | None] = {}
    receipts: list[TransactionReceipt] = []
    results: list[BatchResult] = []
    for batch, verdict in zip(plan.batches, verdicts, strict=True):
        if verdict.failure is not None:
            results.append(
                BatchResult(batch.id, False, verdict.failure.transaction_id, verdict.failure.reason)
            )
            continue
        assert len(verdict.outcomes) == len(batch.transactions)
        for outcome in verdict.outcomes:
            changes.update(outcome.writes)
            assert outcome.receipt is not None
            receipts.append(outcome.receipt)
        results.append(BatchResult(batch.id, True))
    update = store.update(root, changes, pending)
    return BlockExecution(root, update, tuple(results), tuple(receipts), changes)
