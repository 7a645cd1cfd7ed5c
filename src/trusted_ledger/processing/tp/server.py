"""The node's end of Sawtooth's TP protocol: one ZMQ ROUTER socket, one thread.

The only module on the node side that touches zmq. The socket lives on the server thread
and nowhere else (zmq sockets are not thread-safe): scheduler threads hand their
TP_PROCESS_REQUEST frames over through a bounded queue and wake the thread with one byte on a
socket pair that the thread polls next to the ROUTER socket. Everything a processor sends is
decoded and answered on this thread; a processor that sends something malformed is dropped,
and no error from one processor stops the thread serving the others. Protocol and bounds:
docs/processors.md.
"""

from __future__ import annotations

import contextlib
import errno
import queue
import socket
import threading
import time
from collections.abc import Callable

import zmq

from trusted_ledger.errors import (
    InvalidInput,
    ProcessorBusy,
    ProcessorProtocolError,
    ProcessorServerFailed,
)
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.processing.handler import HandlerRegistry
from trusted_ledger.processing.tp.dispatch import (
    RESPONSE_STATUSES,
    Dispatcher,
    ProcessorInfo,
)
from trusted_ledger.processing.tp.messages import (
    Envelope,
    decode_message,
    encode_message,
    message_bytes_max,
    parse_content,
)
from trusted_ledger.txn.protos import network_pb2, processor_pb2, state_context_pb2, validator_pb2

outbox_frames_max = 4096
"""TP_PROCESS_REQUESTs waiting for the server thread; at most the summed occupancy of the
processors is ever in flight, so a full outbox means the thread is stuck: fail fast."""
receive_burst_max = 256
"""Frames read per wake-up before sending queued requests: neither direction starves."""
stop_join_timeout_s = 5.0

M = validator_pb2.Message
_log = get_logger("processing.tp")


class ProcessorServer:
    """Serves external transaction processors; registers them in ``registry`` as they come."""

    def __init__(
        self,
        registry: HandlerRegistry,
        bind: str = "tcp://127.0.0.1:4004",
        *,
        request_timeout_s: float = 30.0,
        ping_interval_s: float = 5.0,
        ping_misses_max: int = 3,
        outbox_max: int = outbox_frames_max,
    ) -> None:
        if request_timeout_s <= 0 or ping_interval_s <= 0 or ping_misses_max < 1:
            raise InvalidInput(
                "request_timeout_s and ping_interval_s must be > 0, ping_misses_max >= 1"
            )
        self._bind = bind
        self._ping_interval_s = ping_interval_s
        self._ping_misses_max = ping_misses_max
        self._outbox: queue.Queue[tuple[bytes, bytes]] = queue.Queue(maxsize=outbox_max)
        self.dispatcher = Dispatcher(registry, self._enqueue, request_timeout_s=request_timeout_s)
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ping_sequence = 0
        self.endpoint: str | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> str:
        """Bind and start serving; returns the bound endpoint (port 0 resolved)."""
        if self._thread is not None:
            raise ProcessorServerFailed("the processor server was already started")
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        router = context.socket(zmq.ROUTER)
        # Unroutable peers (gone since their last message) raise instead of being dropped
        # silently, so we learn that a processor left; LINGER 0: stop never waits on peers.
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, message_bytes_max + 1024)
        try:
            router.bind(self._bind)
        except zmq.ZMQError as exc:
            router.close(linger=0)
            context.term()
            raise ProcessorServerFailed(
                f"cannot bind the processor endpoint {self._bind!r}: {exc}",
                hint="choose a free port in [processors] bind, or empty it to serve none",
            ) from exc
        endpoint = router.getsockopt(zmq.LAST_ENDPOINT)
        assert isinstance(endpoint, bytes)
        self.endpoint = endpoint.decode()
        self._context, self._socket = context, router
        self._thread = threading.Thread(target=self._run, name="tp-server", daemon=True)
        self._thread.start()
        _log.info("processor server listening", endpoint=self.endpoint)
        return self.endpoint

    def stop(self) -> None:
        """Drop every processor (their families leave the registry), close, join."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(stop_join_timeout_s)
            if self._thread.is_alive():
                _log.error("processor server thread did not stop in time")
        else:
            self.dispatcher.drop_all("server stopped")
        for end in (self._wake_reader, self._wake_writer):
            end.close()

    def processors(self) -> list[ProcessorInfo]:
        return self.dispatcher.processors()

    # --- other threads' way in ---------------------------------------------------------

    def _enqueue(self, identity: bytes, frame: bytes) -> None:
        if self._stopping.is_set():
            raise ProcessorBusy("the processor server is stopping")
        try:
            self._outbox.put_nowait((identity, frame))
        except queue.Full as exc:
            raise ProcessorBusy(
                f"the processor server's outbox holds outbox_frames_max={self._outbox.maxsize}"
            ) from exc
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")  # full buffer: a wake-up is pending anyway

    # --- the server thread -------------------------------------------------------------

    def _run(self) -> None:
        router, context = self._socket, self._context
        assert router is not None and context is not None
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self._wake_reader.fileno(), zmq.POLLIN)
        next_ping = time.monotonic() + self._ping_interval_s
        try:
            while not self._stopping.is_set():
                try:
                    next_ping = self._serve_once(router, poller, next_ping)
                except Exception:
                    # A bug here must not leave apply() callers hanging nor stop the others:
                    # log, and serve on (the poll bounds how fast this can repeat).
                    _log.exception("processor server iteration failed")
                    time.sleep(0.01)
        finally:
            self.dispatcher.drop_all("processor server stopped")
            router.close(linger=0)
            context.term()

    def _serve_once(self, router: zmq.Socket[bytes], poller: zmq.Poller, next_ping: float) -> float:
        """One wake-up: read a burst, send what other threads queued, ping when due;
        returns when the next ping round is due."""
        timeout_ms = max(0, int((next_ping - time.monotonic()) * 1000)) + 1
        ready = dict(poller.poll(timeout_ms))
        if self._wake_reader.fileno() in ready:
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_reader.recv(4096)
        if router in ready:
            self._receive_burst(router)
        self._flush_outbox(router)
        if time.monotonic() >= next_ping:
            self._ping_round(router)
            next_ping = time.monotonic() + self._ping_interval_s
        return next_ping

    def _receive_burst(self, router: zmq.Socket[bytes]) -> None:
        for _ in range(receive_burst_max):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = frames[0]
            try:
                if len(frames) != 2:
                    raise ProcessorProtocolError(
                        f"{len(frames)} frames; a DEALER peer sends [payload] only"
                    )
                self._handle(router, identity, decode_message(frames[1]))
            except Exception as exc:  # one bad peer must not stop the thread
                self._refuse(identity, exc)

    def _refuse(self, identity: bytes, exc: Exception) -> None:
        if self.dispatcher.drop(identity, f"protocol error: {exc}"):
            return  # drop logged it
        # An unregistered peer: nothing to drop; log at debug so a port scan cannot flood
        # the log, and answer nothing.
        _log.debug("ignored frame from unregistered peer", identity=identity.hex(), error=str(exc))

    def _handle(self, router: zmq.Socket[bytes], identity: bytes, envelope: Envelope) -> None:
        dispatcher = self.dispatcher
        dispatcher.heard_from(identity)
        kind = envelope.message_type
        if kind == M.TP_PROCESS_RESPONSE:
            response = parse_content(envelope, processor_pb2.TpProcessResponse)
            if response.status not in RESPONSE_STATUSES:
                raise ProcessorProtocolError(f"TP_PROCESS_RESPONSE with status {response.status}")
            if not dispatcher.complete(identity, envelope.correlation_id, response):
                _log.debug("late or unknown TP_PROCESS_RESPONSE ignored", identity=identity.hex())
            return
        if kind == M.PING_RESPONSE:
            return  # heard_from did the work
        reply_type, reply = self._answer(identity, envelope)
        self._send_now(router, identity, encode_message(reply_type, envelope.correlation_id, reply))

    def _answer(self, identity: bytes, envelope: Envelope) -> tuple[int, bytes]:
        """The reply (type, content) to a request a processor sent."""
        kind = envelope.message_type
        if kind == M.TP_REGISTER_REQUEST:
            request = parse_content(envelope, processor_pb2.TpRegisterRequest)
            answer = self.dispatcher.register(identity, request).SerializeToString()
            return M.TP_REGISTER_RESPONSE, answer
        if kind == M.TP_UNREGISTER_REQUEST:
            parse_content(envelope, processor_pb2.TpUnregisterRequest)
            return M.TP_UNREGISTER_RESPONSE, self.dispatcher.unregister(
                identity
            ).SerializeToString()
        if kind == M.PING_REQUEST:
            return M.PING_RESPONSE, network_pb2.PingResponse().SerializeToString()
        handler = _STATE_CALLS.get(kind)
        if handler is None:  # decode_message lets through only the types above
            raise ProcessorProtocolError(f"unexpected {envelope.type_name}")
        return kind + 1, handler(self.dispatcher, identity, envelope)

    def _flush_outbox(self, router: zmq.Socket[bytes]) -> None:
        while True:
            try:
                identity, frame = self._outbox.get_nowait()
            except queue.Empty:
                return
            self._send_now(router, identity, frame)

    def _send_now(self, router: zmq.Socket[bytes], identity: bytes, frame: bytes) -> None:
        try:
            router.send_multipart([identity, frame], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            # EHOSTUNREACH: the peer is gone (ROUTER_MANDATORY); EAGAIN: it stopped reading
            # and its queue is full. Either way it cannot be served: its work moves on.
            reason = "unreachable" if exc.errno == errno.EHOSTUNREACH else f"send failed: {exc}"
            self.dispatcher.drop(identity, reason)

    def _ping_round(self, router: zmq.Socket[bytes]) -> None:
        to_ping, silent = self.dispatcher.ping_round(self._ping_misses_max)
        for identity in silent:
            self.dispatcher.drop(identity, f"missed {self._ping_misses_max} pings")
        content = network_pb2.PingRequest().SerializeToString()
        for identity in to_ping:
            self._ping_sequence += 1
            frame = encode_message(M.PING_REQUEST, f"ping-{self._ping_sequence}", content)
            self._send_now(router, identity, frame)


# --- state calls: one function per request type, each answering with its response ---------

StateCall = Callable[[Dispatcher, bytes, Envelope], bytes]


def _state_get(dispatcher: Dispatcher, identity: bytes, envelope: Envelope) -> bytes:
    request = parse_content(envelope, state_context_pb2.TpStateGetRequest)
    response = state_context_pb2.TpStateGetResponse(
        status=state_context_pb2.TpStateGetResponse.AUTHORIZATION_ERROR
    )
    buffer = dispatcher.buffer_for(identity, request.context_id)
    if buffer is not None:
        with contextlib.suppress(InvalidInput):
            entries = buffer.get(list(request.addresses))
            response.entries.extend(
                state_context_pb2.TpStateEntry(address=address, data=data)
                for address, data in entries
            )
            response.status = state_context_pb2.TpStateGetResponse.OK
    return response.SerializeToString()


def _state_set(dispatcher: Dispatcher, identity: bytes, envelope: Envelope) -> bytes:
    request = parse_content(envelope, state_context_pb2.TpStateSetRequest)
    response = state_context_pb2.TpStateSetResponse(
        status=state_context_pb2.TpStateSetResponse.AUTHORIZATION_ERROR
    )
    buffer = dispatcher.buffer_for(identity, request.context_id)
    if buffer is not None:
        with contextlib.suppress(InvalidInput):
            entries = [(entry.address, entry.data) for entry in request.entries]
            response.addresses.extend(buffer.set(entries))
            response.status = state_context_pb2.TpStateSetResponse.OK
    return response.SerializeToString()


def _state_delete(dispatcher: Dispatcher, identity: bytes, envelope: Envelope) -> bytes:
    request = parse_content(envelope, state_context_pb2.TpStateDeleteRequest)
    response = state_context_pb2.TpStateDeleteResponse(
        status=state_context_pb2.TpStateDeleteResponse.AUTHORIZATION_ERROR
    )
    buffer = dispatcher.buffer_for(identity, request.context_id)
    if buffer is not None:
        with contextlib.suppress(InvalidInput):
            response.addresses.extend(buffer.delete(list(request.addresses)))
            response.status = state_context_pb2.TpStateDeleteResponse.OK
    return response.SerializeToString()


def _receipt_add_data(dispatcher: Dispatcher, identity: bytes, envelope: Envelope) -> bytes:
    request = parse_content(envelope, state_context_pb2.TpReceiptAddDataRequest)
    response = state_context_pb2.TpReceiptAddDataResponse(
        status=state_context_pb2.TpReceiptAddDataResponse.ERROR
    )
    buffer = dispatcher.buffer_for(identity, request.context_id)
    if buffer is not None:
        with contextlib.suppress(InvalidInput):
            buffer.add_receipt_data(request.data)
            response.status = state_context_pb2.TpReceiptAddDataResponse.OK
    return response.SerializeToString()


def _event_add(dispatcher: Dispatcher, identity: bytes, envelope: Envelope) -> bytes:
    request = parse_content(envelope, state_context_pb2.TpEventAddRequest)
    response = state_context_pb2.TpEventAddResponse(
        status=state_context_pb2.TpEventAddResponse.ERROR
    )
    buffer = dispatcher.buffer_for(identity, request.context_id)
    if buffer is not None:
        event = request.event
        attributes = [(attribute.key, attribute.value) for attribute in event.attributes]
        with contextlib.suppress(InvalidInput):
            buffer.add_event(event.event_type, attributes, event.data)
            response.status = state_context_pb2.TpEventAddResponse.OK
    return response.SerializeToString()


_STATE_CALLS: dict[int, StateCall] = {
    M.TP_STATE_GET_REQUEST: _state_get,
    M.TP_STATE_SET_REQUEST: _state_set,
    M.TP_STATE_DELETE_REQUEST: _state_delete,
    M.TP_RECEIPT_ADD_DATA_REQUEST: _receipt_add_data,
    M.TP_EVENT_ADD_REQUEST: _event_add,
}
