"""Where the BFT driver's work runs besides the message path: one chain thread, and timers.

Chain work (building a block, re-executing a peer's block, committing) is heavy and touches
the store, so it runs on ONE worker thread, in submission order: the publisher, validator
and store never run concurrently with each other, and the event loop stays free for
messages and timers. Its results come back on the loop. Timers run on the loop too: the
machine's timeouts, and the driver's own (polls, re-sends, retries). A propose timeout is
parked while the height is idle (this node has no pending batch and has heard nothing at
the height): the publisher makes no empty blocks, so rounds would otherwise time out one
after another with nothing to decide. Parking costs nothing but time, never safety.

Both stop with the driver, and what arrives afterwards is dropped: a result of chain work
that was running at ``stop`` is ignored and a timer that was pending never fires, so a
stopped driver never acts again, while ``wait_stopped`` lets its owner wait for the thread
before handing the store to someone else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from trusted_ledger.consensus import ScheduleTimeout, TimeoutKind
from trusted_ledger.errors import TrustedLedgerError

_T = TypeVar("_T")


class ChainWorker:
    """The driver's one chain thread; ``start`` it on the running loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopped = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bft-chain"
        )

    def submit(
        self,
        work: Callable[[], _T],
        done: Callable[[_T], None],
        *,
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Run ``work`` on the chain worker thread; ``done``/``on_error`` run on the loop,
        unless the driver stopped meanwhile."""
        assert self._loop is not None and self._executor is not None
        try:
            future = self._loop.run_in_executor(self._executor, work)
        except RuntimeError:  # the worker was shut down by stop()
            return

        def finished(completed: asyncio.Future[_T]) -> None:
            if self._stopped or completed.cancelled():
                return
            exc = completed.exception()
            if exc is None:
                done(completed.result())
            elif isinstance(exc, (TrustedLedgerError, OSError)):
                on_error(exc)
            else:
                # A bug, not an input problem: surface it through the loop's handler.
                on_error(exc)
                raise exc

        future.add_done_callback(finished)

    def stop(self) -> None:
        """Drop queued work and every result still to come; running work finishes."""
        self._stopped = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def wait_stopped(self) -> None:
        """After ``stop``: wait until the work that was running has finished."""
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)


class DriverTimers:
    """Timers on the driver's loop that are cancelled, all at once, when it stops.

    A machine timeout fires as ``on_timeout(kind, height, round)``; ``idle`` says whether
    the height is idle, so that a propose timeout waits for ``wake`` instead.
    """

    def __init__(
        self,
        *,
        on_timeout: Callable[[TimeoutKind, int, int], None],
        idle: Callable[[], bool],
    ) -> None:
        self._on_timeout = on_timeout
        self._idle = idle
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._parked: list[ScheduleTimeout] = []
        self._stopped = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def later(self, delay_s: float, callback: Callable[..., object], *args: object) -> None:
        """Call ``callback(*args)`` on the loop after ``delay_s``, unless stopped by then."""
        assert self._loop is not None
        if self._stopped:
            return
        timer: asyncio.TimerHandle | None = None

        def fire() -> None:
            if timer is not None:
                self._pending.discard(timer)
            if not self._stopped:
                callback(*args)

        timer = self._loop.call_later(delay_s, fire)
        self._pending.add(timer)

    def schedule(self, action: ScheduleTimeout) -> None:
        """Start the machine's timeout; a propose timeout of an idle height is parked."""
        if action.kind is TimeoutKind.PROPOSE and self._idle():
            self._parked.append(action)
            return
        self._start(action)

    def wake(self) -> None:
        """Start the parked propose timeouts: the height has something to decide now."""
        parked, self._parked = self._parked, []
        for action in parked:
            self._start(action)

    def drop_parked(self) -> None:
        """Forget the parked timeouts (their height is over)."""
        self._parked.clear()

    def stop(self) -> None:
        self._stopped = True
        for timer in self._pending:
            timer.cancel()
        self._pending.clear()
        self._parked.clear()

    def _start(self, action: ScheduleTimeout) -> None:
        self.later(
            action.delay_ms / 1000, self._on_timeout, action.kind, action.height, action.round
        )
