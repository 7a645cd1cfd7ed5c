"""Real node processes for the tests: ``node init`` and ``node run`` as a user runs them,
talked to over HTTP on loopback with the standard library only (the client library has its
own tests; these must not depend on it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from trusted_ledger.processing.families.intkey import intkey_address, intkey_payload
from trusted_ledger.txn import Batch, BatchList, SigningKey, TransactionBuilder, build_batch

READY_TIMEOUT_S = 60


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trusted_ledger.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )


def init_node(directory: Path, *extra: str) -> None:
    done = cli(
        "node", "init", "--dir", str(directory), "--api-bind", "127.0.0.1:0",
        "--processors-bind", "tcp://127.0.0.1:0", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


class NodeProcess:
    """``trusted-ledger node run`` in a child process; its logs go to ``log_path``."""

    def __init__(self, directory: Path, log_path: Path) -> None:
        self.directory = directory
        self.log_path = log_path
        self.processors: str | None = None
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "trusted_ledger.cli",
                    "node",
                    "run",
                    "--dir",
                    str(directory),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"node exited before ready: {self.log_tail()}")
            if line.startswith("processors: "):
                self.processors = line.split()[1]
            if line.startswith("node ready: "):
                return line.split()[2]
        raise AssertionError(f"node not ready in {READY_TIMEOUT_S} s: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)


def request(
    url: str, *, body: bytes | None = None, content_type: str | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """(status, decoded JSON body) of one HTTP request; no exception for 4xx/5xx."""
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def post_batches(url: str, batches: list[Batch]) -> tuple[int, Any]:
    data = BatchList(tuple(batches)).encode()
    return request(f"{url}/batches", body=data, content_type="application/octet-stream")


def statuses(url: str, batch_ids: list[str], wait_s: int = 0) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(batch_ids), 100):
        chunk = batch_ids[start : start + 100]
        status, body = request(f"{url}/batch_statuses?id={','.join(chunk)}&wait={wait_s}")
        assert status == 200, body
        found.update({entry["id"]: entry for entry in body["data"]})
    return found


class IntkeyWriter:
    """Batches of one ``intkey set`` each, with unique names: after any crash, a committed
    batch's name must be in state with its value, and nothing else may be."""

    def __init__(self, prefix: str) -> None:
        self.key = SigningKey.generate()
        self.builder = TransactionBuilder(self.key, "intkey", "1.0")
        self.prefix = prefix
        self.serial = 0

    def batch(self) -> tuple[Batch, str, int]:
        self.serial += 1
        name = f"{self.prefix}{self.serial}"
        address = intkey_address(name)
        transaction = self.builder.build(
            intkey_payload("set", name, self.serial), inputs=[address], outputs=[address]
        )
        return build_batch(self.key, [transaction]), name, self.serial
