"""Fixtures for the client tests: a canned HTTP server and an isolated key directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.client.support import CannedServer, running_server


@pytest.fixture
def server() -> Iterator[CannedServer]:
    yield from running_server()


@pytest.fixture
def key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh key dir as $TL_KEY_DIR, so no test reads or writes the user's keys."""
    path = tmp_path / "keys"
    monkeypatch.setenv("TL_KEY_DIR", str(path))
    monkeypatch.delenv("TL_URL", raising=False)
    return path
