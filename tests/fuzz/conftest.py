"""Counts of inputs tried per fuzz target, printed after the run (and written as JSON to
``TL_FUZZ_REPORT`` if set), so a campaign reports what it covered."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.harness import OUTCOMES


@pytest.fixture(autouse=True)
def _stop_tracing() -> Iterator[None]:
    """The harness traces allocations while a target runs; tracing left on would slow every
    later test in the session several times over, so it ends with each fuzz test."""
    yield
    if tracemalloc.is_tracing():
        tracemalloc.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES:
        return
    terminalreporter.section("fuzz inputs tried")
    total = 0
    for target in sorted(OUTCOMES):
        counts = OUTCOMES[target]
        tried = sum(counts.values())
        total += tried
        top = ", ".join(f"{name} {n}" for name, n in counts.most_common(6))
        terminalreporter.write_line(f"{target:44} {tried:8}  ({top})")
    terminalreporter.write_line(f"{'total':44} {total:8}")
    report = os.environ.get("TL_FUZZ_REPORT")
    if report:
        Path(report).write_text(
            json.dumps({t: dict(c) for t, c in sorted(OUTCOMES.items())}, indent=1) + "\n"
        )
