"""The node's control socket: operator actions that must run inside the node process.

A Unix socket (``[node] control_socket``, default ``data_dir/control.sock``), mode 600: only
the node's own user (and root) may connect, so file permissions are the access control and
nothing listens on the network. HTTP/1.1 with JSON bodies (docs/operations.md §8):

- ``POST /backup`` with ``{}``, or with ``"into": "/absolute/dir"`` and/or ``"keep": N``:
  write an on-line backup (node/backup.py) and answer its summary: ``{"path", "height",
  "head", "trail_records", "files", "bytes", "hashed_bytes", "hashes_reused_from", "key",
  "pruned"}``. With ``keep``, once the new
  backup is complete, the oldest complete backups of this chain in the same directory are
  removed until N remain (``pruned`` lists them). One backup at a time (409 while one
  runs). Errors answer ``{"error", "hint"}`` with 400 (bad request) or 500 (it failed).

``control_request`` is the client side, used by ``trusted-ledger node backup``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from trusted_ledger.errors import (
    ConfigurationError,
    InvalidInput,
    TemporarilyUnavailable,
    TrustedLedgerError,
)
from trusted_ledger.node.backup import BackupResult
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    NODE_BACKUP_LAST_SUCCESS_TIMESTAMP,
    NODE_BACKUPS_TOTAL,
)

log = get_logger("node.control")
request_body_bytes_max = 64 * 1024
control_timeout_s_default = 3600.0
"""How long ``node backup`` waits for the node: a checkpoint is quick, hashing a large
database for the manifest is not."""


class ControlServer:
    """Serves the control socket on the node's event loop; backups run on a thread."""

    def __init__(self, path: Path, backup: Callable[[BackupRequest], BackupResult]) -> None:
        self.path = path
        self._backup = backup
        self._busy = False
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        try:
            _take_over_stale(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise _unusable(self.path, exc) from exc
        app = web.Application(client_max_size=request_body_bytes_max)
        app.router.add_post("/backup", self._handle_backup)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            # Before listen(): until then nobody can connect, so no window at a wider mode.
            os.chmod(self.path, 0o600)
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException as exc:
            sock.close()
            await runner.cleanup()
            if isinstance(exc, OSError):
                raise _unusable(self.path, exc) from exc
            raise
        self._runner = runner
        log.info("control.listening", socket=str(self.path))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _handle_backup(self, request: web.Request) -> web.Response:
        try:
            wanted = _backup_request(await request.read())
        except InvalidInput as exc:
            return _error(400, exc)
        if self._busy:
            return _error(409, TemporarilyUnavailable("a backup is running already"))
        self._busy = True
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, self._backup, wanted)
        except (TrustedLedgerError, OSError) as exc:
            NODE_BACKUPS_TOTAL.labels(result="failed").inc()
            log.error("control.backup_failed", error=str(exc), kind=type(exc).__name__)
            return _error(500, exc)
        finally:
            self._busy = False
        NODE_BACKUPS_TOTAL.labels(result="ok").inc()
        NODE_BACKUP_LAST_SUCCESS_TIMESTAMP.set(time.time())
        summary = result.summary()
        log.info("control.backup_written", **summary)
        return web.json_response(summary)


backup_keep_max = 10_000


@dataclass(frozen=True)
class BackupRequest:
    """Where to write (None: the configured directory) and how many backups to keep there
    (None: all)."""

    into: Path | None = None
    keep: int | None = None


def _backup_request(body: bytes) -> BackupRequest:
    if not body.strip():
        return BackupRequest()
    try:
        request = json.loads(body)
    except ValueError as exc:
        raise InvalidInput(f"the request body is not JSON: {exc}") from exc
    if not isinstance(request, dict) or not set(request) <= {"into", "keep"}:
        raise InvalidInput(
            'the request body must be {} or have "into" (an absolute directory) and/or '
            '"keep" (how many backups to keep)'
        )
    into = request.get("into")
    if into is not None and (not isinstance(into, str) or not Path(into).is_absolute()):
        raise InvalidInput(f"into must be an absolute directory path, got {into!r}")
    keep = request.get("keep")
    if keep is not None and (type(keep) is not int or not 1 <= keep <= backup_keep_max):
        raise InvalidInput(
            f"keep must be a whole number of backups from 1 to {backup_keep_max}, got {keep!r}"
        )
    return BackupRequest(Path(into) if into is not None else None, keep)


def _error(status: int, exc: BaseException) -> web.Response:
    hint = exc.hint if isinstance(exc, TrustedLedgerError) else None
    message = exc.message if isinstance(exc, TrustedLedgerError) else str(exc)
    return web.json_response({"error": message, "hint": hint}, status=status)


def _unusable(path: Path, exc: OSError) -> ConfigurationError:
    return ConfigurationError(
        f"cannot create the control socket {path}: {exc.strerror or exc}",
        hint="node.control_socket (default data_dir/control.sock) must be a path in a "
        "directory the node may write",
    )


def _take_over_stale(path: Path) -> None:
    """Remove a socket file no one answers on (left by a killed node); refuse a live one."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise ConfigurationError(
        f"another process answers on the control socket {path}",
        hint="is this node running already? Stop it, or give node.control_socket another path",
    )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout_s: float) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._socket_path))
        self.sock = sock


def control_request(
    path: Path,
    method: str,
    route: str,
    body: dict[str, Any] | None = None,
    *,
    timeout_s: float = control_timeout_s_default,
) -> dict[str, Any]:
    """One request to a node's control socket; its JSON answer, or the node's error."""
    connection = _UnixConnection(path, timeout_s)
    try:
        try:
            data = json.dumps(body or {}).encode()
            connection.request(method, route, data, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
        except FileNotFoundError:
            raise TemporarilyUnavailable(
                f"no control socket at {path}: the node is not running",
                hint="start the node (node run), or check node.control_socket in node.toml",
            ) from None
        except (ConnectionRefusedError, PermissionError) as exc:
            raise TemporarilyUnavailable(
                f"cannot connect to the control socket {path}: {exc}",
                hint="is the node running? The socket is mode 600: run as the node's user",
            ) from None
    finally:
        connection.close()
    try:
        decoded = json.loads(answer)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        raise TemporarilyUnavailable(
            f"the node answered {response.status} with a body that is not a JSON object"
        )
    if response.status != 200:
        error = decoded.get("error") or f"status {response.status}"
        raise (InvalidInput if response.status == 400 else TemporarilyUnavailable)(
            f"the node refused: {error}", hint=decoded.get("hint")
        )
    return decoded
