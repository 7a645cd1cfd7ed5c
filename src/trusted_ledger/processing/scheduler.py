"""The scheduler interface, the serial scheduler, and what both hand back to the executor.

A scheduler decides the order (and overlap) in which a block's transactions run; it must
give every transaction exactly the prior writes that running the block one transaction
after another would give it, so that every scheduler yields the same verdicts, receipts and
state root. Batch atomicity (Sawtooth): if any transaction of a batch is invalid, the whole
batch is invalid and none of its writes apply; the verdict names the batch's first invalid
transaction in batch order.
"""

from __future__ import annotations

import abc
from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass

from trusted_ledger.processing.plan import BlockPlan
from trusted_ledger.processing.runner import TransactionOutcome, TransactionRunner


@dataclass(frozen=True, slots=True)
class BatchVerdict:
    """A batch's valid outcomes in order, or the outcome of its first invalid transaction."""

    batch_index: int
    outcomes: tuple[TransactionOutcome, ...]  # every transaction's, when the batch is valid
    failure: TransactionOutcome | None = None

    @property
    def valid(self) -> bool:
        return self.failure is None


class Scheduler(abc.ABC):
    """Runs a block's transactions through a runner; one implementation per strategy."""

    name: str

    @abc.abstractmethod
    def run(self, plan: BlockPlan, runner: TransactionRunner) -> list[BatchVerdict]:
        """One verdict per batch of ``plan``, in batch order."""


def unmet_dependency(
    plan: BlockPlan, order: int, batch_valid: Callable[[int], bool]
) -> TransactionOutcome | None:
    """An invalid outcome if a transaction the header names, earlier in the block, is not
    applied because its batch is invalid (as in Sawtooth); None otherwise.

    ``batch_valid`` is asked only about earlier batches, which are decided by then. One in
    the asker's own batch is applied: had it failed, the asker would not run at all.
    Shared, so that every scheduler decides and words it alike.
    """
    asker = plan.transactions[order]
    for dependency in plan.named_dependencies[order]:
        named = plan.transactions[dependency]
        if named.batch_index != asker.batch_index and not batch_valid(named.batch_index):
            return TransactionOutcome(
                asker.transaction.id,
                {},
                None,
                f"dependency {named.transaction.id[:16]}... is not applied: "
                "its batch in this block is invalid",
            )
    return None


class SerialScheduler(Scheduler):
    """One transaction after another: the reference every other scheduler must match."""

    name = "serial"

    def run(self, plan: BlockPlan, runner: TransactionRunner) -> list[BatchVerdict]:
        block_writes: dict[str, bytes | None] = {}  # merged writes of valid batches so far
        verdicts: list[BatchVerdict] = []

        for batch_index, orders in enumerate(plan.batch_orders):
            batch_writes: dict[str, bytes | None] = {}
            prior = ChainMap(batch_writes, block_writes)
            outcomes: list[TransactionOutcome] = []
            failure = None
            for order in orders:
                outcome = unmet_dependency(plan, order, lambda b: verdicts[b].valid) or runner.run(
                    plan.transactions[order].transaction, prior
                )
                if not outcome.valid:
                    failure = outcome
                    break
                outcomes.append(outcome)
                batch_writes.update(outcome.writes)
            if failure is None:
                block_writes.update(batch_writes)
                verdicts.append(BatchVerdict(batch_index, tuple(outcomes)))
            else:
                verdicts.append(BatchVerdict(batch_index, (), failure))
        return verdicts
