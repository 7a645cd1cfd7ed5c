"""The fault-injecting proxy against real TCP servers on loopback: bytes forwarded intact both
ways (and half-closes), many connections at once, every kind of cut, heal, delay, and the
``ProxyNet`` wiring of a consortium directory (members files and configurations)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import ConfigurationError, InvalidInput
from trusted_ledger.node.config import (
    ConsensusSection,
    CustodySection,
    NetworkSection,
    NodeConfig,
    load_config,
    render_config,
)
from trusted_ledger.node.members import Member, load_members, write_members
from trusted_ledger.testing.faultproxy import (
    PROXIED_MEMBERS_FILE_NAME,
    FaultMode,
    FaultProxy,
    ProxyLoop,
    ProxyNet,
)

pytestmark = pytest.mark.timeout(60)

SILENCE_S = 0.5
"""How long a test listens for bytes that must not come (absence cannot be polled for)."""


class TargetServer:
    """A real TCP server on loopback. ``echo``: every byte comes back, and at the client's
    end of stream it sends the SHA-256 of all it received, then closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self.received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        digest = hashlib.sha256()
        with conn:
            try:
                while data := conn.recv(65536):
                    with self._lock:
                        self.received += len(data)
                    digest.update(data)
                    conn.sendall(data)
                conn.sendall(digest.digest())
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def target() -> Iterator[TargetServer]:
    server = TargetServer()
    yield server
    server.close()


@pytest.fixture
def runner() -> Iterator[ProxyLoop]:
    with ProxyLoop() as loop:
        yield loop


def _connect(proxy: FaultProxy) -> socket.socket:
    host, port = proxy.address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = []
    while count:
        data = sock.recv(min(count, 65536))
        if not data:
            raise AssertionError(f"end of stream with {count} bytes still expected")
        chunks.append(data)
        count -= len(data)
    return b"".join(chunks)


def _exchange(sock: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` (from a thread, so a large one cannot deadlock against the echo),
    then close our sending side; everything received until the end of the stream."""
    sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
    sender.start()
    received = bytearray()
    while data := sock.recv(65536):
        received += data
    sender.join()
    return bytes(received)


def _assert_reset(sock: socket.socket) -> None:
    """The peer reset the connection: a read raises ECONNRESET (not an orderly end)."""
    sock.settimeout(10)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        return
    raise AssertionError(f"expected a reset, read {data!r}")


def _assert_new_connection_reset(proxy: FaultProxy) -> None:
    """A new connection is accepted and reset at once (on loopback the reset can arrive
    before ``connect`` returns, and then ``connect`` reports it)."""
    try:
        sock = _connect(proxy)
    except ConnectionResetError:
        return
    with sock:
        _assert_reset(sock)


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"never: {what}")


# --- forwarding ----------------------------------------------------------------------------


def test_bytes_are_forwarded_intact_both_ways_including_the_end_of_stream(
    runner: ProxyLoop, target: TargetServer
) -> None:
    proxy = runner.proxy(target.address)
    payload = os.urandom(3 * 1024 * 1024 + 17)  # many chunks, not a multiple of a chunk
    with _connect(proxy) as sock:
        received = _exchange(sock, payload)
    # The echo, then the server's digest of what reached it, sent after our half-close.
    assert received[: len(payload)] == payload
    assert received[len(payload) :] == hashlib.sha256(payload).digest()
    _wait_for(lambda: proxy.stats().connections_open == 0, "the closed connection is gone")
    stats = proxy.stats()
    assert stats.bytes_to_target == len(payload)
    assert stats.bytes_from_target == len(payload) + 32
    assert (stats.connections_accepted, stats.connections_forwarded) == (1, 1)
    assert stats.bytes_dropped == 0


def test_many_connections_at_once_each_get_their_own_bytes(
    runner: ProxyLoop, target: TargetServer
) -> None:
    proxy = runner.proxy(target.address)
    payloads = [os.urandom(50_000 + i) for i in range(40)]

    def one(payload: bytes) -> bytes:
        with _connect(proxy) as sock:
            return _exchange(sock, payload)

    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(one, payloads))
    for payload, received in zip(payloads, results, strict=True):
        assert received == payload + hashlib.sha256(payload).digest()
    assert target.accepted == 40
    assert proxy.stats().bytes_to_target == sum(map(len, payloads))


def test_a_target_that_refuses_looks_like_a_reset(runner: ProxyLoop) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now
    proxy = runner.proxy(address)
    _assert_new_connection_reset(proxy)
    assert proxy.stats().connections_forwarded == 0


# --- cut and heal ----------------------------------------------------------------------------


def test_reset_cut_resets_open_and_new_connections_and_heal_forwards_again(
    runner: ProxyLoop, target: TargetServer
) -> None:
    proxy = runner.proxy(target.address)
    with _connect(proxy) as before:
        before.sendall(b"ping")
        assert _recv_exactly(before, 4) == b"ping"
        proxy.cut(FaultMode.RESET)
        _assert_reset(before)
    _assert_new_connection_reset(proxy)  # the proxy accepts, then resets at once
    assert target.accepted == 1, "no connection reaches the target while cut"

    proxy.heal()
    with _connect(proxy) as after:
        assert _exchange(after, b"pong") == b"pong" + hashlib.sha256(b"pong").digest()
    assert target.accepted == 2


def test_blackhole_cut_keeps_connections_open_and_drops_every_byte(
    runner: ProxyLoop, target: TargetServer
) -> None:
    proxy = runner.proxy(target.address)
    with _connect(proxy) as before, _connect(proxy) as idle:
        before.sendall(b"ping")
        assert _recv_exactly(before, 4) == b"ping"
        reached = target.received
        proxy.cut(FaultMode.BLACKHOLE)
        before.sendall(b"lost in the hole")  # accepted by the socket, as if all were well
        _wait_for(lambda: proxy.stats().bytes_dropped == 16, "the proxy read and dropped them")
        before.settimeout(SILENCE_S)
        with pytest.raises(TimeoutError):
            before.recv(1)
        assert target.received == reached

        with _connect(proxy) as during:  # accepted, never joined to the target
            during.sendall(b"also lost")
            _wait_for(lambda: proxy.stats().bytes_dropped == 25, "dropped too")
            during.settimeout(SILENCE_S)
            with pytest.raises(TimeoutError):
                during.recv(1)
        assert target.accepted == 2  # ``before`` and ``idle`` only
        assert target.received == reached

        # Heal: a blackholed stream has lost bytes, so it is reset, not resumed.
        proxy.heal()
        _assert_reset(before)
        _assert_reset(idle)
    with _connect(proxy) as after:
        assert _exchange(after, b"back") == b"back" + hashlib.sha256(b"back").digest()


def test_stall_cut_holds_bytes_and_heal_delivers_them_intact(
    runner: ProxyLoop, target: TargetServer
) -> None:
    proxy = runner.proxy(target.address)
    with _connect(proxy) as before:
        before.sendall(b"ping")
        assert _recv_exactly(before, 4) == b"ping"
        reached = target.received
        proxy.cut(FaultMode.STALL)
        held = os.urandom(300_000)  # more than asyncio's read buffer: the kernel holds some
        sender = threading.Thread(target=before.sendall, args=(held,))
        sender.start()
        before.settimeout(SILENCE_S)
        with pytest.raises(TimeoutError):
            before.recv(1)
        assert target.received == reached

        during = _connect(proxy)  # accepted; joined to the target only after the heal
        during.sendall(b"queued")
        time.sleep(SILENCE_S)
        assert target.accepted == 1

        proxy.heal()
        before.settimeout(10)
        assert _recv_exactly(before, len(held)) == held  # late, whole, in order, no reset
        sender.join()
        with during:
            assert _exchange(during, b"") == b"queued" + hashlib.sha256(b"queued").digest()
    assert target.accepted == 2
    assert proxy.stats().bytes_dropped == 0


def test_cutting_again_switches_mode(runner: ProxyLoop, target: TargetServer) -> None:
    proxy = runner.proxy(target.address)
    with _connect(proxy) as sock:
        proxy.cut(FaultMode.BLACKHOLE)
        sock.sendall(b"x")
        _wait_for(lambda: proxy.stats().bytes_dropped == 1, "dropped")
        proxy.cut(FaultMode.RESET)
        _assert_reset(sock)
    assert proxy.mode is FaultMode.RESET


# --- delay ------------------------------------------------------------------------------------


def test_delay_holds_every_chunk_and_keeps_order(runner: ProxyLoop, target: TargetServer) -> None:
    delay_ms = 150
    proxy = runner.proxy(target.address, delay_ms=delay_ms)
    payload = os.urandom(512 * 1024)
    with _connect(proxy) as sock:
        started = time.monotonic()
        received = _exchange(sock, payload)
        elapsed_s = time.monotonic() - started
    assert received == payload + hashlib.sha256(payload).digest()
    # A lower bound the delay guarantees (each way), not a speed assertion; 10 ms slack for
    # the clock's resolution.
    assert elapsed_s >= 2 * delay_ms / 1000 - 0.01
    proxy.set_delay_ms(0)
    with _connect(proxy) as sock:
        assert _exchange(sock, b"now") == b"now" + hashlib.sha256(b"now").digest()


def test_bad_arguments_are_refused_with_a_hint(runner: ProxyLoop, target: TargetServer) -> None:
    with pytest.raises(InvalidInput, match="not HOST:PORT") as bad_target:
        runner.proxy("localhost")
    assert bad_target.value.hint is not None
    with pytest.raises(InvalidInput, match=r"delay_ms must be 0\.\.60000, got -1"):
        runner.proxy(target.address, delay_ms=-1)
    proxy = runner.proxy(target.address)
    with pytest.raises(InvalidInput, match="delay_ms"):
        proxy.set_delay_ms(10**9)


def test_a_port_to_avoid_is_never_the_listening_port(
    runner: ProxyLoop, target: TargetServer
) -> None:
    first = runner.proxy(target.address)
    taken = int(first.address.rsplit(":", 1)[1])
    first.close()
    for _ in range(5):
        assert runner.proxy(target.address, avoid_ports={taken}).address != first.address


# --- ProxyNet -------------------------------------------------------------------------------


def _consortium(directory: Path, servers: list[TargetServer]) -> list[Member]:
    """A consortium directory as ``net init`` lays it out (members file and each node.toml),
    without tokens: each member's peer address is a ``TargetServer``."""
    members = []
    for index, server in enumerate(servers):
        name = f"bank-{'abc'[index]}"
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        members.append(Member(name, PublicKey.from_spki(der), server.address))
        (directory / name).mkdir(parents=True)
        config = NodeConfig(
            path=directory / name / "node.toml",
            custody=CustodySection(pin_env="TL_TEST_PIN"),
            consensus=ConsensusSection(mode="bft", members_file="../members.toml"),
            network=NetworkSection(bind=server.address),
        )
        config.path.write_text(render_config(config))
    write_members(directory / "members.toml", members)
    return members


def test_proxynet_routes_each_directed_link_through_its_own_proxy(
    runner: ProxyLoop, tmp_path: Path
) -> None:
    servers = [TargetServer() for _ in range(3)]
    try:
        members = _consortium(tmp_path, servers)
        original = (tmp_path / "members.toml").read_bytes()
        net = ProxyNet(runner, tmp_path)
        assert len(net.links) == 6
        assert (tmp_path / "members.toml").read_bytes() == original  # net up/status use it
        server_of = {m.name: s for m, s in zip(members, servers, strict=True)}
        for me in members:
            config = load_config(tmp_path / me.name / "node.toml")
            assert config.consensus.members_file == PROXIED_MEMBERS_FILE_NAME
            assert config.network.bind == me.address  # still binds its real address
            own = load_members(tmp_path / me.name / PROXIED_MEMBERS_FILE_NAME)
            # Same names, keys and order: the same membership and proposer rotation.
            assert [(m.name, m.public_key) for m in own] == [
                (m.name, m.public_key) for m in members
            ]
            for listed in own:
                if listed.name == me.name:
                    assert listed.address == me.address
                    continue
                assert listed.address == net.link(me.name, listed.name).address
                # Dialling that address reaches the member's real bind.
                before = server_of[listed.name].accepted
                with socket.create_connection((listed.host, listed.port), timeout=10) as sock:
                    assert _exchange(sock, me.name.encode())[: len(me.name)] == me.name.encode()
                assert server_of[listed.name].accepted == before + 1

        net.isolate("bank-b", FaultMode.RESET)
        cut = {pair for pair, proxy in net.links.items() if proxy.mode is not None}
        assert cut == {pair for pair in net.links if "bank-b" in pair}
        net.heal()
        net.split(["bank-a"], FaultMode.BLACKHOLE)
        cut = {pair for pair, proxy in net.links.items() if proxy.mode is not None}
        assert cut == {pair for pair in net.links if ("bank-a" in pair)}
        with pytest.raises(InvalidInput, match="no member 'bank-z'"):
            net.isolate("bank-z")
    finally:
        for server in servers:
            server.close()


def test_proxynet_needs_a_consortium_directory(runner: ProxyLoop, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"members\.toml is missing"):
        ProxyNet(runner, tmp_path)
