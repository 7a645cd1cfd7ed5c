"""The control socket's server and client in process (node/control.py); the real node's
use of it is tested in tests/node/test_backup_process.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from trusted_ledger.errors import ConfigurationError, InvalidInput, TemporarilyUnavailable
from trusted_ledger.node.backup import BackupResult
from trusted_ledger.node.control import BackupRequest, ControlServer, control_request


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket paths fit sun_path (pytest's tmp_path can be long)."""
    made = Path(tempfile.mkdtemp(prefix="tlc-", dir="/tmp"))
    yield made
    shutil.rmtree(made, ignore_errors=True)


def _no_backup(request: BackupRequest) -> BackupResult:
    raise AssertionError(f"no backup was asked for: {request}")


def test_requests_reach_the_backup_and_errors_come_back_named(short_dir: Path) -> None:
    where = short_dir / "control.sock"
    seen: list[BackupRequest] = []

    def backup(request: BackupRequest) -> BackupResult:
        seen.append(request)
        if request.keep == 99:
            raise OSError(28, "No space left on device")
        manifest = {
            "height": 7, "head": "ab" * 32, "trail": {"next_seq": 3}, "key": "cd" * 32,
            "files": [{"size": 10}, {"size": 5}],
        }  # fmt: skip
        return BackupResult(Path("/b/backup-x"), manifest)

    async def scenario() -> None:
        server = ControlServer(where, backup)
        await server.start()
        try:
            assert where.stat().st_mode & 0o777 == 0o600
            call = asyncio.to_thread
            summary = await call(control_request, where, "POST", "/backup", {"keep": 3})
            assert summary["height"] == 7 and summary["bytes"] == 15 and summary["pruned"] == []
            assert seen == [BackupRequest(None, 3)]
            await call(control_request, where, "POST", "/backup", {"into": "/srv/b"})
            assert seen[-1] == BackupRequest(Path("/srv/b"), None)
            with pytest.raises(TemporarilyUnavailable, match="No space left on device"):
                await call(control_request, where, "POST", "/backup", {"keep": 99})
            with pytest.raises(InvalidInput, match="absolute"):
                await call(control_request, where, "POST", "/backup", {"into": "rel"})
        finally:
            await server.stop()
        assert not where.exists()

    asyncio.run(scenario())
    with pytest.raises(TemporarilyUnavailable, match="the node is not running"):
        control_request(where, "POST", "/backup")


def test_a_stale_socket_is_taken_over_and_a_live_one_refused(short_dir: Path) -> None:
    where = short_dir / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(where))
    stale.close()  # the file stays, no one listens: a killed node's leftover

    async def scenario() -> None:
        server = ControlServer(where, _no_backup)
        await server.start()
        try:
            second = ControlServer(where, _no_backup)
            with pytest.raises(ConfigurationError, match="another process answers"):
                await second.start()
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_a_socket_path_that_cannot_be_made_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    server = ControlServer(blocker / "control.sock", _no_backup)
    with pytest.raises(ConfigurationError, match="cannot create the control socket"):
        asyncio.run(server.start())
    assert os.path.isfile(blocker)
