"""A member cut off the network and healed, with real processes (issue 6): four members on
loopback (``net init``: each with its own SoftHSM token, RocksDB chain and ports), every
member-to-member link through its own fault-injecting proxy (``testing.faultproxy.ProxyNet``).

What BFT promises, seen from outside:

- one member isolated (f = 1 of n = 4): the other three keep committing, the isolated one
  commits nothing new; healed, it catches up to the same head, and every batch an API
  accepted is committed;
- a 2|2 split, silent (links look open; bytes are dropped, or held back and delivered late
  on heal): no quorum on either side, so no member commits anything and nothing forks;
  healed, commits resume everywhere and the batches submitted during the split are
  committed.

After each, every member holds the same block id at every height.

One consortium serves both tests (starting one costs most of a test's time on a small
machine); each test leaves every link healed and every member caught up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.node.support import (
    NET_NAMES,
    BatchLoad,
    IntkeyWriter,
    RunningNet,
    assert_committed,
    init_net,
    stop_net,
    submit,
)
from trusted_ledger.testing.faultproxy import FaultMode, ProxyLoop, ProxyNet

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(240)]

CATCH_UP_TIMEOUT_S = 60.0
"""Healing costs a redial (backoff up to 5 s) and a catch-up probe (every 5 s); generous,
because four nodes share this machine's cores with whatever else runs."""
SPLIT_OBSERVED_S = 5.0
"""How long a split is watched for a commit that must not happen: several propose and vote
timeouts (1 s and 0.5 s, growing each round), so every member has tried to decide."""
IN_FLIGHT_SETTLE_S = 2.0
"""After a cut, a member may still commit the one block whose votes it already received."""


@dataclass
class PartitionedNet:
    net: RunningNet
    proxies: ProxyNet


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartitionedNet]:
    directory: Path = tmp_path_factory.mktemp("partition") / "net"
    init_net(directory)
    with ProxyLoop() as loop:
        proxies = ProxyNet(loop, directory)  # before `net up`: members dial the proxies
        net = RunningNet(directory)
        try:
            net.start()
            for name in NET_NAMES:
                _wait_peers(net, name, 3)
            # Every pair is connected through a proxy (in the direction its dialler chose).
            used = {pair for pair, stats in proxies.stats().items() if stats.bytes_to_target}
            assert {frozenset(pair) for pair in used} == {
                frozenset((a, b)) for a in NET_NAMES for b in NET_NAMES if a < b
            }, used
            yield PartitionedNet(net, proxies)
        finally:
            stop_net(directory)


def _others(name: str) -> tuple[str, ...]:
    return tuple(n for n in NET_NAMES if n != name)


def _peers_connected(net: RunningNet, name: str) -> int | None:
    status = net.status(name)
    return None if status is None else int(status["consensus"]["peers_connected"])


def _wait_peers(net: RunningNet, name: str, expected: int) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while (found := _peers_connected(net, name)) != expected:
        assert time.monotonic() < deadline, f"{name}: {found} peers, expected {expected}"
        time.sleep(0.2)


def _assert_no_fork(net: RunningNet) -> None:
    net.assert_same_chain(NET_NAMES, net.common_height())


@pytest.mark.parametrize(
    ("isolated", "mode"), [("bank-d", FaultMode.RESET), ("bank-b", FaultMode.BLACKHOLE)]
)
def test_isolated_member_commits_nothing_then_catches_up(
    partitioned: PartitionedNet, isolated: str, mode: FaultMode
) -> None:
    net, proxies = partitioned.net, partitioned.proxies
    rest = _others(isolated)
    loaded = rest[:2]  # the load goes to two of the others; the third only hears of it
    with BatchLoad(net, loaded[0], 0.1) as load_a, BatchLoad(net, loaded[1], 0.1) as load_b:
        net.wait_height(NET_NAMES, net.common_height() + 2)
        # RESET: the isolated member's connections die now and every redial is reset.
        # BLACKHOLE: they stay open, and what is sent on them vanishes.
        proxies.isolate(isolated, mode)
        try:
            if mode is FaultMode.RESET:
                _wait_peers(net, isolated, 0)
            else:
                time.sleep(IN_FLIGHT_SETTLE_S)
            at_cut = net.height(isolated)
            assert at_cut is not None
            # f = 1 member cut off: the other three keep committing.
            start = max(h for h in net.heights(rest).values() if h is not None)
            net.wait_height(rest, start + 3)
            stranded = net.height(isolated)
            assert stranded is not None and stranded <= at_cut + 1, (at_cut, stranded)
            ahead = net.common_height(rest)
            assert stranded < ahead, f"{isolated} at {stranded} kept up without links ({ahead})"
        finally:
            proxies.heal()
        # Healed: it reconnects, fetches what it missed with certificates, re-executes it.
        target = max(h for h in net.heights(rest).values() if h is not None)
        net.wait_height(NET_NAMES, target, timeout_s=CATCH_UP_TIMEOUT_S)
    accepted = load_a.accepted_ids + load_b.accepted_ids
    assert load_a.accepted > 0 and load_b.accepted > 0
    # As every member sees it, including the isolated one and the one no client sent to.
    for name in NET_NAMES:
        assert_committed(net, name, accepted, timeout_s=CATCH_UP_TIMEOUT_S)
    _assert_no_fork(net)


def _dropped(proxies: ProxyNet) -> int:
    return sum(stats.bytes_dropped for stats in proxies.stats().values())


def _forwarded(proxies: ProxyNet) -> int:
    """Connections joined to their targets so far (each dial that got through)."""
    return sum(stats.connections_forwarded for stats in proxies.stats().values())


@pytest.mark.parametrize("mode", [FaultMode.BLACKHOLE, FaultMode.STALL])
def test_two_two_split_commits_nothing_and_no_fork_then_resumes(
    partitioned: PartitionedNet, mode: FaultMode
) -> None:
    net, proxies = partitioned.net, partitioned.proxies
    for name in NET_NAMES:
        _wait_peers(net, name, 3)  # whole again after the previous test
    writer = IntkeyWriter(f"split-{mode.value[0]}-")
    before_split = submit(net, "bank-a", writer, 3)
    assert_committed(net, "bank-d", before_split)
    net.level()  # every member holds what was decided, so none catches up during the split
    dropped_before, forwarded_before = _dropped(proxies), _forwarded(proxies)

    # BLACKHOLE: every connection stays open and silently loses what is sent.
    # STALL: every connection stays open and what is sent waits, undelivered.
    proxies.split(["bank-a", "bank-b"], mode)
    try:
        at_cut = net.heights()
        during = submit(net, "bank-a", writer, 3) + submit(net, "bank-c", writer, 3)
        time.sleep(IN_FLIGHT_SETTLE_S)
        settled = net.heights()
        for name in NET_NAMES:
            cut_height, settled_height = at_cut[name], settled[name]
            assert cut_height is not None and settled_height is not None
            assert settled_height <= cut_height + 1, (at_cut, settled)
        time.sleep(SPLIT_OBSERVED_S)  # rounds come and go; 2 of 4 is never a quorum of 3
        after = net.heights()
        assert after == settled, f"committed without a quorum: {settled} -> {after}"
        _assert_no_fork(net)
        if mode is FaultMode.BLACKHOLE:
            assert _dropped(proxies) > dropped_before, "members kept sending into the hole"
    finally:
        proxies.heal()
    assert mode is FaultMode.BLACKHOLE or _dropped(proxies) == dropped_before

    # Healed: blackholed connections are reset and the members redial; stalled ones deliver
    # every message they held, late. Either way the members decide again.
    top = max(h for h in after.values() if h is not None)
    net.wait_height(NET_NAMES, top + 1, timeout_s=CATCH_UP_TIMEOUT_S)
    for name in NET_NAMES:
        assert_committed(net, name, during, timeout_s=CATCH_UP_TIMEOUT_S)
    _assert_no_fork(net)
    if mode is FaultMode.STALL:
        # The same connections carried on: no member noticed the partition enough to redial.
        assert _forwarded(proxies) == forwarded_before
