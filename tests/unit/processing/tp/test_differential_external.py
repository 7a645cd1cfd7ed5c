"""External processors must give exactly what the same family built in gives: the serial and
the parallel scheduler, over several blocks with conflicts, deletes and invalid batches."""

from __future__ import annotations

import random

from trusted_ledger.processing import (
    BlockExecutor,
    HandlerRegistry,
    ParallelScheduler,
    Scheduler,
    SerialScheduler,
)
from trusted_ledger.processing.tp import ProcessorServer
from trusted_ledger.txn import Batch

from ..support import Chain, batch, fresh_store, summary
from .conftest import Spawn, counter_txn
from .rawtp import CounterHandler

BLOCKS = 4
NAMES = ("a", "b", "c", "d", "e")


def _block(rng: random.Random) -> list[Batch]:
    batches = []
    for _ in range(rng.randint(3, 7)):
        size = rng.randint(1, 3)
        batches.append(
            batch(
                *(
                    counter_txn(rng.choice(NAMES), rng.randint(-4, 6), key_index=rng.randrange(8))
                    for _ in range(size)
                )
            )
        )
    return batches


def test_external_matches_built_in_with_both_schedulers(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    spawn(max_occupancy=2)
    spawn(max_occupancy=3)
    reference = Chain(fresh_store(), HandlerRegistry([CounterHandler()]))
    external = Chain(fresh_store(), registry)
    schedulers: list[Scheduler] = [SerialScheduler(), ParallelScheduler(workers=4)]
    rng = random.Random(5)
    outcomes = [0, 0]
    for _ in range(BLOCKS):
        block = _block(rng)
        expected = reference.run(block)
        for scheduler in schedulers:
            got = BlockExecutor(external.registry, external.store, scheduler).execute(
                external.root, block
            )
            assert summary(got) == summary(expected), scheduler.name
        external.run(block)
        assert external.root == reference.root
        for result in expected.batch_results:
            outcomes[result.valid] += 1
    # Both verdicts must occur, or the comparison proves little.
    assert outcomes[0] > 0 and outcomes[1] > 0, outcomes
