"""``TransactionProcessor``: runs processing's ``TransactionHandler``s outside the node.

The processor connects to a node's processor endpoint (Sawtooth's validator <->
transaction-processor protocol), registers every (family, version) of its handlers, and then
applies the transactions the node sends it, each on a worker of a pool bounded by
``max_occupancy`` (the number of requests the node is told it may keep in flight here).

Outcomes map onto Sawtooth's statuses as processing's runner maps handler exceptions:
- ``apply`` returns: OK;
- ``InvalidInput`` (``InvalidTransaction``, an undeclared address, ...): INVALID_TRANSACTION
  with the error's message (without its hint, as the in-process runner records it), a
  deterministic rejection on every node;
- anything else: INTERNAL_ERROR, logged; the node retries, maybe on another processor.

If the node goes away the connection reconnects by itself and the processor registers again
on every new handshake (the node may be a fresh process that never heard of it). ``stop``
(or SIGINT / SIGTERM during ``run``) unregisters, lets transactions in flight finish within
``drain_timeout_s`` and closes the connection.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from types import FrameType
from typing import Any, cast

from google.protobuf.message import DecodeError

from trusted_ledger.errors import (
    InternalError,
    InvalidInput,
    ProcessorRegistrationRefused,
    TrustedLedgerError,
    ValidatorUnavailable,
)
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.handler import HandlerRegistry, TransactionHandler
from trusted_ledger.processor._connection import (
    InboundRequest,
    Response,
    ValidatorConnection,
    request_timeout_s_default,
)
from trusted_ledger.processor.context import RemoteContext
from trusted_ledger.txn import Transaction, TransactionHeader
from trusted_ledger.txn.protos import network_pb2, processor_pb2, transaction_pb2, validator_pb2

log = get_logger("processor")

_Message = validator_pb2.Message

PROTOCOL_VERSION = 1
"""Sawtooth's TP protocol version with the custom header style (FEATURE_CUSTOM_HEADER_STYLE);
the highest any Sawtooth SDK speaks."""
max_occupancy_default = 10
"""Transactions the node may keep in flight at one processor, as Sawtooth's SDKs default."""
max_occupancy_max = 1024
queued_per_worker_max = 1
"""Requests beyond ``max_occupancy`` held for a worker (a node may briefly over-dispatch while
re-balancing); more than that are answered INTERNAL_ERROR so the node sends them elsewhere."""
drain_timeout_s = 5.0
"""How long ``stop`` waits for transactions in flight before closing the connection."""
unregister_timeout_s = 1.0
register_retry_interval_s = 1.0


class TransactionProcessor:
    """Serves processing ``TransactionHandler``s to the node at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        max_occupancy: int = max_occupancy_default,
        request_timeout_s: float = request_timeout_s_default,
    ) -> None:
        if not 1 <= max_occupancy <= max_occupancy_max:
            raise InvalidInput(f"max_occupancy must be in 1..{max_occupancy_max}")
        self.url = url
        self.max_occupancy = max_occupancy
        self._registry = HandlerRegistry()
        self._handlers: list[TransactionHandler] = []
        self._connection = ValidatorConnection(
            url,
            on_request=self._on_request,
            on_connected=self._on_connected,
            request_timeout_s=request_timeout_s,
        )
        self._pool = ThreadPoolExecutor(max_occupancy, thread_name_prefix="tl-processor-worker")
        self._lock = threading.Lock()
        self._in_flight: set[Future[None]] = set()
        self._registered_generation = -1
        self._registered = threading.Condition(self._lock)
        self._started = False
        self._stopping = threading.Event()
        self._failure: TrustedLedgerError | None = None

    def add_handler(self, handler: TransactionHandler) -> None:
        """Serve ``handler`` (all its versions); call before ``start``/``run``."""
        if self._started:
            raise InvalidInput("add handlers before the processor starts")
        self._registry.register(handler)
        self._handlers.append(handler)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and serve until ``stop``, SIGINT or SIGTERM (Sawtooth SDK's name)."""
        self.run()

    def run(self) -> None:
        """Connect and serve until ``stop``, SIGINT or SIGTERM; blocks the calling thread.

        Raises ``ProcessorRegistrationRefused`` if the node refused a handler.
        """
        self._begin()
        previous = self._install_signal_handlers()
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            self._shutdown()
            for signum, handler in previous.items():
                if handler is not None:  # None: installed from C, cannot be put back
                    signal.signal(signum, handler)
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        """Ask ``run`` to return (safe from any thread and from signal handlers)."""
        self._stopping.set()

    def wait_registered(self, timeout_s: float) -> bool:
        """True once every handler version is registered on the current connection."""
        with self._registered:
            return self._registered.wait_for(
                lambda: (
                    self._registered_generation == self._connection.generation
                    and self._registered_generation > 0
                ),
                timeout_s,
            )

    def _begin(self) -> None:
        if self._started:
            raise InvalidInput("a TransactionProcessor runs once")
        if not self._handlers:
            raise InvalidInput("a processor needs at least one handler", hint="add_handler()")
        self._started = True
        log.info(
            "processor.starting",
            url=self.url,
            families=sorted(self._registry.families()),
            max_occupancy=self.max_occupancy,
        )
        self._connection.start()

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals reach only the main thread; the embedder calls stop()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("processor.signal", signal=signal.Signals(signum).name)
            self.stop()

        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
        return previous

    def _shutdown(self) -> None:
        self._stopping.set()
        if self._connection.connected:
            try:
                self._connection.request(
                    _Message.TP_UNREGISTER_REQUEST,
                    processor_pb2.TpUnregisterRequest().SerializeToString(),
                    unregister_timeout_s,
                )
            except ValidatorUnavailable as exc:
                log.info("processor.unregister_unanswered", reason=str(exc))
        with self._lock:
            in_flight = set(self._in_flight)
        _done, late = wait_futures(in_flight, timeout=drain_timeout_s)
        if late:
            log.warning("processor.drain_timeout", transactions=len(late))
        self._connection.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        log.info("processor.stopped", url=self.url)

    # --- registration ---------------------------------------------------------------------

    def _on_connected(self, generation: int) -> None:
        """Register on a new connection; on a thread of its own, since it waits for answers
        that only the I/O thread (which calls this) can receive."""
        threading.Thread(
            target=self._register, args=(generation,), name="tl-processor-register", daemon=True
        ).start()

    def _register(self, generation: int) -> None:
        while not self._stopping.is_set() and self._connection.generation == generation:
            try:
                self._register_once()
            except ValidatorUnavailable as exc:
                log.warning("processor.register_unanswered", reason=str(exc))
                self._stopping.wait(register_retry_interval_s)
                continue
            except ProcessorRegistrationRefused as exc:
                log.error("processor.register_refused", reason=str(exc))
                self._failure = exc
                self.stop()
                return
            with self._registered:
                self._registered_generation = generation
                self._registered.notify_all()
            log.info("processor.registered", url=self.url, generation=generation)
            return

    def _register_once(self) -> None:
        """One request per family version, in turn (a handful: no need to overlap them)."""
        for handler in self._handlers:
            for version in handler.family_versions:
                request = processor_pb2.TpRegisterRequest(
                    family=handler.family_name,
                    version=version,
                    namespaces=list(handler.namespaces),
                    max_occupancy=self.max_occupancy,
                    protocol_version=PROTOCOL_VERSION,
                    request_header_style=processor_pb2.TpRegisterRequest.EXPANDED,
                )
                answer = self._connection.request(
                    _Message.TP_REGISTER_REQUEST, request.SerializeToString()
                )
                _check_registered(answer, handler.family_name, version)

    # --- transactions ---------------------------------------------------------------------

    def _on_request(self, inbound: InboundRequest) -> None:
        """Runs on the I/O thread: answer at once or hand to a worker, never block."""
        if inbound.message_type == _Message.PING_REQUEST:
            self._connection.reply(
                inbound, _Message.PING_RESPONSE, network_pb2.PingResponse().SerializeToString()
            )
            return
        if inbound.message_type != _Message.TP_PROCESS_REQUEST:
            log.debug("processor.unexpected_message", message_type=inbound.message_type)
            return
        with self._lock:
            busy = len(self._in_flight) >= self.max_occupancy * (1 + queued_per_worker_max)
            if not busy and not self._stopping.is_set():
                future = self._pool.submit(self._process, inbound)
                self._in_flight.add(future)
                future.add_done_callback(self._forget)
                return
        reason = "the processor is stopping" if self._stopping.is_set() else "over max_occupancy"
        self._respond(inbound, processor_pb2.TpProcessResponse.INTERNAL_ERROR, reason)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def _process(self, inbound: InboundRequest) -> None:
        ok = processor_pb2.TpProcessResponse
        request = processor_pb2.TpProcessRequest()
        try:
            request.ParseFromString(inbound.content)
        except DecodeError as exc:
            # The node's bytes, not the handler's fault: answer, so the node can retry.
            log.warning("processor.malformed_request", reason=str(exc))
            self._respond(inbound, ok.INTERNAL_ERROR, f"malformed TP_PROCESS_REQUEST: {exc}")
            return
        try:
            transaction = _transaction(request)
            header = transaction.header
            handler = self._registry.lookup(header.family_name, header.family_version)
            context = RemoteContext(self._connection, request.context_id, header)
            # ``apply`` is typed with the node's HandlerContext; a handler may use only its
            # five methods, which RemoteContext offers with the same signatures.
            handler.apply(transaction, cast(HandlerContext, context))
        except InvalidInput as exc:
            # The message only, as processing's runner records it: hints may carry a
            # library's wording, and a verdict must read the same on every node.
            log.info("processor.invalid_transaction", txn=request.signature[:16], reason=str(exc))
            self._respond(inbound, ok.INVALID_TRANSACTION, exc.message)
        except TrustedLedgerError as exc:
            log.warning("processor.internal_error", txn=request.signature[:16], reason=str(exc))
            self._respond(inbound, ok.INTERNAL_ERROR, str(exc))
        except Exception as exc:
            log.exception("processor.handler_failed", txn=request.signature[:16])
            self._respond(inbound, ok.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        else:
            self._respond(inbound, ok.OK, "")

    def _respond(
        self,
        inbound: InboundRequest,
        status: processor_pb2.TpProcessResponse.Status.ValueType,
        message: str,
    ) -> None:
        response = processor_pb2.TpProcessResponse(status=status, message=message)
        try:
            self._connection.reply(
                inbound, _Message.TP_PROCESS_RESPONSE, response.SerializeToString()
            )
        except ValidatorUnavailable as exc:
            log.warning("processor.response_lost", reason=str(exc))


def _check_registered(answer: Response, family: str, version: str) -> None:
    response = processor_pb2.TpRegisterResponse()
    try:
        response.ParseFromString(answer.content)
    except DecodeError as exc:
        # Escaping here would end the registration thread and leave the processor connected
        # but never registered; an answer that is not a TpRegisterResponse is a refusal.
        raise ProcessorRegistrationRefused(
            f"the node's answer to registering {family} {version} is not a TpRegisterResponse",
            hint="check that the url is a Trusted Ledger node's processor endpoint",
        ) from exc
    if response.status != processor_pb2.TpRegisterResponse.OK:
        raise ProcessorRegistrationRefused(
            f"the node refused to register {family} {version}",
            hint="the node's log says why (a built-in family, other namespaces, a limit)",
        )
    if response.protocol_version < PROTOCOL_VERSION:
        raise ProcessorRegistrationRefused(
            f"the node speaks TP protocol version {response.protocol_version}, "
            f"this processor needs {PROTOCOL_VERSION} (EXPANDED headers)",
            hint="upgrade the node",
        )


def _transaction(request: processor_pb2.TpProcessRequest) -> Transaction:
    """The ``txn.Transaction`` a handler expects, from a TP_PROCESS request.

    With EXPANDED headers the node sends the decoded header, not the signed bytes; they are
    re-encoded canonically, which gives the signed bytes for every client that encodes
    canonically (every Sawtooth SDK does). Handlers use the decoded fields anyway.
    """
    if request.HasField("header"):
        header = TransactionHeader.from_proto(request.header)
        header_bytes = request.header_bytes or header.encode()
    elif request.header_bytes:
        proto = transaction_pb2.TransactionHeader()
        try:
            proto.ParseFromString(request.header_bytes)
        except DecodeError as exc:
            raise InternalError(
                f"TP_PROCESS request's header_bytes are not a TransactionHeader: {exc}"
            ) from exc
        header = TransactionHeader.from_proto(proto)
        header_bytes = request.header_bytes
    else:
        raise InternalError("TP_PROCESS request without a transaction header")
    return Transaction(header, header_bytes, request.signature, request.payload)
