"""The simulated network between members: delay, loss, duplication, reordering, partitions.

Every directed link (a, b) gets its own base latency, drawn once from the configured range,
so some peers are near and some far, as between banks' data centres. Each message then
takes base + an exponential jitter (a long tail, which is what reorders messages), with a
chance of an extra reordering delay, a chance of being lost and a chance of arriving twice.
A partition cuts every link between its ``side`` and the rest from ``start_us`` until
``heal_us``; a message is lost if the link is cut when it is sent *or* when it would arrive
(a cable cut mid-flight loses what was on it). Each link holds at most
``link_in_flight_max`` messages; more are dropped, as a bounded peer queue would.

The network decides *when* a message arrives; the runner's event queue delivers it. All
randomness comes from one stream, so a seed fixes every delay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from trusted_ledger.errors import SimulationConfigInvalid
from trusted_ledger.testing.sim.clock import US_PER_MS

link_in_flight_max = 2_000
"""Messages one directed link holds at once (a peer's bounded send queue); a spamming
member fills its own links, never the honest ones'."""


@dataclass(frozen=True, slots=True)
class Partition:
    """Links between ``side`` and every other node are cut in [start_us, heal_us)."""

    start_us: int
    heal_us: int
    side: frozenset[int]

    def cuts(self, a: int, b: int, now_us: int) -> bool:
        return self.start_us <= now_us < self.heal_us and ((a in self.side) != (b in self.side))


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    base_delay_ms_min: float = 2.0
    base_delay_ms_max: float = 40.0
    jitter_ms_mean: float = 5.0
    loss_probability: float = 0.0
    duplicate_probability: float = 0.0
    reorder_probability: float = 0.0
    reorder_delay_ms_max: float = 200.0
    partitions: tuple[Partition, ...] = ()
    link_in_flight_max: int = link_in_flight_max

    def __post_init__(self) -> None:
        for name in ("loss_probability", "duplicate_probability", "reorder_probability"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise SimulationConfigInvalid(f"{name} must be in [0, 1), got {value}")
        if not 0 <= self.base_delay_ms_min <= self.base_delay_ms_max:
            raise SimulationConfigInvalid("base delay range must be 0 <= min <= max")
        for partition in self.partitions:
            if partition.heal_us <= partition.start_us:
                raise SimulationConfigInvalid("a partition must heal after it starts")

    @property
    def last_heal_us(self) -> int:
        return max((p.heal_us for p in self.partitions), default=0)


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    cut: int = 0
    overflowed: int = 0
    duplicated: int = 0


@dataclass(slots=True)
class SimNetwork:
    """Per-link delays and faults for ``size`` nodes."""

    size: int
    config: NetworkConfig
    rng: random.Random
    stats: NetworkStats = field(default_factory=NetworkStats)
    _base_delay_us: dict[tuple[int, int], int] = field(default_factory=dict)
    _in_flight: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        low, high = self.config.base_delay_ms_min, self.config.base_delay_ms_max
        for a in range(self.size):
            for b in range(self.size):
                if a != b:
                    self._base_delay_us[a, b] = int(self.rng.uniform(low, high) * US_PER_MS)
                    self._in_flight[a, b] = 0

    def connected(self, a: int, b: int, now_us: int) -> bool:
        return not any(p.cuts(a, b, now_us) for p in self.config.partitions)

    def send(self, source: int, destination: int, now_us: int) -> list[int]:
        """Arrival times (0, 1 or 2 of them) of one message sent now on (source, destination).
        The caller schedules each arrival and calls ``arrived`` when it happens."""
        self.stats.sent += 1
        link = (source, destination)
        if not self.connected(source, destination, now_us):
            self.stats.cut += 1
            return []
        if self.rng.random() < self.config.loss_probability:
            self.stats.lost += 1
            return []
        copies = 1
        if self.rng.random() < self.config.duplicate_probability:
            copies = 2
            self.stats.duplicated += 1
        arrivals: list[int] = []
        for _ in range(copies):
            if self._in_flight[link] >= self.config.link_in_flight_max:
                self.stats.overflowed += 1
                continue
            self._in_flight[link] += 1
            arrivals.append(now_us + self._delay_us(link))
        return arrivals

    def _delay_us(self, link: tuple[int, int]) -> int:
        delay = self._base_delay_us[link]
        if self.config.jitter_ms_mean > 0:
            delay += int(self.rng.expovariate(1.0 / self.config.jitter_ms_mean) * US_PER_MS)
        if self.rng.random() < self.config.reorder_probability:
            delay += int(self.rng.uniform(0.0, self.config.reorder_delay_ms_max) * US_PER_MS)
        return delay

    def arrived(self, source: int, destination: int, now_us: int) -> bool:
        """Whether a message arriving now on (source, destination) is delivered: it frees
        its slot in the link either way, and is lost if the link is cut at this instant."""
        self._in_flight[source, destination] -= 1
        assert self._in_flight[source, destination] >= 0
        if not self.connected(source, destination, now_us):
            self.stats.cut += 1
            return False
        self.stats.delivered += 1
        return True
