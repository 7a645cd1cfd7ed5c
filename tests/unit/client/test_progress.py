"""The progress bar: redrawn in place on a terminal, plain throttled lines elsewhere."""

from __future__ import annotations

import io

from trusted_ledger.client.progress import ProgressBar


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_bar_redraws_in_place() -> None:
    stream, clock = FakeStream(tty=True), FakeClock()
    bar = ProgressBar(10, "committed", stream=stream, clock=clock)
    clock.now += 1
    bar.update(5)
    clock.now += 0.05
    bar.update(6)  # within the redraw interval: not drawn
    clock.now += 1
    bar.update(10)
    bar.finish()
    output = stream.getvalue()
    frames = output.split("\r")[1:]
    assert frames[0] == "committed [###############---------------] 5/10 50% 5.0/s"
    assert "6/10" not in output
    assert frames[-1].startswith("committed [" + "#" * 30 + "] 10/10 100%")
    assert output.endswith("\n") and output.count("\n") == 1


def test_plain_lines_when_not_a_terminal() -> None:
    stream, clock = FakeStream(tty=False), FakeClock()
    bar = ProgressBar(200, "submitted", stream=stream, clock=clock)
    for done in range(0, 201, 20):
        clock.now += 1  # one update a second: a line only every 5 s
        bar.update(done)
    bar.finish()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "submitted: 0/200 0% 0.0/s"
    assert lines[1].startswith("submitted: 100/200 50%")
    assert lines[-1].startswith("submitted: 200/200 100%")
    assert len(lines) == 4  # at 1 s, 6 s, 11 s, and the final line


def test_finish_is_idempotent_and_empty_work_is_complete() -> None:
    stream = FakeStream(tty=False)
    bar = ProgressBar(0, "nothing", stream=stream, clock=FakeClock())
    bar.finish()
    bar.finish()
    assert stream.getvalue() == "nothing: 0/0 100% 0.0/s\n"


def test_counts_are_clamped_to_the_total() -> None:
    stream = FakeStream(tty=False)
    bar = ProgressBar(3, "x", stream=stream, clock=FakeClock())
    bar.update(7)
    assert stream.getvalue().startswith("x: 3/3 100%")
