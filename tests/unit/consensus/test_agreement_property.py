"""Agreement under any delivery order: random interleavings, duplicates and timer expiries
of four honest machines never yield two different decisions (invariant 1), and once the
messages flow in order again every machine decides."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trusted_ledger.consensus import TimeoutKind

from .support import Router

_KINDS = list(TimeoutKind)


@settings(max_examples=40, deadline=None)
@given(rng=st.randoms(use_true_random=False), steps=st.integers(0, 600))
def test_no_two_decisions_differ_under_any_order(rng: random.Random, steps: int) -> None:
    router = Router()
    router.start()
    pool = list(router.inflight)
    router.inflight.clear()
    for _ in range(steps):
        while router.events:
            router.events.popleft()()
        pool.extend(router.inflight)
        router.inflight.clear()
        if pool and rng.random() < 0.85:
            index = rng.randrange(len(pool))
            dest, message = pool[index]
            if rng.random() < 0.8:  # otherwise keep it: a duplicate will follow
                pool.pop(index)
            router.deliver(dest, message)
        else:
            router.fire(rng.choice(_KINDS), [rng.choice(router.members)])
        assert len(router.decided()) <= 1
    # Heal: deliver everything in order, expire timers, until every machine has decided.
    router.inflight.extend(pool)
    for _ in range(30):
        router.run()
        if all(node.decisions for node in router.nodes.values()):
            break
        for kind in _KINDS:
            router.fire(kind)
    assert len(router.decided()) == 1
    assert all(len(node.decisions) == 1 for node in router.nodes.values())
    assert all(node.refused == [] for node in router.nodes.values())
