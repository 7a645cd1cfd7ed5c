"""Simulated time: one priority queue of events ordered by (time, sequence number).

There is no wall clock anywhere in the simulation. Time is an integer count of
microseconds (integers, so no float rounding can make two runs disagree), and events
scheduled for the same instant run in the order they were scheduled (the sequence number),
so a run is a pure function of its seed.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from trusted_ledger.errors import SimulationLimitExceeded

EventT = TypeVar("EventT")

US_PER_MS = 1_000
US_PER_S = 1_000_000

events_pending_max = 2_000_000
"""Most events that may wait in the queue at once: a run that schedules more is broken
(a timer or message storm), and failing fast beats swapping."""


@dataclass(order=True, frozen=True, slots=True)
class _Entry(Generic[EventT]):
    time_us: int
    sequence: int
    event: EventT = field(compare=False)


class EventQueue(Generic[EventT]):
    """The simulation's clock and agenda. ``pop`` advances ``now_us`` to the next event."""

    def __init__(self, *, pending_max: int = events_pending_max) -> None:
        self._heap: list[_Entry[EventT]] = []
        self._sequence = 0
        self._pending_max = pending_max
        self.now_us = 0

    def __len__(self) -> int:
        return len(self._heap)

    def schedule_at(self, time_us: int, event: EventT) -> None:
        """Run ``event`` at ``time_us`` (never in the past: that would rewrite history)."""
        if time_us < self.now_us:
            raise SimulationLimitExceeded(
                f"event scheduled at {time_us} us, before now ({self.now_us} us)"
            )
        if len(self._heap) >= self._pending_max:
            raise SimulationLimitExceeded(
                f"more than {self._pending_max} pending events", hint="a message or timer storm"
            )
        heapq.heappush(self._heap, _Entry(time_us, self._sequence, event))
        self._sequence += 1

    def schedule(self, delay_us: int, event: EventT) -> None:
        self.schedule_at(self.now_us + max(0, delay_us), event)

    def next_time_us(self) -> int | None:
        return self._heap[0].time_us if self._heap else None

    def pop(self) -> tuple[int, EventT]:
        """The earliest event and its time; ``now_us`` moves to that time."""
        entry = heapq.heappop(self._heap)
        self.now_us = entry.time_us
        return entry.time_us, entry.event
