"""Real node processes for the tests: ``node init`` and ``node run`` as a user runs them,
talked to over HTTP on loopback with the standard library only (the client library has its
own tests; these must not depend on it)."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.ports import listening_ports
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


def init_node(directory: Path, *extra: str, anchor_every_s: int | None = None) -> None:
    """``node init``; ``anchor_every_s`` overrides ``[custody] anchor_every_s`` (0: a node
    that makes no blocks of its own, for tests comparing heads across restarts)."""
    done = cli(
        "node", "init", "--dir", str(directory), "--api-bind", "127.0.0.1:0",
        "--processors-bind", "tcp://127.0.0.1:0", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if anchor_every_s is not None:
        config = directory / "node.toml"
        text = config.read_text()
        assert "\nanchor_every_s = 300\n" in text
        config.write_text(
            text.replace("\nanchor_every_s = 300\n", f"\nanchor_every_s = {anchor_every_s}\n")
        )


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
        # intkey refuses longer names: every batch would be INVALID and nothing would commit.
        assert len(name) <= 20, f"intkey name {name!r} is over 20 characters"
        address = intkey_address(name)
        transaction = self.builder.build(
            intkey_payload("set", name, self.serial), inputs=[address], outputs=[address]
        )
        return build_batch(self.key, [transaction]), name, self.serial


# --- a local consortium (``net init`` / ``net up``) as several test files drive it ----------

NET_NODES = 4
NET_CHAIN_ID = "tl-test-net"
NET_NAMES = ("bank-a", "bank-b", "bank-c", "bank-d")
CONVERGE_TIMEOUT_S = 30.0


def free_base_port(nodes: int = NET_NODES) -> int:
    """A base port P whose three ranges (peers P+i, API P+100+i, processors P+200+i) are
    free now; random, so parallel test runs rarely collide, and outside the ephemeral range
    (tests/ports.py), because members are stopped and started again on them."""
    usable = set(listening_ports())
    bases = [port for port in usable if port + 200 + nodes - 1 in usable]
    for _ in range(50):
        base = random.choice(bases)
        ports = [base + offset + i for offset in (0, 100, 200) for i in range(nodes)]
        sockets = []
        try:
            for port in ports:
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise AssertionError("no free port range found")


def run_net(*args: str) -> subprocess.CompletedProcess[str]:
    return cli("net", *args)


def init_net(directory: Path) -> None:
    done = run_net(
        "init", "--dir", str(directory), "--nodes", str(NET_NODES), "--chain-id", NET_CHAIN_ID,
        "--base-port", str(free_base_port()),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def stop_net(directory: Path) -> None:
    """``net down`` that never fails a test's teardown."""
    subprocess.run(
        [sys.executable, "-m", "trusted_ledger.cli", "net", "down", "--dir", str(directory)],
        capture_output=True,
        check=False,
        timeout=90,
    )


@dataclass
class RunningNet:
    """A local consortium started with ``net up``, looked at through each member's API."""

    directory: Path
    urls: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        """``net up`` every member, then learn their API URLs from ``net status``."""
        self.up()
        done = run_net("status", "--dir", str(self.directory), "--json")
        assert done.returncode == 0, done.stderr
        self.urls = {m["member"]: m["api_url"] for m in json.loads(done.stdout)["members"]}

    def up(self, *names: str) -> None:
        selected = [arg for name in names for arg in ("--member", name)]
        done = run_net("up", "--dir", str(self.directory), *selected)
        assert done.returncode == 0, done.stderr + done.stdout

    def down(self, *names: str) -> None:
        selected = [arg for name in names for arg in ("--member", name)]
        done = run_net("down", "--dir", str(self.directory), *selected)
        assert done.returncode == 0, done.stderr

    def kill9(self, name: str) -> None:
        pid = int((self.directory / name / "node.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def status(self, name: str) -> dict[str, Any] | None:
        """The member's ``/status`` data, or None if it does not answer."""
        try:
            status, body = request(f"{self.urls[name]}/status", timeout=3)
        except OSError:
            return None
        return dict(body["data"]) if status == 200 else None

    def height(self, name: str) -> int | None:
        data = self.status(name)
        return int(data["head"]["block_num"]) if data is not None else None

    def heights(self, names: tuple[str, ...] = NET_NAMES) -> dict[str, int | None]:
        return {name: self.height(name) for name in names}

    def block_id(self, name: str, height: int) -> str:
        status, body = request(f"{self.urls[name]}/blocks/num/{height}", timeout=5)
        assert status == 200, body
        return str(body["data"]["header_signature"])

    def wait_height(
        self, names: tuple[str, ...], height: int, timeout_s: float = CONVERGE_TIMEOUT_S
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            heights = self.heights(names)
            if all(h is not None and h >= height for h in heights.values()):
                return
            time.sleep(0.2)
        raise AssertionError(
            f"not all of {names} reached height {height}: {heights}\n{self.log_tails()}"
        )

    def level(
        self, names: tuple[str, ...] = NET_NAMES, timeout_s: float = CONVERGE_TIMEOUT_S
    ) -> dict[str, int | None]:
        """The heights of ``names`` once they are equal and stayed so for a second: what
        was decided has reached every one of them (a lagging member catches up)."""
        deadline = time.monotonic() + timeout_s
        while True:
            heights = self.heights(names)
            if None not in heights.values() and len(set(heights.values())) == 1:
                time.sleep(1)
                if self.heights(names) == heights:
                    return heights
            if time.monotonic() > deadline:
                raise AssertionError(f"{names} never level: {heights}\n{self.log_tails()}")
            time.sleep(0.2)

    def assert_same_chain(self, names: tuple[str, ...], up_to: int) -> None:
        """Every height 0..up_to holds one block id on every member named: no fork."""
        for height in range(up_to + 1):
            ids = {name: self.block_id(name, height) for name in names}
            assert len(set(ids.values())) == 1, f"fork at height {height}: {ids}"

    def common_height(self, names: tuple[str, ...] = NET_NAMES) -> int:
        """The lowest head among ``names`` (every one must answer)."""
        heights = self.heights(names)
        assert all(h is not None for h in heights.values()), heights
        return min(h for h in heights.values() if h is not None)

    def log_tails(self, lines: int = 15) -> str:
        tails = []
        for name in NET_NAMES:
            log = self.directory / name / "node.log"
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            tails.append(f"--- {name}\n" + "\n".join(text[-lines:]))
        return "\n".join(tails)


def submit(net: RunningNet, name: str, writer: IntkeyWriter, count: int) -> list[str]:
    """``count`` intkey batches posted to ``name`` in one list; their ids (accepted: 202)."""
    batches = [writer.batch()[0] for _ in range(count)]
    status, body = post_batches(net.urls[name], batches)
    assert status == 202, body
    return [batch.header_signature for batch in batches]


def assert_committed(
    net: RunningNet, name: str, batch_ids: list[str], timeout_s: float = CONVERGE_TIMEOUT_S
) -> None:
    """Every batch is COMMITTED as ``name`` sees it (waiting up to ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = statuses(net.urls[name], batch_ids, wait_s=2)
        states = {entry["status"] for entry in found.values()}
        if states == {"COMMITTED"} or time.monotonic() > deadline:
            break
    missing = sorted(bid[:16] for bid, e in found.items() if e["status"] != "COMMITTED")
    assert states == {"COMMITTED"}, f"{name}: {sorted(states)}, not committed: {missing[:10]}"


class BatchLoad:
    """A client thread sending one intkey batch at a time to a member's API until stopped,
    keeping the id of every batch the API accepted (202); refusals and unreachable members
    are ignored (the member may be the one that is down). The intkey names carry a random
    part: a second load on the same chain must not ``set`` names the first one set (and
    intkey names are at most 20 characters: ``load-a1f2e-123``)."""

    def __init__(self, net: RunningNet, name: str, pause_s: float = 0.02) -> None:
        self.net = net
        self.name = name
        self.pause_s = pause_s
        self.writer = IntkeyWriter(f"load-{name[-1]}{secrets.token_hex(2)}-")
        self.accepted_ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def accepted(self) -> int:
        return len(self.accepted_ids)

    def __enter__(self) -> BatchLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self.writer.batch()[0]
            try:
                status, _ = post_batches(self.net.urls[self.name], [batch])
            except OSError:
                status = 0
            if status == 202:
                self.accepted_ids.append(batch.header_signature)
            self._stop.wait(self.pause_s)
