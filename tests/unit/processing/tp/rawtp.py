"""A bare-bones processor for tests: a pyzmq DEALER speaking the TP protocol with our pb2
messages, plus the ``counter`` test family both as that processor's logic and in process.

Not the kit (``trusted_ledger.processor``): the server is tested against the wire protocol
itself, so that a bug shared by kit and server cannot hide.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing import HandlerContext, TransactionHandler
from trusted_ledger.state import hashed_address, namespace_prefix
from trusted_ledger.txn import Transaction
from trusted_ledger.txn.protos import (
    events_pb2,
    network_pb2,
    processor_pb2,
    state_context_pb2,
    transaction_pb2,
    validator_pb2,
)

M = validator_pb2.Message
COUNTER = "counter"
COUNTER_NS = namespace_prefix(COUNTER)
OK = processor_pb2.TpProcessResponse.OK
INVALID = processor_pb2.TpProcessResponse.INVALID_TRANSACTION
INTERNAL = processor_pb2.TpProcessResponse.INTERNAL_ERROR
RECV_TIMEOUT_MS = 5000


def counter_address(name: str) -> str:
    return hashed_address(COUNTER, name.encode())


def counter_payload(name: str, delta: int) -> bytes:
    return f"{name}:{delta}".encode()


class AuthorizationError(Exception):
    """The server answered a state call with AUTHORIZATION_ERROR (the SDK's exception)."""


class CallError(Exception):
    """The server answered a receipt/event call with ERROR."""


class RawContext:
    """Synchronous state calls for one TP_PROCESS_REQUEST, over the processor's socket."""

    def __init__(self, processor: RawProcessor, context_id: str) -> None:
        self.processor = processor
        self.context_id = context_id

    def get(self, addresses: list[str]) -> dict[str, bytes]:
        request = state_context_pb2.TpStateGetRequest(
            context_id=self.context_id, addresses=addresses
        )
        response = self.processor.call(
            M.TP_STATE_GET_REQUEST, request, state_context_pb2.TpStateGetResponse
        )
        if response.status != state_context_pb2.TpStateGetResponse.OK:
            raise AuthorizationError(f"get {addresses}")
        return {entry.address: entry.data for entry in response.entries}

    def set(self, entries: dict[str, bytes]) -> None:
        request = state_context_pb2.TpStateSetRequest(
            context_id=self.context_id,
            entries=[state_context_pb2.TpStateEntry(address=a, data=d) for a, d in entries.items()],
        )
        response = self.processor.call(
            M.TP_STATE_SET_REQUEST, request, state_context_pb2.TpStateSetResponse
        )
        if response.status != state_context_pb2.TpStateSetResponse.OK:
            raise AuthorizationError(f"set {list(entries)}")

    def delete(self, addresses: list[str]) -> None:
        request = state_context_pb2.TpStateDeleteRequest(
            context_id=self.context_id, addresses=addresses
        )
        response = self.processor.call(
            M.TP_STATE_DELETE_REQUEST, request, state_context_pb2.TpStateDeleteResponse
        )
        if response.status != state_context_pb2.TpStateDeleteResponse.OK:
            raise AuthorizationError(f"delete {addresses}")

    def add_event(self, event_type: str, attributes: list[tuple[str, str]], data: bytes) -> None:
        event = events_pb2.Event(
            event_type=event_type,
            attributes=[events_pb2.Event.Attribute(key=k, value=v) for k, v in attributes],
            data=data,
        )
        request = state_context_pb2.TpEventAddRequest(context_id=self.context_id, event=event)
        response = self.processor.call(
            M.TP_EVENT_ADD_REQUEST, request, state_context_pb2.TpEventAddResponse
        )
        if response.status != state_context_pb2.TpEventAddResponse.OK:
            raise CallError("event")

    def add_receipt_data(self, data: bytes) -> None:
        request = state_context_pb2.TpReceiptAddDataRequest(context_id=self.context_id, data=data)
        response = self.processor.call(
            M.TP_RECEIPT_ADD_DATA_REQUEST, request, state_context_pb2.TpReceiptAddDataResponse
        )
        if response.status != state_context_pb2.TpReceiptAddDataResponse.OK:
            raise CallError("receipt data")


ApplyFn = Callable[[processor_pb2.TpProcessRequest, RawContext], tuple[int, str]]


@dataclass
class RawProcessor:
    """One DEALER connection registered for one family version; serves on its own thread."""

    endpoint: str
    apply: ApplyFn
    family: str = COUNTER
    version: str = "1.0"
    namespaces: tuple[str, ...] = (COUNTER_NS,)
    max_occupancy: int = 1
    header_style: int = processor_pb2.TpRegisterRequest.EXPANDED
    protocol_version: int = 1
    answer_pings: bool = True
    requests: list[processor_pb2.TpProcessRequest] = field(default_factory=list)
    pings: int = 0
    register_response: processor_pb2.TpRegisterResponse | None = None

    def __post_init__(self) -> None:
        self._socket: zmq.Socket[bytes] | None = None
        self._backlog: deque[validator_pb2.Message] = deque()
        self._stop = threading.Event()
        self.dead = threading.Event()  # set: stop answering anything, close the socket
        self._registered = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.outgoing: deque[tuple[int, bytes]] = deque()  # raw frames the test wants sent

    # --- driving from the test -------------------------------------------------------

    def start(self) -> processor_pb2.TpRegisterResponse:
        self._thread.start()
        assert self._registered.wait(5), "no TP_REGISTER_RESPONSE"
        assert self.register_response is not None
        return self.register_response

    def kill(self) -> None:
        """Die without a word: no response, no unregister, socket closed."""
        self.dead.set()
        self._stop.set()
        self._thread.join(5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # --- the processor thread --------------------------------------------------------

    def _run(self) -> None:
        context = zmq.Context.instance()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self._socket = sock
        try:
            request = processor_pb2.TpRegisterRequest(
                family=self.family,
                version=self.version,
                namespaces=list(self.namespaces),
                max_occupancy=self.max_occupancy,
                protocol_version=self.protocol_version,
                request_header_style=self.header_style,  # type: ignore[arg-type]
            )
            self.register_response = self.call(
                M.TP_REGISTER_REQUEST, request, processor_pb2.TpRegisterResponse
            )
            self._registered.set()
            while not self._stop.is_set():
                while self.outgoing:
                    kind, content = self.outgoing.popleft()
                    self._send(kind, uuid.uuid4().hex, content)
                if self._backlog:
                    self._handle(self._backlog.popleft())
                elif sock.poll(20):
                    self._handle(self._receive())
        except zmq.ZMQError:
            pass
        finally:
            self._registered.set()
            sock.close(linger=0)

    def send_raw(self, frames: list[bytes]) -> None:
        """Queue raw frames (garbage tests); sent from the processor thread."""
        for frame in frames:
            self.outgoing.append((-1, frame))

    def _send(self, kind: int, correlation_id: str, content: bytes) -> None:
        assert self._socket is not None
        if kind == -1:
            self._socket.send(content)
            return
        message = validator_pb2.Message(
            message_type=kind,  # type: ignore[arg-type]
            correlation_id=correlation_id,
            content=content,
        )
        self._socket.send(message.SerializeToString())

    def _receive(self) -> validator_pb2.Message:
        assert self._socket is not None
        message = validator_pb2.Message()
        message.ParseFromString(self._socket.recv())
        return message

    def call(self, kind: int, request: object, response_class: type) -> object:  # type: ignore[type-arg]
        """Send a request; wait for its response, serving pings and queueing work meanwhile."""
        assert self._socket is not None
        correlation_id = uuid.uuid4().hex
        self._send(kind, correlation_id, request.SerializeToString())  # type: ignore[attr-defined]
        while True:
            if self._stop.is_set() and self.dead.is_set():
                raise zmq.ZMQError(msg="killed")
            if not self._socket.poll(RECV_TIMEOUT_MS):
                raise TimeoutError(f"no answer to message type {kind}")
            message = self._receive()
            if message.correlation_id == correlation_id:
                response = response_class()
                response.ParseFromString(message.content)
                return response
            if message.message_type == M.PING_REQUEST:
                self._answer_ping(message)
            else:
                self._backlog.append(message)

    def _answer_ping(self, message: validator_pb2.Message) -> None:
        self.pings += 1
        if self.answer_pings:
            self._send(
                M.PING_RESPONSE,
                message.correlation_id,
                network_pb2.PingResponse().SerializeToString(),
            )

    def _handle(self, message: validator_pb2.Message) -> None:
        if message.message_type == M.PING_REQUEST:
            self._answer_ping(message)
            return
        if message.message_type != M.TP_PROCESS_REQUEST:
            return
        request = processor_pb2.TpProcessRequest()
        request.ParseFromString(message.content)
        self.requests.append(request)
        status, text = self.apply(request, RawContext(self, request.context_id))
        if self.dead.is_set():
            return
        response = processor_pb2.TpProcessResponse(status=status, message=text)  # type: ignore[arg-type]
        self._send(M.TP_PROCESS_RESPONSE, message.correlation_id, response.SerializeToString())


# --- the counter family: a name's integer, moved by signed deltas ----------------------------


def _parse(payload: bytes) -> tuple[str, int]:
    name, _, delta = payload.decode().partition(":")
    return name, int(delta)


def counter_apply(request: processor_pb2.TpProcessRequest, ctx: RawContext) -> tuple[int, str]:
    """The counter family as an external processor."""
    name, delta = _parse(request.payload)
    if name == "boom":
        return INTERNAL, "processor exploded"
    address = counter_address(name)
    try:
        current = int(ctx.get([address]).get(address, b"0"))
        updated = current + delta
        if updated < 0:
            return INVALID, f"counter {name} would go negative"
        if updated == 0:
            ctx.delete([address])
        else:
            ctx.set({address: str(updated).encode()})
        ctx.add_event("counter/changed", [("name", name)], str(updated).encode())
        ctx.add_receipt_data(f"{name}={updated}".encode())
    except AuthorizationError as exc:
        return INVALID, f"unauthorized: {exc}"
    return OK, ""


class CounterHandler(TransactionHandler):
    """The same family built in: the differential test's reference."""

    @property
    def family_name(self) -> str:
        return COUNTER

    @property
    def family_versions(self) -> tuple[str, ...]:
        return ("1.0",)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        name, delta = _parse(transaction.payload)
        address = counter_address(name)
        current = int(context.get_state([address]).get(address, b"0"))
        updated = current + delta
        if updated < 0:
            raise InvalidTransaction(f"counter {name} would go negative")
        if updated == 0:
            context.delete_state([address])
        else:
            context.set_state({address: str(updated).encode()})
        context.add_event("counter/changed", [("name", name)], str(updated).encode())
        context.add_receipt_data(f"{name}={updated}".encode())


def header_of(request: processor_pb2.TpProcessRequest) -> transaction_pb2.TransactionHeader:
    """The request's header, whichever style it came in."""
    if request.header_bytes:
        header = transaction_pb2.TransactionHeader()
        header.ParseFromString(request.header_bytes)
        return header
    return request.header
