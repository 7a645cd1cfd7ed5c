"""The processor's one connection to its node: a ZMQ DEALER socket owned by one I/O thread.

ZMQ sockets are not thread-safe, and a processor has many threads (workers applying
transactions, the thread that registers, the caller of ``stop``). So exactly one thread,
started here, touches any zmq object; the others hand it outgoing messages through a
thread-safe queue and wake it by writing one byte to a socket pair it polls alongside the
DEALER. This module is the kit's only zmq user.

Requests the processor makes (register, state get/set, ...) carry a fresh correlation id and
resolve a ``Future`` when the answer with that id arrives. Anything else the node sends is an
inbound request (TP_PROCESS, PING) and goes to the ``on_request`` callback, run on the I/O
thread, which must not block.

ZMQ reconnects a DEALER by itself when the node goes away and comes back. A socket monitor
tells this thread when that happens: every successful handshake starts a new *generation*
(the node may have forgotten us, so the processor registers again), and on a disconnect
every request in flight fails with ``ValidatorUnavailable``. Replies to inbound requests of
an older generation are dropped: the node that sent them is gone or has re-dispatched them.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeAlias

import zmq
from zmq.utils.monitor import recv_monitor_message

from trusted_ledger.errors import InvalidInput, ValidatorUnavailable
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.txn.protos import validator_pb2

log = get_logger("processor.connection")

request_timeout_s_default = 10.0
"""How long a request to the node (register, state get, ...) waits for its answer; a node
that takes longer has most likely dropped the processor already."""
poll_interval_ms = 200
"""Longest the I/O thread sleeps without looking at its stop flag."""
outbox_messages_max = 10_000
"""Messages waiting for the I/O thread; a full outbox means the socket is stuck, and a
sender gets ``ValidatorUnavailable`` rather than growing memory without bound."""
reconnect_interval_ms = 100
reconnect_interval_max_ms = 2_000

_MONITOR_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED

MessageType: TypeAlias = validator_pb2.Message.MessageType.ValueType


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """A message the node started (not an answer to ours), and the connection it came on."""

    message_type: MessageType
    correlation_id: str
    content: bytes
    generation: int


@dataclass(frozen=True, slots=True)
class Response:
    message_type: MessageType
    content: bytes


class ValidatorConnection:
    """A DEALER connected to ``url``; ``start`` it, ``request`` and ``reply`` from any thread."""

    def __init__(
        self,
        url: str,
        *,
        on_request: Callable[[InboundRequest], None],
        on_connected: Callable[[int], None],
        request_timeout_s: float = request_timeout_s_default,
    ) -> None:
        if not url.startswith(("tcp://", "ipc://", "inproc://")):
            raise InvalidInput(
                f"validator url {url!r} is not a ZMQ endpoint", hint="use tcp://HOST:PORT"
            )
        self.url = url
        self.request_timeout_s = request_timeout_s
        self._on_request = on_request
        self._on_connected = on_connected
        # (generation, frame): a frame of an older generation is dropped, never sent.
        self._outbox: queue.Queue[tuple[int, bytes]] = queue.Queue(outbox_messages_max)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._pending: dict[str, Future[Response]] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tl-processor-io", daemon=True)

    # --- any thread -----------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Counts connection changes (handshakes and drops); 0 before the first handshake."""
        with self._lock:
            return self._generation

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the I/O thread and fail whatever is still waiting for an answer."""
        self._closing.set()
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        self._fail_pending("the processor is shutting down")
        self._wake_reader.close()
        self._wake_writer.close()

    def request(
        self, message_type: MessageType, content: bytes, timeout_s: float | None = None
    ) -> Response:
        """Send a request and wait for the node's answer (``ValidatorUnavailable`` if none)."""
        correlation_id, future = self._send(message_type, content)
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        try:
            return future.result(timeout)
        except TimeoutError:
            raise ValidatorUnavailable(
                f"no answer from the node at {self.url} within {timeout} s",
                hint="the node may be overloaded or have dropped this processor",
            ) from None
        finally:
            with self._lock:
                self._pending.pop(correlation_id, None)  # still there only on a timeout

    def send_request(self, message_type: MessageType, content: bytes) -> Future[Response]:
        """Send a request; the future resolves with the answer or raises ValidatorUnavailable."""
        return self._send(message_type, content)[1]

    def _send(self, message_type: MessageType, content: bytes) -> tuple[str, Future[Response]]:
        correlation_id = uuid.uuid4().hex
        future: Future[Response] = Future()
        with self._lock:
            if self._closing.is_set():
                raise ValidatorUnavailable("the processor is shutting down")
            self._pending[correlation_id] = future
        try:
            self._enqueue(message_type, correlation_id, content)
        except ValidatorUnavailable:
            with self._lock:
                self._pending.pop(correlation_id, None)
            raise
        return correlation_id, future

    def reply(self, inbound: InboundRequest, message_type: MessageType, content: bytes) -> bool:
        """Answer ``inbound``; False (and nothing sent) if its connection is gone."""
        if inbound.generation != self.generation:
            log.info(
                "processor.reply_dropped",
                reason="the connection this request came on is gone",
                message_type=validator_pb2.Message.MessageType.Name(message_type),
            )
            return False
        self._enqueue(message_type, inbound.correlation_id, content)
        return True

    def _enqueue(self, message_type: MessageType, correlation_id: str, content: bytes) -> None:
        message = validator_pb2.Message(
            message_type=message_type, correlation_id=correlation_id, content=content
        )
        try:
            self._outbox.put_nowait((self.generation, message.SerializeToString()))
        except queue.Full:
            raise ValidatorUnavailable(
                f"outbox_messages_max={outbox_messages_max} messages wait for the node"
            ) from None
        self._wake()

    def _wake(self) -> None:
        # A full buffer means the I/O thread is awake already; a closed one, that it is gone.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for future in pending:
            if not future.done():
                future.set_exception(ValidatorUnavailable(reason))

    # --- the I/O thread -------------------------------------------------------------------

    def _run(self) -> None:
        context = zmq.Context()
        dealer = context.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.setsockopt(zmq.RECONNECT_IVL, reconnect_interval_ms)
        dealer.setsockopt(zmq.RECONNECT_IVL_MAX, reconnect_interval_max_ms)
        # IMMEDIATE: queue frames only on a live connection, so that libzmq never carries a
        # request of a dropped connection over to the node that answers the reconnect (it
        # would name a context the new node never opened).
        dealer.setsockopt(zmq.IMMEDIATE, 1)
        monitor = dealer.get_monitor_socket(_MONITOR_EVENTS)
        dealer.connect(self.url)
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._wake_reader, zmq.POLLIN)
        unsent: collections.deque[tuple[int, bytes]] = collections.deque()
        try:
            while not self._closing.is_set():
                events = dict(poller.poll(poll_interval_ms))
                if monitor in events:
                    self._drain_monitor(monitor)
                if dealer in events:
                    self._drain_dealer(dealer)
                if self._wake_reader.fileno() in events or self._wake_reader in events:
                    self._drain_wake()
                self._flush(dealer, unsent)
                # Wake up as soon as the DEALER can take what it refused (no busy loop).
                poller.modify(dealer, zmq.POLLIN | (zmq.POLLOUT if unsent else 0))
        except Exception:
            log.exception("processor.io_thread_failed", url=self.url)
            raise
        finally:
            with self._lock:
                self._connected = False
            self._fail_pending("the connection to the node is closed")
            dealer.disable_monitor()
            monitor.close(linger=0)
            dealer.close(linger=0)
            context.term()

    def _drain_wake(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _flush(
        self, dealer: zmq.Socket[bytes], unsent: collections.deque[tuple[int, bytes]]
    ) -> None:
        """Send what waits, in order; keep it while the DEALER refuses (full, or no live
        connection); drop what belongs to an older connection."""
        while True:
            if not unsent:
                try:
                    unsent.append(self._outbox.get_nowait())
                except queue.Empty:
                    return
            generation, frame = unsent[0]
            if generation != self.generation:
                unsent.popleft()  # its requester was failed, or its request re-dispatched
                continue
            try:
                dealer.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                return
            unsent.popleft()

    def _drain_dealer(self, dealer: zmq.Socket[bytes]) -> None:
        while True:
            try:
                raw = dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            message = validator_pb2.Message()
            try:
                message.ParseFromString(raw)
            except Exception:  # protobuf's DecodeError: a broken peer, not our bug
                log.warning("processor.undecodable_message", bytes=len(raw))
                continue
            with self._lock:
                future = self._pending.pop(message.correlation_id, None)
                generation = self._generation
            if future is not None:
                if not future.done():
                    future.set_result(Response(message.message_type, message.content))
                continue
            self._on_request(
                InboundRequest(
                    message.message_type, message.correlation_id, message.content, generation
                )
            )

    def _drain_monitor(self, monitor: zmq.Socket[bytes]) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                with self._lock:
                    self._generation += 1
                    self._connected = True
                    generation = self._generation
                log.info("processor.connected", url=self.url, generation=generation)
                self._on_connected(generation)
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                with self._lock:
                    was_connected = self._connected
                    self._connected = False
                    # A new generation at once: replies to requests of the dropped connection
                    # must not reach whatever node answers the reconnect.
                    self._generation += 1
                if was_connected:
                    log.warning("processor.disconnected", url=self.url)
                self._fail_pending(f"the connection to the node at {self.url} dropped")
