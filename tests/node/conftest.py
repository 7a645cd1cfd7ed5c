"""Fixtures shared by the real-process tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.support import RunningNet, init_net, stop_net


@pytest.fixture
def running_net(tmp_path: Path) -> Iterator[RunningNet]:
    """A local 4-member consortium (``net init`` + ``net up``), stopped after the test."""
    directory = tmp_path / "net"
    init_net(directory)
    running = RunningNet(directory)
    try:
        running.start()
        yield running
    finally:
        stop_net(directory)
