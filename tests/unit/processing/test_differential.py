"""The parallel scheduler must produce exactly what the serial one produces, every block.

Seeded random chains plus hypothesis-chosen ones: several hundred blocks with conflicting
declarations, prefix declarations, explicit dependencies, invalid transactions (so failing
batches) and undeclared reads. Compared per block: state root, node writes, batch verdicts
with reasons, receipts (state changes, events, data) and the merged changes.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trusted_ledger.processing import BlockExecutor, ParallelScheduler, SerialScheduler

from .support import Chain, default_registry, fresh_store, summary
from .workload import ProbeHandler, asset_setup, random_block

SOAK = os.environ.get("TL_SOAK") == "1"
SEEDED_CHAINS = 400 if SOAK else 40
BLOCKS_PER_CHAIN = 8


def _run_chain(seed: int, blocks: int, workers: int) -> tuple[int, int]:
    """Run ``blocks`` random blocks with both schedulers; returns (valid, invalid) batches."""
    rng = random.Random(seed)
    chain = Chain(fresh_store(), default_registry(ProbeHandler()))
    chain.run(asset_setup())
    serial, parallel = SerialScheduler(), ParallelScheduler(workers)
    counts = [0, 0]
    for _ in range(blocks):
        block = random_block(rng)
        reference = BlockExecutor(chain.registry, chain.store, serial).execute(chain.root, block)
        candidate = BlockExecutor(chain.registry, chain.store, parallel).execute(chain.root, block)
        assert summary(candidate) == summary(reference), f"seed {seed}"
        for result in reference.batch_results:
            counts[result.valid] += 1
        chain.store.commit(reference.state_update)
        chain.root = reference.state_root
    return counts[1], counts[0]


def test_seeded_random_chains_match() -> None:
    valid = invalid = 0
    for seed in range(SEEDED_CHAINS):
        good, bad = _run_chain(seed, BLOCKS_PER_CHAIN, workers=1 + seed % 8)
        valid, invalid = valid + good, invalid + bad
    # The workload must exercise both outcomes heavily, or the comparison proves little.
    assert valid > 200 and invalid > 200, (valid, invalid)


@settings(
    max_examples=300 if SOAK else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), workers=st.integers(1, 8), blocks=st.integers(1, 4))
def test_hypothesis_chains_match(seed: int, workers: int, blocks: int) -> None:
    _run_chain(seed, blocks, workers)
