"""The parallel scheduler: runs independent transactions concurrently on a thread pool.

Readiness (see ``plan`` for the dependency graph):
- a dependency in the same batch must have finished: its writes are visible to later
  transactions of the batch whatever the batch's fate (if it failed, so does the batch);
- a dependency in an earlier batch must have its whole *batch* decided, because its writes
  count only if every transaction of that batch is valid.
A ready transaction's prior is the in-order merge of the writes of its dependencies that
count. Every address it may read is written, if at all, only by its dependencies, so it
reads exactly what it would read under the serial scheduler.

A batch is decided invalid as soon as one of its transactions fails; its remaining
transactions *before* the failure still run (the verdict names the first failure in batch
order, as the serial scheduler does), those after it are skipped.

Threads are real concurrency for handlers that wait (external processors over ZMQ, issue 5);
built-in Python handlers mostly contend for the GIL.
"""

from __future__ import annotations

import functools
import queue
from collections import deque
from concurrent import futures

from trusted_ledger.errors import InvalidInput
from trusted_ledger.observability.metrics import PROCESSING_SCHEDULER_PARALLELISM
from trusted_ledger.processing.plan import BlockPlan
from trusted_ledger.processing.runner import TransactionOutcome, TransactionRunner
from trusted_ledger.processing.scheduler import BatchVerdict, Scheduler, unmet_dependency

parallel_workers_default = 4
parallel_workers_max = 64
"""Threads one block may use: each in-flight transaction may hold a processor's slot."""


class _BlockRun:
    """Bookkeeping for one block: what waits on what, what is done, which batch failed."""

    def __init__(self, plan: BlockPlan) -> None:
        self.plan = plan
        size = len(plan.transactions)
        self.dependencies = plan.dependencies()
        self.outcomes: list[TransactionOutcome | None] = [None] * size
        self.finished = [False] * size  # run or skipped
        self.unmet = [0] * size
        self.waiting_on_transaction: list[list[int]] = [[] for _ in range(size)]
        self.waiting_on_batch: list[list[int]] = [[] for _ in plan.batch_orders]
        self.batch_unfinished = [len(orders) for orders in plan.batch_orders]
        self.batch_decided = [False] * len(plan.batch_orders)
        self.batch_failed_at: list[int | None] = [None] * len(plan.batch_orders)
        self.ready: deque[int] = deque()
        for planned in plan.transactions:
            self._link(planned.order, planned.batch_index)
        for batch_index, count in enumerate(self.batch_unfinished):
            if count == 0:
                self._decide(batch_index)

    def _link(self, order: int, batch_index: int) -> None:
        awaited_batches = set()
        for dependency in self.dependencies[order]:
            dependency_batch = self.plan.transactions[dependency].batch_index
            if dependency_batch == batch_index:
                self.waiting_on_transaction[dependency].append(order)
                self.unmet[order] += 1
            elif dependency_batch not in awaited_batches:
                awaited_batches.add(dependency_batch)
                self.waiting_on_batch[dependency_batch].append(order)
                self.unmet[order] += 1
        if self.unmet[order] == 0:
            self.ready.append(order)

    def should_skip(self, order: int) -> bool:
        planned = self.plan.transactions[order]
        failed_at = self.batch_failed_at[planned.batch_index]
        return failed_at is not None and planned.index_in_batch > failed_at

    def batch_valid(self, batch_index: int) -> bool:
        """Whether a *decided* batch is valid."""
        assert self.batch_decided[batch_index]
        return self.batch_failed_at[batch_index] is None

    def prior(self, order: int) -> dict[str, bytes | None]:
        batch_index = self.plan.transactions[order].batch_index
        merged: dict[str, bytes | None] = {}
        for dependency in self.dependencies[order]:  # ascending: later writes win
            outcome = self.outcomes[dependency]
            if outcome is None or not outcome.valid:
                continue  # skipped, or failed: then this batch or its own one is invalid
            dependency_batch = self.plan.transactions[dependency].batch_index
            if dependency_batch == batch_index or self.batch_failed_at[dependency_batch] is None:
                merged.update(outcome.writes)
        return merged

    def finish(self, order: int, outcome: TransactionOutcome | None) -> None:
        """Record a run (``outcome``) or a skip (None); release what waited on it."""
        planned = self.plan.transactions[order]
        batch_index = planned.batch_index
        self.outcomes[order] = outcome
        self.finished[order] = True
        if outcome is not None and not outcome.valid:
            failed_at = self.batch_failed_at[batch_index]
            if failed_at is None or planned.index_in_batch < failed_at:
                self.batch_failed_at[batch_index] = planned.index_in_batch
        for waiter in self.waiting_on_transaction[order]:
            self._release(waiter)
        self.batch_unfinished[batch_index] -= 1
        failed = self.batch_failed_at[batch_index] is not None
        if not self.batch_decided[batch_index] and (
            failed or self.batch_unfinished[batch_index] == 0
        ):
            self._decide(batch_index)

    def _decide(self, batch_index: int) -> None:
        self.batch_decided[batch_index] = True
        for waiter in self.waiting_on_batch[batch_index]:
            self._release(waiter)

    def _release(self, order: int) -> None:
        self.unmet[order] -= 1
        if self.unmet[order] == 0:
            self.ready.append(order)

    def verdicts(self) -> list[BatchVerdict]:
        assert all(self.finished), "every transaction is run or skipped before verdicts"
        result = []
        for batch_index, orders in enumerate(self.plan.batch_orders):
            failed_at = self.batch_failed_at[batch_index]
            if failed_at is None:
                outcomes = tuple(self.outcomes[order] for order in orders)
                assert all(o is not None and o.valid for o in outcomes)
                result.append(BatchVerdict(batch_index, outcomes))  # type: ignore[arg-type]
            else:
                failure = self.outcomes[orders[failed_at]]
                assert failure is not None and not failure.valid
                result.append(BatchVerdict(batch_index, (), failure))
        return result


class ParallelScheduler(Scheduler):
    """Runs transactions whose dependencies are settled on up to ``workers`` threads."""

    name = "parallel"

    def __init__(self, workers: int = parallel_workers_default) -> None:
        if not 1 <= workers <= parallel_workers_max:
            raise InvalidInput(f"workers must be 1..{parallel_workers_max}, got {workers}")
        self.workers = workers

    def run(self, plan: BlockPlan, runner: TransactionRunner) -> list[BatchVerdict]:
        block = _BlockRun(plan)
        # Workers report on a queue: one blocking get per completion, cheaper than
        # futures.wait, which re-arms a waiter on every in-flight future each call.
        completed: queue.SimpleQueue[tuple[int, futures.Future[TransactionOutcome]]] = (
            queue.SimpleQueue()
        )
        in_flight: dict[int, futures.Future[TransactionOutcome]] = {}
        with futures.ThreadPoolExecutor(self.workers, thread_name_prefix="tl-scheduler") as pool:
            try:
                while block.ready or in_flight:
                    self._start_ready(block, runner, pool, in_flight, completed)
                    if not in_flight:
                        continue  # everything ready was skipped; more may have become ready
                    order, future = completed.get()
                    del in_flight[order]
                    block.finish(order, future.result())  # raises a processing failure
            finally:
                for future in in_flight.values():
                    future.cancel()
        return block.verdicts()

    def _start_ready(
        self,
        block: _BlockRun,
        runner: TransactionRunner,
        pool: futures.ThreadPoolExecutor,
        in_flight: dict[int, futures.Future[TransactionOutcome]],
        completed: queue.SimpleQueue[tuple[int, futures.Future[TransactionOutcome]]],
    ) -> None:
        while block.ready and len(in_flight) < self.workers:
            order = block.ready.popleft()
            if block.should_skip(order):
                block.finish(order, None)
                continue
            unmet = unmet_dependency(block.plan, order, block.batch_valid)
            if unmet is not None:
                block.finish(order, unmet)
                continue
            transaction = block.plan.transactions[order].transaction
            future = pool.submit(runner.run, transaction, block.prior(order))
            future.add_done_callback(functools.partial(_report, completed, order))
            in_flight[order] = future
            PROCESSING_SCHEDULER_PARALLELISM.observe(len(in_flight))


def _report(
    completed: queue.SimpleQueue[tuple[int, futures.Future[TransactionOutcome]]],
    order: int,
    future: futures.Future[TransactionOutcome],
) -> None:
    completed.put((order, future))
