"""Peer connections over asyncio TCP streams: handshake, encrypted frames, bounded queues.

``connect`` dials a member, ``serve`` accepts members; both yield ``PeerConnection``s after
the handshake (``handshake``) admitted the other side. A connection has a bounded outbound
queue (``send`` never waits: when the queue is full the peer is dropped, so a stalled
member can never block consensus) and a bounded inbound queue (when the consumer falls
behind, reading stops and TCP pushes back on that one peer). Anything a peer sends that is
not exactly what the protocol allows closes its connection with a logged reason, counted in
``tl_network_disconnects_total``; the server goes on serving everyone else.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from trusted_ledger.chain.signing import ChainSigner
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import (
    ChannelBroken,
    InvalidInput,
    PeerDisconnected,
    PeerFault,
    PeerProtocolError,
    TemporarilyUnavailable,
)
from trusted_ledger.network.channel import SecureChannel
from trusted_ledger.network.handshake import (
    Admit,
    HandshakeReason,
    HandshakeResult,
    InitiatorHandshake,
    ResponderHandshake,
    check_chain_id,
    handshake_bytes_max,
)
from trusted_ledger.network.messages import (
    MessageLimits,
    MessageType,
    PeerMessage,
    decode_message,
    encode_message,
)
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    NETWORK_BYTES_TOTAL,
    NETWORK_DISCONNECTS_TOTAL,
    NETWORK_HANDSHAKE_FAILURES_TOTAL,
    NETWORK_HANDSHAKE_SECONDS,
    NETWORK_HANDSHAKES_TOTAL,
    NETWORK_MESSAGES_TOTAL,
    NETWORK_PEERS_CONNECTED,
)

_log = get_logger("network")
_U32 = struct.Struct(">I")

# Disconnect reasons beyond those the channel and envelope raise (closed set: metric label).
REASON_LOCAL_CLOSE = "local_close"
REASON_REMOTE_CLOSED = "remote_closed"
REASON_TRUNCATED = "truncated_frame"
REASON_CONNECTION_LOST = "connection_lost"
REASON_OUTBOUND_FULL = "outbound_queue_full"
REASON_WRITE_TIMEOUT = "write_timeout"
REASON_IDLE_TIMEOUT = "idle_timeout"
REASON_BACKLOG_FULL = "backlog_full"
REASON_SERVER_CLOSED = "server_closed"
# Handshake failure reasons beyond ``HandshakeReason``.
REASON_TIMEOUT = "timeout"
REASON_BUSY = "busy"
REASON_UNREACHABLE = "unreachable"
REASON_SIGNER_UNAVAILABLE = "signer_unavailable"
REASON_INTERNAL = "internal_error"


@dataclass(frozen=True)
class PeerSettings:
    """Who this node is on the network, whom it admits, and every bound of a connection."""

    chain_id: str
    signer: ChainSigner
    admit: Admit
    """Current membership: asked with each peer's verified key, on the event loop thread."""
    limits: MessageLimits = field(default_factory=MessageLimits)
    handshake_timeout_s: float = 5.0
    """From TCP connect to a completed handshake; a silent or slow peer is cut here."""
    outbound_messages_max: int = 1024
    outbound_bytes_max: int = 64 * 1024 * 1024
    inbound_messages_max: int = 1024
    inbound_bytes_max: int = 64 * 1024 * 1024
    drain_timeout_s: float = 30.0
    """A peer that does not take queued bytes for this long is dropped."""
    keepalive_interval_s: float = 2.0
    """A connection that has received nothing for this long sends a PING (any frame counts
    as a sign of life, so a busy link never pings)."""
    idle_timeout_s: float = 10.0
    """A connection that has received nothing, not even a PONG, for this long is dropped
    (``idle_timeout``): a silent partition (bytes dropped, no RST) is noticed here rather
    than after TCP's retransmission timeout of many minutes, and the dialler redials."""
    handshakes_max: int = 64
    """Concurrent handshakes on a server: each costs the responder one HSM signature."""
    accept_backlog_max: int = 64
    """Admitted connections waiting for ``PeerServer.accept``; more are closed."""

    def __post_init__(self) -> None:
        check_chain_id(self.chain_id)
        for name in (
            "outbound_messages_max", "outbound_bytes_max", "inbound_messages_max",
            "inbound_bytes_max", "handshakes_max", "accept_backlog_max",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1")
        if self.handshake_timeout_s <= 0 or self.drain_timeout_s <= 0:
            raise InvalidInput("timeouts must be positive")
        if not 0 < self.keepalive_interval_s < self.idle_timeout_s:
            raise InvalidInput(
                "keepalive_interval_s must be positive and below idle_timeout_s (a peer gets "
                "at least one PING before it is called idle)"
            )


class _BoundedQueue:
    """A FIFO of byte payloads bounded in count and bytes; an empty queue takes any one item
    (so a bound below one maximal message cannot wedge a connection). ``close`` lets readers
    drain what is queued, then see the end."""

    def __init__(self, items_max: int, bytes_max: int) -> None:
        self._items: deque[Any] = deque()
        self._sizes: deque[int] = deque()
        self._bytes = 0
        self._items_max = items_max
        self._bytes_max = bytes_max
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def __len__(self) -> int:
        return len(self._items)

    def _has_room(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self._items_max and self._bytes + size <= self._bytes_max

    def try_put(self, item: Any, size: int) -> bool:
        if self._closed or not self._has_room(size):
            return False
        self._append(item, size)
        return True

    async def put(self, item: Any, size: int) -> bool:
        """Wait for room (backpressure); False if the queue closed meanwhile."""
        while not self._closed and not self._has_room(size):
            self._writable.clear()
            await self._writable.wait()
        if self._closed:
            return False
        self._append(item, size)
        return True

    def _append(self, item: Any, size: int) -> None:
        self._items.append(item)
        self._sizes.append(size)
        self._bytes += size
        self._readable.set()

    async def get_all(self, *, limit: int | None = None) -> list[Any]:
        """Every queued item (at most ``limit``), waiting for one; [] once closed and empty."""
        while not self._items:
            if self._closed:
                return []
            self._readable.clear()
            await self._readable.wait()
        count = len(self._items) if limit is None else min(limit, len(self._items))
        taken = []
        for _ in range(count):
            taken.append(self._items.popleft())
            self._bytes -= self._sizes.popleft()
        self._writable.set()
        return taken

    def close(self, *, discard: bool = False) -> None:
        self._closed = True
        if discard:
            self._items.clear()
            self._sizes.clear()
            self._bytes = 0
        self._readable.set()
        self._writable.set()


class PeerConnection:
    """An admitted, encrypted connection to one member.

    ``send(type, payload)`` queues without waiting; ``async for message in connection``
    yields ``PeerMessage``s until the connection closes; ``close()`` flushes what is queued
    and closes. ``closed_reason`` says why it ended.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        result: HandshakeResult,
        settings: PeerSettings,
    ) -> None:
        self.peer: PublicKey = result.peer
        """The member's verified custody key."""
        self.session_id: bytes = result.transcript_hash
        self.initiator = result.initiator
        self.remote_address: str = _address(writer)
        self._role = "initiator" if result.initiator else "responder"
        self._reader = reader
        self._writer = writer
        self._settings = settings
        self._limits = settings.limits
        self._channel = SecureChannel(
            result.send_key, result.receive_key, frame_bytes_max=settings.limits.frame_bytes_max
        )
        self._outbox = _BoundedQueue(settings.outbound_messages_max, settings.outbound_bytes_max)
        self._inbox = _BoundedQueue(settings.inbound_messages_max, settings.inbound_bytes_max)
        self.closed_reason: str | None = None
        self._last_received = asyncio.get_running_loop().time()
        self._pings_sent = 0
        NETWORK_PEERS_CONNECTED.labels(role=self._role).inc()
        self._reader_task = asyncio.create_task(self._read_loop())
        self._writer_task = asyncio.create_task(self._write_loop())
        self._keepalive_task = asyncio.create_task(self._keepalive_loop())

    @property
    def fingerprint(self) -> str:
        return self.peer.fingerprint

    @property
    def closed(self) -> bool:
        return self.closed_reason is not None

    def send(self, message_type: MessageType, payload: bytes) -> None:
        """Queue one message. Never waits: if the outbound queue is full the peer is too slow
        and is dropped (``PeerDisconnected``), which is what keeps a stalled member from
        holding up the caller. ``InvalidInput`` if the payload exceeds its type's bound."""
        if self.closed_reason is not None:
            raise PeerDisconnected(
                f"peer {self.fingerprint[:16]} is disconnected ({self.closed_reason})",
                reason=self.closed_reason,
            )
        envelope = encode_message(message_type, payload, self._limits)
        self._enqueue(envelope)
        NETWORK_MESSAGES_TOTAL.labels(direction="out", type=MessageType(message_type).name).inc()

    def _enqueue(self, envelope: bytes) -> None:
        if not self._outbox.try_put(envelope, len(envelope)):
            self._abort(REASON_OUTBOUND_FULL, f"{len(self._outbox)} messages waiting")
            raise PeerDisconnected(
                f"peer {self.fingerprint[:16]} dropped: outbound queue full",
                reason=REASON_OUTBOUND_FULL,
            )

    def __aiter__(self) -> AsyncIterator[PeerMessage]:
        return self

    async def __anext__(self) -> PeerMessage:
        taken = await self._inbox.get_all(limit=1)
        if not taken:
            raise StopAsyncIteration
        message: PeerMessage = taken[0]
        return message

    async def receive(self) -> PeerMessage | None:
        """The next message, or None once the connection is closed and drained."""
        taken = await self._inbox.get_all(limit=1)
        return taken[0] if taken else None

    def close(self) -> None:
        """Stop sending and receiving; what is already queued is still written (bounded by
        ``drain_timeout_s``), then the socket closes."""
        if self._mark_closed(REASON_LOCAL_CLOSE, None):
            self._outbox.close()
            self._inbox.close()
            if self._reader_task is not asyncio.current_task():
                self._reader_task.cancel()
            self._keepalive_task.cancel()

    async def wait_closed(self) -> None:
        """Wait until both the read and the write side have finished."""
        await asyncio.gather(
            self._reader_task, self._writer_task, self._keepalive_task, return_exceptions=True
        )

    # --- internals -----------------------------------------------------------------------

    def _mark_closed(self, reason: str, detail: str | None) -> bool:
        if self.closed_reason is not None:
            return False
        self.closed_reason = reason
        NETWORK_PEERS_CONNECTED.labels(role=self._role).dec()
        NETWORK_DISCONNECTS_TOTAL.labels(reason=reason).inc()
        quiet = reason in (REASON_LOCAL_CLOSE, REASON_REMOTE_CLOSED, REASON_SERVER_CLOSED)
        (_log.info if quiet else _log.warning)(
            "peer_disconnected",
            peer=self.fingerprint[:16],
            address=self.remote_address,
            role=self._role,
            reason=reason,
            detail=detail,
        )
        return True

    def _abort(self, reason: str, detail: str | None = None) -> None:
        """Close now: nothing more is read or written (queued messages are dropped)."""
        self._mark_closed(reason, detail)
        self._outbox.close(discard=True)
        self._inbox.close()
        current = asyncio.current_task()
        for task in (self._reader_task, self._writer_task, self._keepalive_task):
            if task is not current:
                task.cancel()
        self._writer.transport.abort()

    async def _read_loop(self) -> None:
        reason, detail = REASON_REMOTE_CLOSED, None
        try:
            while True:
                header = await self._reader.readexactly(4)
                length = self._channel.check_header(header)
                body = await self._reader.readexactly(length)
                self._last_received = asyncio.get_running_loop().time()
                NETWORK_BYTES_TOTAL.labels(direction="in").inc(4 + length)
                message = decode_message(self._channel.open(header, body), self._limits)
                NETWORK_MESSAGES_TOTAL.labels(direction="in", type=message.type.name).inc()
                if message.type is MessageType.PING:
                    self._enqueue(encode_message(MessageType.PONG, message.payload, self._limits))
                    continue
                if not await self._inbox.put(message, len(message.payload)):
                    return
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                reason, detail = REASON_TRUNCATED, f"{len(exc.partial)} bytes of a frame"
        except (ChannelBroken, PeerProtocolError) as exc:
            reason, detail = exc.reason, exc.message
        except PeerDisconnected:
            return  # _enqueue already dropped the peer (outbound queue full)
        except OSError as exc:
            reason, detail = REASON_CONNECTION_LOST, repr(exc)
        self._abort(reason, detail)

    async def _keepalive_loop(self) -> None:
        """PING a quiet peer; drop one that has been silent for ``idle_timeout_s``."""
        interval, idle_max = self._settings.keepalive_interval_s, self._settings.idle_timeout_s
        loop = asyncio.get_running_loop()
        while self.closed_reason is None:
            await asyncio.sleep(min(interval, idle_max / 4))
            idle = loop.time() - self._last_received
            if idle >= idle_max:
                self._abort(REASON_IDLE_TIMEOUT, f"nothing received for {idle:.1f} s")
                return
            if idle >= interval:
                self._pings_sent += 1
                payload = self._pings_sent.to_bytes(8, "big")
                try:
                    self._enqueue(encode_message(MessageType.PING, payload, self._limits))
                except PeerDisconnected:
                    return
                NETWORK_MESSAGES_TOTAL.labels(direction="out", type="PING").inc()

    async def _write_loop(self) -> None:
        try:
            while True:
                # A bounded batch per drain keeps one write from holding the loop for long.
                envelopes = await self._outbox.get_all(limit=64)
                if not envelopes:
                    break
                sent = 0
                for envelope in envelopes:
                    frame = self._channel.seal(envelope)
                    self._writer.write(frame)
                    sent += len(frame)
                NETWORK_BYTES_TOTAL.labels(direction="out").inc(sent)
                async with asyncio.timeout(self._settings.drain_timeout_s):
                    await self._writer.drain()
        except TimeoutError:
            self._abort(REASON_WRITE_TIMEOUT, f"no progress for {self._settings.drain_timeout_s} s")
            return
        except ChannelBroken as exc:
            self._abort(exc.reason, exc.message)
            return
        except OSError as exc:
            self._abort(REASON_CONNECTION_LOST, repr(exc))
            return
        # Closed locally and flushed: a clean TCP close.
        self._writer.close()


def _address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


async def _read_handshake_message(reader: asyncio.StreamReader) -> bytes:
    (length,) = _U32.unpack(await reader.readexactly(4))
    if not 1 <= length <= handshake_bytes_max:
        raise PeerProtocolError(
            f"handshake message of {length} bytes (1..{handshake_bytes_max})",
            reason=HandshakeReason.OVERSIZED if length else HandshakeReason.MALFORMED,
        )
    return await reader.readexactly(length)


def _write_handshake_message(writer: asyncio.StreamWriter, message: bytes) -> None:
    assert len(message) <= handshake_bytes_max
    writer.write(_U32.pack(len(message)) + message)


async def _initiate(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    settings: PeerSettings,
    expected_peer: PublicKey | None,
) -> HandshakeResult:
    handshake = InitiatorHandshake(
        settings.chain_id, settings.signer, settings.admit, expected_peer=expected_peer
    )
    _write_handshake_message(writer, handshake.hello())
    await writer.drain()
    handshake.read_response(await _read_handshake_message(reader))
    # The HSM signature may wait on the token's gate: off the event loop.
    _write_handshake_message(writer, await asyncio.to_thread(handshake.finish))
    await writer.drain()
    return handshake.result


async def _respond(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: PeerSettings
) -> HandshakeResult:
    handshake = ResponderHandshake(settings.chain_id, settings.signer, settings.admit)
    handshake.read_hello(await _read_handshake_message(reader))
    _write_handshake_message(writer, await asyncio.to_thread(handshake.response))
    await writer.drain()
    return handshake.read_finish(await _read_handshake_message(reader))


def _handshake_failed(role: str, address: str, reason: str, detail: str) -> None:
    NETWORK_HANDSHAKE_FAILURES_TOTAL.labels(role=role, reason=reason).inc()
    _log.warning("handshake_failed", role=role, address=address, reason=reason, detail=detail)


def _failure(exc: BaseException) -> tuple[str, str]:
    """(reason, detail) of a handshake that raised ``exc``."""
    if isinstance(exc, PeerFault):
        return exc.reason, exc.message
    if isinstance(exc, TimeoutError):
        return REASON_TIMEOUT, "handshake did not complete in time"
    if isinstance(exc, asyncio.IncompleteReadError):
        return REASON_REMOTE_CLOSED, f"connection closed after {len(exc.partial)} bytes"
    if isinstance(exc, TemporarilyUnavailable):
        return REASON_SIGNER_UNAVAILABLE, str(exc)
    return REASON_CONNECTION_LOST, repr(exc)


# What a handshake may raise that is the peer's, the network's or the HSM's doing (the HSM
# busy or gone fails this handshake only; the next one may succeed).
_EXPECTED = (PeerFault, TimeoutError, asyncio.IncompleteReadError, OSError, TemporarilyUnavailable)


async def connect(
    host: str, port: int, settings: PeerSettings, *, expected_peer: PublicKey | None = None
) -> PeerConnection:
    """Dial ``host:port`` and run the handshake as initiator.

    ``expected_peer``: the member this address is configured for; any other key, even a
    member's, is refused. Raises ``HandshakeRefused`` / ``PeerProtocolError`` for a peer that
    fails the handshake, ``PeerDisconnected`` for timeouts and network errors. A responder
    that refuses *us* closes the returned connection right away (``remote_closed``).
    """
    started = time.perf_counter()
    address = f"{host}:{port}"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(settings.handshake_timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            result = await _initiate(reader, writer, settings, expected_peer)
    except _EXPECTED as exc:
        if writer is not None:
            writer.transport.abort()
        reason, detail = (
            (REASON_UNREACHABLE, repr(exc)) if writer is None and isinstance(exc, OSError)
            else _failure(exc)
        )  # fmt: skip
        _handshake_failed("initiator", address, reason, detail)
        if isinstance(exc, PeerFault):
            raise
        raise PeerDisconnected(f"handshake with {address} failed: {detail}", reason=reason) from exc
    except BaseException:
        if writer is not None:
            writer.transport.abort()
        raise
    return _established(reader, writer, result, settings, started)


def _established(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    result: HandshakeResult,
    settings: PeerSettings,
    started: float,
) -> PeerConnection:
    role = "initiator" if result.initiator else "responder"
    NETWORK_HANDSHAKES_TOTAL.labels(role=role).inc()
    NETWORK_HANDSHAKE_SECONDS.labels(role=role).observe(time.perf_counter() - started)
    connection = PeerConnection(reader, writer, result, settings)
    _log.info(
        "peer_connected",
        peer=connection.fingerprint[:16],
        address=connection.remote_address,
        role=role,
        session=result.transcript_hash.hex()[:16],
    )
    return connection


class PeerServer:
    """Accepts members on one address; ``async for connection in server`` (or ``accept()``)
    yields admitted connections until ``close()``."""

    def __init__(self, settings: PeerSettings) -> None:
        self._settings = settings
        self._server: asyncio.Server | None = None
        self._port = 0
        self._accepted: asyncio.Queue[PeerConnection | None] = asyncio.Queue()
        self._handshakes = 0
        self._closing = False

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def port(self) -> int:
        """The bound port (useful after ``serve(..., port=0)``)."""
        return self._port

    async def _start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._on_client, host, port)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = _address(writer)
        if self._closing or self._handshakes >= self._settings.handshakes_max:
            _handshake_failed("responder", address, REASON_BUSY, "too many handshakes at once")
            writer.transport.abort()
            return
        started = time.perf_counter()
        self._handshakes += 1
        try:
            async with asyncio.timeout(self._settings.handshake_timeout_s):
                result = await _respond(reader, writer, self._settings)
        except _EXPECTED as exc:
            # No reply on the wire: the reason is for our log, not for a possible attacker.
            writer.transport.abort()
            _handshake_failed("responder", address, *_failure(exc))
            return
        except Exception as exc:
            # A bug must cost this connection only, never the server's accept loop.
            writer.transport.abort()
            _handshake_failed("responder", address, REASON_INTERNAL, repr(exc))
            _log.exception("handshake_internal_error", address=address)
            return
        except BaseException:
            writer.transport.abort()
            raise
        finally:
            self._handshakes -= 1
        connection = _established(reader, writer, result, self._settings, started)
        if self.closing:  # close() may have run while the handshake was awaited
            connection._abort(REASON_SERVER_CLOSED)
        elif self._accepted.qsize() >= self._settings.accept_backlog_max:
            connection._abort(REASON_BACKLOG_FULL, "nobody accepts connections")
        else:
            self._accepted.put_nowait(connection)

    async def accept(self) -> PeerConnection:
        """The next admitted connection; ``PeerDisconnected`` once the server is closed."""
        connection = await self._accepted.get()
        if connection is None:
            self._accepted.put_nowait(None)  # every waiting accept() sees the end
            raise PeerDisconnected("peer server closed", reason=REASON_SERVER_CLOSED)
        return connection

    def __aiter__(self) -> AsyncIterator[PeerConnection]:
        return self

    async def __anext__(self) -> PeerConnection:
        try:
            return await self.accept()
        except PeerDisconnected:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        """Stop listening; connections not yet accepted are closed, accepted ones are the
        caller's to close."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        while not self._accepted.empty():
            pending = self._accepted.get_nowait()
            if pending is not None:
                pending._abort(REASON_SERVER_CLOSED)
        self._accepted.put_nowait(None)


async def serve(host: str, port: int, settings: PeerSettings) -> PeerServer:
    """Listen on ``host:port`` (0: any free port, see ``PeerServer.port``) for members."""
    server = PeerServer(settings)
    await server._start(host, port)
    return server
