"""A progress bar for long client operations, on stderr so that stdout stays data.

On a terminal the bar redraws in place (``\\r``), at most every ``redraw_interval_s``. When
stderr is a file or a pipe (CI logs, ``2> log``) carriage returns would leave one unreadable
line, so a plain line is written every ``line_interval_s`` instead, plus a last one at the
end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

redraw_interval_s = 0.1
line_interval_s = 5.0
bar_width_chars = 30


class ProgressBar:
    """``update(done)`` as work completes; ``finish()`` once at the end."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(0, total)
        self.label = label
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._tty = _is_tty(self._stream)
        self._started = clock()
        self._last_output: float | None = None
        self._done = 0
        self._finished = False

    def update(self, done: int) -> None:
        self._done = max(0, min(done, self.total))
        now = self._clock()
        interval = redraw_interval_s if self._tty else line_interval_s
        if self._last_output is not None and now - self._last_output < interval:
            return
        self._last_output = now
        self._write(now)

    def finish(self) -> None:
        """Draw the final state and end the line; further calls do nothing."""
        if self._finished:
            return
        self._finished = True
        self._write(self._clock())
        if self._tty:
            self._stream.write("\n")
        self._stream.flush()

    def _write(self, now: float) -> None:
        text = self.render(now)
        if self._tty:
            self._stream.write("\r" + text)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def render(self, now: float) -> str:
        """``label [#####-----] 37/100 37% 12.3/s``; the bar itself only on a terminal."""
        fraction = self._done / self.total if self.total else 1.0
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        counts = f"{self._done}/{self.total} {fraction:.0%} {rate:.1f}/s"
        if not self._tty:
            return f"{self.label}: {counts}"
        filled = int(fraction * bar_width_chars)
        bar = "#" * filled + "-" * (bar_width_chars - filled)
        return f"{self.label} [{bar}] {counts}"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or stream-like objects without a terminal
        return False
