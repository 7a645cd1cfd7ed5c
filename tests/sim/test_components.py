"""The simulator's parts on their own: clock, random tree, network, guard, toy application."""

from __future__ import annotations

import random

import pytest

from trusted_ledger.custody.guard import Decision, Position, Watermark
from trusted_ledger.errors import SigningRefused, SimulationConfigInvalid, SimulationLimitExceeded
from trusted_ledger.testing.sim.app import GENESIS_STATE_ROOT, SimBlock, next_state_root
from trusted_ledger.testing.sim.clock import EventQueue
from trusted_ledger.testing.sim.guard import MemoryGuard
from trusted_ledger.testing.sim.network import NetworkConfig, Partition, SimNetwork
from trusted_ledger.testing.sim.rng import RngTree


def test_queue_orders_by_time_then_by_scheduling_order() -> None:
    queue: EventQueue[str] = EventQueue()
    queue.schedule_at(50, "late")
    queue.schedule_at(10, "first at 10")
    queue.schedule_at(10, "second at 10")
    queue.schedule(0, "now")
    popped = [queue.pop() for _ in range(4)]
    assert popped == [(0, "now"), (10, "first at 10"), (10, "second at 10"), (50, "late")]
    assert queue.now_us == 50
    with pytest.raises(SimulationLimitExceeded):
        queue.schedule_at(49, "the past")


def test_queue_is_bounded() -> None:
    queue: EventQueue[int] = EventQueue(pending_max=3)
    for i in range(3):
        queue.schedule(i, i)
    with pytest.raises(SimulationLimitExceeded):
        queue.schedule(5, 5)


def test_rng_tree_streams_depend_on_seed_and_name_only() -> None:
    a = RngTree(7).child("network").random()
    # Drawing from another stream first must not shift this one.
    tree = RngTree(7)
    tree.child("node/0").random()
    assert tree.child("network").random() == a
    assert RngTree(8).child("network").random() != a
    assert RngTree(7).child("node/1").random() != a
    assert RngTree(7).secret_bytes("key/0") == RngTree(7).secret_bytes("key/0")
    assert RngTree(7).secret_bytes("key/0") != RngTree(7).secret_bytes("key/1")


def _network(config: NetworkConfig, seed: int = 1) -> SimNetwork:
    return SimNetwork(4, config, random.Random(seed))


def test_network_delays_within_configured_bounds_and_deterministic() -> None:
    config = NetworkConfig(base_delay_ms_min=5, base_delay_ms_max=10, jitter_ms_mean=0)
    first = [_network(config).send(0, 1, 0) for _ in range(1)]
    net = _network(config)
    arrivals = [net.send(0, 1, 1_000)[0] for _ in range(20)]
    assert all(1_000 + 5_000 <= t <= 1_000 + 10_000 for t in arrivals)
    assert len(set(arrivals)) == 1  # no jitter: one link, one delay
    assert _network(config).send(0, 1, 0) == first[0]


def test_jitter_and_reordering_reorder_messages() -> None:
    net = _network(NetworkConfig(jitter_ms_mean=20, reorder_probability=0.5))
    arrivals = [net.send(0, 1, i)[0] for i in range(100)]
    assert arrivals != sorted(arrivals)


def test_loss_and_duplication_rates_roughly_as_configured() -> None:
    net = _network(
        NetworkConfig(loss_probability=0.2, duplicate_probability=0.1, link_in_flight_max=10**6)
    )
    copies = [len(net.send(0, 1, 0)) for _ in range(5_000)]
    lost = copies.count(0) / len(copies)
    doubled = copies.count(2) / len(copies)
    assert 0.17 < lost < 0.23
    assert 0.06 < doubled < 0.10
    assert net.stats.lost == copies.count(0)


def test_partition_cuts_across_sides_at_send_and_at_arrival_and_heals() -> None:
    partition = Partition(start_us=100, heal_us=200, side=frozenset({0}))
    net = _network(NetworkConfig(partitions=(partition,), jitter_ms_mean=0))
    assert net.send(0, 1, 150) == []  # cut at send
    assert net.send(1, 0, 150) == []
    assert len(net.send(1, 2, 150)) == 1  # same side
    in_flight = net.send(0, 1, 50)  # sent before the cut...
    assert len(in_flight) == 1
    assert net.arrived(0, 1, 150) is False  # ...arrives during it: lost
    assert len(net.send(0, 1, 200)) == 1  # healed
    assert net.arrived(0, 1, 250) is True


def test_link_queue_is_bounded() -> None:
    net = _network(NetworkConfig(link_in_flight_max=3))
    sent = [net.send(0, 1, 0) for _ in range(5)]
    assert sum(len(s) for s in sent) == 3
    assert net.stats.overflowed == 2
    net.arrived(0, 1, 10**9)
    assert len(net.send(0, 1, 0)) == 1  # a slot came free


def test_network_config_rejects_impossible_values() -> None:
    with pytest.raises(SimulationConfigInvalid):
        NetworkConfig(loss_probability=1.0)
    with pytest.raises(SimulationConfigInvalid):
        NetworkConfig(partitions=(Partition(5, 5, frozenset({0})),))


def test_memory_guard_follows_the_real_rule_and_persists_before_signing() -> None:
    persisted: list[Watermark] = []
    guard = MemoryGuard(None, persisted.append)
    a, b = b"a" * 32, b"b" * 32
    assert guard.authorise(Position(1, 0, 2), a) is Decision.ADVANCE
    assert persisted == [Watermark(Position(1, 0, 2), a)]
    assert guard.authorise(Position(1, 0, 2), a) is Decision.REPEAT
    with pytest.raises(SigningRefused, match="conflicting digest"):
        guard.authorise(Position(1, 0, 2), b)
    with pytest.raises(SigningRefused, match="below watermark"):
        guard.authorise(Position(1, 0, 1), a)
    assert guard.refusals == 2
    assert len(persisted) == 1
    # A restarted guard from the persisted watermark refuses the same things.
    restarted = MemoryGuard(persisted[-1], persisted.append)
    with pytest.raises(SigningRefused):
        restarted.authorise(Position(1, 0, 2), b)


def test_block_ids_bind_height_round_and_chain() -> None:
    block = SimBlock("c", 3, 0, bytes(32), b"p" * 32, b"payload")
    others = [
        SimBlock("d", 3, 0, bytes(32), b"p" * 32, b"payload"),
        SimBlock("c", 4, 0, bytes(32), b"p" * 32, b"payload"),
        SimBlock("c", 3, 1, bytes(32), b"p" * 32, b"payload"),
        SimBlock("c", 3, 0, bytes(32), b"p" * 32, b"payloaD"),
    ]
    assert len({block.block_id, *(o.block_id for o in others)}) == 5
    assert next_state_root(GENESIS_STATE_ROOT, b"x") != next_state_root(GENESIS_STATE_ROOT, b"y")
