"""A TCP fault-injecting proxy for loopback tests of real node processes (issue 6).

A member cut off from the consortium is what BFT promises to survive, and the harder cut is
the silent one: packets vanish, nothing is refused, every connection still looks open. Network
namespaces model that faithfully but need privileges CI may lack, so the tests route every
member-to-member link through a proxy of ours on loopback instead::

    X dials Y  ──▶  FaultProxy P_xy (127.0.0.1:p)  ──▶  Y's real [network] bind

``FaultProxy`` forwards bytes both ways until told otherwise:

- ``cut(FaultMode.RESET)``: every open connection is aborted with a TCP reset, and each new
  one is accepted and reset at once (what a dead host or a firewall REJECT looks like).
- ``cut(FaultMode.BLACKHOLE)``: connections stay open and every byte read from either side
  is dropped; a new connection is accepted and never reaches the target (a firewall DROP,
  or a cable pulled between two switches). Nothing tells either end.
- ``cut(FaultMode.STALL)``: nothing is read or forwarded, so bytes wait in the kernel's
  buffers and senders feel TCP backpressure; a new connection is accepted and joined to the
  target only after the heal. A partition shorter than TCP's retransmission timeout: on
  heal every stream resumes intact, late.
- ``heal()``: forwarding resumes. A connection that was blackholed has lost bytes in the
  middle of its stream (unlike real TCP, which would retransmit them), so it cannot be
  resumed: heal closes it with a reset, as TCP would after giving up, and the peers dial
  again. Stalled connections simply flow again.
- ``delay_ms``: every chunk is forwarded no earlier than that long after it was read, in
  order (latency, not loss).

``ProxyLoop`` runs the proxies' event loop on a thread of its own, so that synchronous tests
drive them with plain method calls. ``ProxyNet`` routes every directed link of a local
consortium (``trusted-ledger net init``) through its own proxy by giving each member its own
copy of the members file, so that any member can be isolated or any split made.

Not used by the node. docs/local-consortium.md ("Partitions") describes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from trusted_ledger.errors import ConfigurationError, InternalError, InvalidInput
from trusted_ledger.node.config import CONFIG_FILE_NAME, load_config, render_config
from trusted_ledger.node.members import load_members, write_members

_T = TypeVar("_T")

LOOPBACK = "127.0.0.1"
chunk_bytes_max = 64 * 1024
"""Bytes read from a socket at once: one chunk is the unit that is delayed or dropped."""
queued_chunks_max = 256
"""Chunks waiting per direction of a connection (at most 16 MiB with 64 KiB chunks); a full
queue stops reading from that side, so a slow or delayed link pushes back like TCP does."""
delay_ms_max = 60_000
connect_timeout_s = 5.0
"""Connecting to the target; a connection that cannot reach its target is reset."""
call_timeout_s = 30.0
"""A synchronous call waiting for the proxy loop thread."""
listen_attempts_max = 20


class FaultMode(enum.Enum):
    """How a cut link fails (module docstring)."""

    RESET = "reset"
    BLACKHOLE = "blackhole"
    STALL = "stall"


@dataclass(frozen=True)
class ProxyStats:
    """What one proxy did since it started."""

    connections_accepted: int
    connections_open: int
    connections_forwarded: int
    """Accepted connections that were joined to the target."""
    bytes_to_target: int
    bytes_from_target: int
    bytes_dropped: int
    """Read while blackholed, or queued when a cut came, and never written."""


def parse_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets) as (host, port); ``InvalidInput`` if not."""
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidInput(
            f"proxy target {address!r} is not HOST:PORT with a port 1..65535",
            hint="for example 127.0.0.1:7701",
        )
    return host, int(port_text)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN: the peer sees ECONNRESET."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One accepted connection and, unless it was cut from the start, its target connection.

    Each direction is a reader task (socket → queue) and a writer task (queue → socket), so
    that a delay holds chunks without slowing the reading of the next ones.
    """

    def __init__(
        self, proxy: FaultProxy, client: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    ) -> None:
        self.proxy = proxy
        self.client_reader, self.client_writer = client
        self.target_writer: asyncio.StreamWriter | None = None
        self.blackholed = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self._directions_done = 0

    def start(self, target: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        target_reader, self.target_writer = target
        self._spawn_direction(self.client_reader, self.target_writer, to_target=True)
        self._spawn_direction(target_reader, self.client_writer, to_target=False)

    def start_blackholed(self) -> None:
        """No target: read from the client and drop everything."""
        self.blackholed = True
        self._spawn(self._drain_forever(self.client_reader))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _spawn_direction(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_target: bool
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(queued_chunks_max)
        self._spawn(self._read(reader, queue))
        self._spawn(self._write(queue, writer, to_target=to_target))

    async def _drain_forever(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(chunk_bytes_max):
                self.proxy.bytes_dropped += len(data)
        self.close()  # the client gave up: nothing more to drop

    async def _read(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes] | None]
    ) -> None:
        try:
            while True:
                await self.proxy.flowing.wait()  # stalled: leave the bytes in the kernel
                data = await reader.read(chunk_bytes_max)
                if not data:
                    break
                if self.blackholed:
                    self.proxy.bytes_dropped += len(data)
                    continue
                await queue.put((time.monotonic() + self.proxy.delay_s, data))
        except OSError:
            self.abort()
            return
        await queue.put(None)  # end of stream: the writer half-closes after what is queued

    async def _write(
        self,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        writer: asyncio.StreamWriter,
        *,
        to_target: bool,
    ) -> None:
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                await self.proxy.flowing.wait()
                wait_s = due - time.monotonic()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                if self.blackholed:
                    self.proxy.bytes_dropped += len(data)
                    continue
                writer.write(data)
                await writer.drain()
                if to_target:
                    self.proxy.bytes_to_target += len(data)
                else:
                    self.proxy.bytes_from_target += len(data)
            if not self.blackholed and writer.can_write_eof():
                writer.write_eof()
        except OSError:
            self.abort()
            return
        self._directions_done += 1
        if self._directions_done == 2:
            self.close()

    def _writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client_writer, self.target_writer) if w is not None]

    def close(self) -> None:
        """Both directions ended cleanly: an orderly close."""
        if not self.closed:
            self.closed = True
            for writer in self._writers():
                writer.close()
            self.proxy.forget(self)

    def abort(self) -> None:
        """Reset both sides now; whatever is queued is dropped."""
        if not self.closed:
            self.closed = True
            for writer in self._writers():
                _reset(writer)
            for task in list(self.tasks):
                if task is not asyncio.current_task():
                    task.cancel()
            self.proxy.forget(self)


class FaultProxy:
    """Listens on ``address`` and forwards every connection to ``target`` (module docstring).

    Created by ``ProxyLoop.proxy``; its public methods are called from any thread but the
    loop's own, and each returns when the change is in effect.
    """

    def __init__(self, runner: ProxyLoop, target: tuple[str, int], delay_ms: int) -> None:
        self._runner = runner
        self.target = target
        self.delay_s = _checked_delay(delay_ms) / 1000
        self.mode: FaultMode | None = None
        self.flowing = asyncio.Event()
        """Clear while stalled: readers and writers wait on it before every chunk."""
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self.port = 0
        self.connections_accepted = 0
        self.connections_forwarded = 0
        self.bytes_to_target = 0
        self.bytes_from_target = 0
        self.bytes_dropped = 0

    @property
    def address(self) -> str:
        """``HOST:PORT`` to dial instead of the target."""
        return f"{LOOPBACK}:{self.port}"

    def cut(self, mode: FaultMode = FaultMode.BLACKHOLE) -> None:
        """Fail the link in ``mode`` until ``heal``; cutting again switches the mode."""
        self._runner.call(self._cut, mode)

    def heal(self) -> None:
        """Forward again; connections that were blackholed are reset (module docstring)."""
        self._runner.call(self._heal)

    def set_delay_ms(self, delay_ms: int) -> None:
        """Chunks read from now on are forwarded ``delay_ms`` later (0: at once)."""
        delay_s = _checked_delay(delay_ms) / 1000
        self._runner.call(setattr, self, "delay_s", delay_s)

    def stats(self) -> ProxyStats:
        return self._runner.call(self._stats)

    def close(self) -> None:
        """Stop listening and reset every connection."""
        self._runner.run(self._close())

    # --- on the loop thread ---------------------------------------------------------------

    async def _start(self, listen: tuple[str, int], avoid_ports: Collection[int]) -> None:
        for _ in range(listen_attempts_max):
            server = await asyncio.start_server(self._accept, listen[0], listen[1])
            port = int(server.sockets[0].getsockname()[1])
            if port not in avoid_ports:
                self._server, self.port = server, port
                return
            server.close()  # a port the system picked that someone is about to bind
            await server.wait_closed()
        raise InternalError(f"no free listening port outside {sorted(avoid_ports)[:8]}...")

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def forget(self, link: _Link) -> None:
        self._links.discard(link)

    def _cut(self, mode: FaultMode) -> None:
        self.mode = mode
        if mode is FaultMode.STALL:
            self.flowing.clear()
            return
        self.flowing.set()  # stalled chunks go on to be dropped, or die with the reset
        for link in list(self._links):
            if mode is FaultMode.RESET:
                link.abort()
            else:
                link.blackholed = True

    def _heal(self) -> None:
        self.mode = None
        self.flowing.set()
        for link in list(self._links):
            if link.blackholed:
                link.abort()

    def _mode_now(self) -> FaultMode | None:
        return self.mode

    def _stats(self) -> ProxyStats:
        return ProxyStats(
            connections_accepted=self.connections_accepted,
            connections_open=len(self._links),
            connections_forwarded=self.connections_forwarded,
            bytes_to_target=self.bytes_to_target,
            bytes_from_target=self.bytes_from_target,
            bytes_dropped=self.bytes_dropped,
        )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        if self.mode is FaultMode.RESET:
            _reset(writer)
            return
        link = _Link(self, (reader, writer))
        self._links.add(link)
        await self.flowing.wait()  # stalled: the client waits, as for a SYN in the void
        if link.closed:
            return  # reset while it waited
        if self._mode_now() is FaultMode.BLACKHOLE:
            link.start_blackholed()
            return
        try:
            async with asyncio.timeout(connect_timeout_s):
                target = await asyncio.open_connection(*self.target)
        except (OSError, TimeoutError):
            link.abort()  # the client sees what a refused connection looks like: a reset
            return
        mode = self._mode_now()  # the cut may have come while connecting
        if link.closed or mode in (FaultMode.RESET, FaultMode.BLACKHOLE):
            _reset(target[1])
            if mode is FaultMode.BLACKHOLE and not link.closed:
                link.start_blackholed()
            return
        self.connections_forwarded += 1
        link.start(target)


def _checked_delay(delay_ms: int) -> int:
    if not 0 <= delay_ms <= delay_ms_max:
        raise InvalidInput(
            f"delay_ms must be 0..{delay_ms_max}, got {delay_ms}",
            hint="a delay is latency in milliseconds; use cut() for a link that never delivers",
        )
    return delay_ms


class ProxyLoop:
    """An asyncio event loop on a daemon thread of its own, hosting ``FaultProxy`` objects.

    Use as a context manager; leaving it closes every proxy it made and stops the thread.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._proxies: list[FaultProxy] = []
        self._started = False

    def __enter__(self) -> ProxyLoop:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def close(self) -> None:
        """Close every proxy, then stop and join the loop thread (idempotent)."""
        if not self._started or self._loop.is_closed():
            return
        self.run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=call_timeout_s)
        self._loop.close()

    def proxy(
        self,
        target: str,
        *,
        listen: str = f"{LOOPBACK}:0",
        delay_ms: int = 0,
        avoid_ports: Collection[int] = (),
    ) -> FaultProxy:
        """A new proxy forwarding to ``target`` (``HOST:PORT``), listening on ``listen``
        (port 0: one the system picks, never one of ``avoid_ports`` - ports of processes
        not started yet; ``FaultProxy.address`` says which)."""
        if not self._started:
            raise InternalError("ProxyLoop.proxy before start", hint="use `with ProxyLoop()`")
        listen_host, _, listen_port = listen.rpartition(":")
        if not listen_port.isdigit():
            raise InvalidInput(f"listen address {listen!r} is not HOST:PORT")
        proxy = FaultProxy(self, parse_host_port(target), delay_ms)
        where = (listen_host.strip("[]"), int(listen_port))
        self.run(proxy._start(where, frozenset(avoid_ports)))
        self._proxies.append(proxy)
        return proxy

    async def _shutdown(self) -> None:
        for proxy in self._proxies:
            await proxy._close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the loop and wait for its result."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise InternalError("ProxyLoop.run called on the loop's own thread")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(call_timeout_s)

    def call(self, function: Callable[..., _T], *args: Any) -> _T:
        """Call ``function(*args)`` on the loop thread and return its result."""

        async def invoke() -> _T:
            return function(*args)

        return self.run(invoke())


# --- a local consortium with every link behind a proxy -----------------------------------

PROXIED_MEMBERS_FILE_NAME = "members.proxied.toml"
"""Each member's own copy of the members file, beside its ``node.toml``."""


def _port_of(bind: str) -> int | None:
    _, _, port = bind.rpartition(":")
    return int(port) if port.isdigit() else None


class ProxyNet:
    """Every directed link of the local consortium in ``directory`` behind its own proxy.

    A member's address in the members file is where the *others* dial it, so one shared file
    cannot send X's dial of Y and Z's dial of Y through different proxies. Instead each
    member X gets its own copy, ``X/members.proxied.toml``: the same names, keys and order
    (so the same membership and proposer rotation), X's own address unchanged, and every
    other member Y at the address of proxy P_xy, which forwards to Y's real ``[network]
    bind``; X's ``node.toml`` is pointed at that copy. Then isolating D is cutting every
    proxy on a link with D, and a split is cutting the links across it. Which member of a
    pair dials (docs/consortium.md) does not matter: both directions have a proxy.

    Set up before the members start (``net up``); the top-level ``members.toml`` is left as
    it was, so ``net up/down/status`` work unchanged.
    """

    def __init__(self, runner: ProxyLoop, directory: Path) -> None:
        members_path = directory / "members.toml"
        if not members_path.is_file():
            raise ConfigurationError(
                f"{directory} holds no local consortium (members.toml is missing)",
                hint="create one with `trusted-ledger net init --dir DIR` first",
            )
        self.directory = directory
        self.members = load_members(members_path)
        self.names = tuple(member.name for member in self.members)
        configs = {name: load_config(directory / name / CONFIG_FILE_NAME) for name in self.names}
        # Ports the members will bind when they start: a proxy must not take one first.
        reserved = {
            port
            for config in configs.values()
            for bind in (config.network.bind, config.api.bind, config.processors.bind)
            if (port := _port_of(bind)) is not None
        }
        self.links: dict[tuple[str, str], FaultProxy] = {}
        for dialler in self.members:
            for acceptor in self.members:
                if dialler.name != acceptor.name:
                    self.links[dialler.name, acceptor.name] = runner.proxy(
                        acceptor.address, avoid_ports=reserved
                    )
        for name, config in configs.items():
            own = [
                member if member.name == name else replace(
                    member, address=self.links[name, member.name].address
                )
                for member in self.members
            ]  # fmt: skip
            write_members(directory / name / PROXIED_MEMBERS_FILE_NAME, own)
            proxied = replace(
                config,
                consensus=replace(config.consensus, members_file=PROXIED_MEMBERS_FILE_NAME),
            )
            config.path.write_text(render_config(proxied), encoding="utf-8")

    def link(self, dialler: str, acceptor: str) -> FaultProxy:
        """The proxy ``dialler``'s node dials to reach ``acceptor``."""
        self._check(dialler, acceptor)
        return self.links[dialler, acceptor]

    def isolate(self, name: str, mode: FaultMode = FaultMode.BLACKHOLE) -> None:
        """Cut every link to and from ``name``: the others cannot reach it, nor it them."""
        self._check(name)
        for (dialler, acceptor), proxy in self.links.items():
            if name in (dialler, acceptor):
                proxy.cut(mode)

    def split(self, side: Iterable[str], mode: FaultMode = FaultMode.BLACKHOLE) -> None:
        """Cut every link between ``side`` and the other members; links within each side
        keep working."""
        inside = set(side)
        self._check(*inside)
        for (dialler, acceptor), proxy in self.links.items():
            if (dialler in inside) != (acceptor in inside):
                proxy.cut(mode)

    def heal(self) -> None:
        """Heal every link."""
        for proxy in self.links.values():
            proxy.heal()

    def stats(self) -> dict[tuple[str, str], ProxyStats]:
        return {pair: proxy.stats() for pair, proxy in self.links.items()}

    def _check(self, *names: str) -> None:
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise InvalidInput(
                f"no member {unknown[0]!r} in {self.directory}",
                hint=f"members: {', '.join(self.names)}",
            )
