"""Which processor gets a transaction, and what happens to it until its answer.

The ``Dispatcher`` keeps the processors of each family version (one entry per connection and
family version, as in Sawtooth), their occupancy (requests in flight against the
``max_occupancy`` each declared), and every open attempt by correlation id and context id.
It knows nothing of sockets: the server hands it decoded requests and a ``send`` function,
so the rules below are the same whatever carries the bytes.

- Balancing: a transaction goes to the processor with the most free slots (ties: the one
  used least recently); when every one is full, the caller waits, up to the request timeout.
- An attempt's effects stay in its ``AttemptBuffer`` until its processor answers OK.
- A processor that is dropped (silent past the request timeout, missed pings, broke the
  protocol, went away) has its open attempts re-dispatched to the others with fresh buffers;
  none left: ``ProcessorUnavailable``, which the runner retries and the publisher waits out.

Locking: one lock guards every table here. ``process`` runs on scheduler threads (many at
once); everything else runs on the server thread, except ``drop`` which both call.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from trusted_ledger.errors import (
    FamilyNotServed,
    InvalidInput,
    ProcessorBusy,
    ProcessorInternalError,
    ProcessorRegistrationRefused,
    ProcessorRejectedTransaction,
    ProcessorUnavailable,
)
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    PROCESSOR_REDISPATCH_TOTAL,
    PROCESSOR_REGISTERED,
    PROCESSOR_REQUEST_SECONDS,
    PROCESSOR_REQUESTS_TOTAL,
)
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.handler import HandlerRegistry
from trusted_ledger.processing.tp.external import AttemptBuffer, ExternalHandler
from trusted_ledger.processing.tp.messages import encode_message
from trusted_ledger.state import validate_prefix
from trusted_ledger.txn import DEFAULT_LIMITS, Transaction
from trusted_ledger.txn.protos import processor_pb2, validator_pb2

PROTOCOL_VERSION = 1
"""The TP protocol version we speak: 1 adds the RAW header style (Sawtooth 1.1)."""
max_occupancy_default = 10
"""Occupancy of a processor that registers with max_occupancy 0 (Sawtooth's SDKs for Python
and Go leave it unset), as Sawtooth's validator assumes."""
max_occupancy_max = 64
"""A larger declared occupancy is lowered to this: it bounds the requests (and threads) one
processor can hold."""
processors_max = 256
"""Registrations (connection x family version) the node accepts; bounds every table here."""
processors_per_family_max = 32
namespaces_per_family_max = 16
redispatches_max = 8
"""Times one transaction is moved to another processor in one ``apply`` before giving up."""
reject_message_chars_max = 1024
"""An INVALID_TRANSACTION message is cut to this: it is stored as the batch's reason."""

_EXPANDED = processor_pb2.TpRegisterRequest.EXPANDED
_RAW = processor_pb2.TpRegisterRequest.RAW
_UNSET = processor_pb2.TpRegisterRequest.HEADER_STYLE_UNSET
_OK = processor_pb2.TpProcessResponse.OK
_INVALID = processor_pb2.TpProcessResponse.INVALID_TRANSACTION
_INTERNAL = processor_pb2.TpProcessResponse.INTERNAL_ERROR
RESPONSE_STATUSES = frozenset({_OK, _INVALID, _INTERNAL})

FamilyKey = tuple[str, str]
Send = Callable[[bytes, bytes], None]
"""Hands (identity, frame) to the server thread for sending; may raise ``ProcessorBusy``."""

_log = get_logger("processing.tp")


@dataclass(frozen=True, slots=True)
class ProcessorInfo:
    """One registered processor as /status and operators see it."""

    identity: str  # the ZMQ routing id, hex
    family: str
    version: str
    namespaces: tuple[str, ...]
    max_occupancy: int
    in_flight: int
    dispatched: int
    draining: bool
    header_style: str  # "EXPANDED" or "RAW"


@dataclass(eq=False)
class _Processor:
    identity: bytes
    family: str
    version: str
    namespaces: tuple[str, ...]
    max_occupancy: int
    raw_header: bool
    in_flight: int = 0
    dispatched: int = 0
    last_used: int = 0
    draining: bool = False
    attempts: set[str] = field(default_factory=set)  # correlation ids in flight

    def free(self) -> int:
        return self.max_occupancy - self.in_flight


@dataclass(eq=False)
class _Connection:
    identity: bytes
    registrations: dict[FamilyKey, _Processor] = field(default_factory=dict)
    pings_unanswered: int = 0


@dataclass(eq=False)
class _Pool:
    handler: ExternalHandler
    processors: list[_Processor] = field(default_factory=list)


@dataclass(eq=False)
class _Attempt:
    correlation_id: str
    context_id: str
    processor: _Processor
    buffer: AttemptBuffer
    done: threading.Event = field(default_factory=threading.Event)
    response: processor_pb2.TpProcessResponse | None = None
    dropped: str | None = None  # why the processor was dropped before answering


class Dispatcher:
    """Processors per family version, occupancy, open attempts; thread-safe."""

    def __init__(self, registry: HandlerRegistry, send: Send, *, request_timeout_s: float) -> None:
        self._registry = registry
        self._send = send
        self._request_timeout_s = request_timeout_s
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._connections: dict[bytes, _Connection] = {}
        self._pools: dict[FamilyKey, _Pool] = {}
        self._by_correlation: dict[str, _Attempt] = {}
        self._by_context: dict[str, _Attempt] = {}
        self._uses = 0

    # --- registration (server thread) -------------------------------------------------

    def register(
        self, identity: bytes, request: processor_pb2.TpRegisterRequest
    ) -> processor_pb2.TpRegisterResponse:
        """Answer a TP_REGISTER_REQUEST: OK (joined or created the family's pool) or ERROR."""
        response = processor_pb2.TpRegisterResponse(
            protocol_version=min(request.protocol_version, PROTOCOL_VERSION)
        )
        try:
            self._register(identity, request)
        except InvalidInput as exc:
            _log.warning(
                "processor registration refused",
                identity=identity.hex(),
                family=request.family,
                version=request.version,
                reason=str(exc),
            )
            response.status = processor_pb2.TpRegisterResponse.ERROR
            return response
        response.status = processor_pb2.TpRegisterResponse.OK
        return response

    def _register(self, identity: bytes, request: processor_pb2.TpRegisterRequest) -> None:
        family, version = _checked_family(request.family, request.version)
        namespaces = _checked_namespaces(request.namespaces)
        if request.request_header_style not in (_UNSET, _EXPANDED, _RAW):
            raise ProcessorRegistrationRefused(
                f"unknown request_header_style {request.request_header_style}"
            )
        occupancy = request.max_occupancy or max_occupancy_default
        key = (family, version)
        with self._lock:
            connection = self._connections.get(identity)
            if connection is not None and key in connection.registrations:
                return  # a repeated registration (an SDK re-registering): already served
            pool = self._pools.get(key)
            if pool is None:
                self._check_not_built_in(key)
            elif set(pool.handler.namespaces) != set(namespaces):
                raise ProcessorRegistrationRefused(
                    f"{family} {version} is served with namespaces "
                    f"{list(pool.handler.namespaces)}, this processor declares {namespaces}"
                )
            elif len(pool.processors) >= processors_per_family_max:
                raise ProcessorRegistrationRefused(
                    f"{family} {version} has processors_per_family_max="
                    f"{processors_per_family_max} processors"
                )
            if sum(len(c.registrations) for c in self._connections.values()) >= processors_max:
                raise ProcessorRegistrationRefused(
                    f"the node serves at most processors_max={processors_max} registrations"
                )
            if pool is None:
                handler = ExternalHandler(self, family, version, namespaces)
                self._registry.register(handler)  # may refuse (families_max): InvalidInput
                pool = self._pools[key] = _Pool(handler)
            processor = _Processor(
                identity,
                family,
                version,
                tuple(namespaces),
                min(occupancy, max_occupancy_max),
                raw_header=request.request_header_style == _RAW,
            )
            pool.processors.append(processor)
            if connection is None:
                connection = self._connections[identity] = _Connection(identity)
            connection.registrations[key] = processor
            PROCESSOR_REGISTERED.labels(family).inc()
            self._slot_freed.notify_all()
        _log.info(
            "processor registered",
            identity=identity.hex(),
            family=family,
            version=version,
            max_occupancy=processor.max_occupancy,
        )

    def _check_not_built_in(self, key: FamilyKey) -> None:
        try:
            existing = self._registry.lookup(*key)
        except FamilyNotServed:
            return  # nobody serves it: free to take
        # Built-in handlers are part of the node's build and decide consensus-critical
        # outcomes: an outside process must not shadow or join them.
        raise ProcessorRegistrationRefused(
            f"{key[0]} {key[1]} is served by the built-in {type(existing).__name__}"
        )

    def unregister(self, identity: bytes) -> processor_pb2.TpUnregisterResponse:
        """TP_UNREGISTER_REQUEST: no new work for this connection; it leaves when drained."""
        with self._lock:
            connection = self._connections.get(identity)
            if connection is not None:
                for processor in list(connection.registrations.values()):
                    processor.draining = True
                    if processor.in_flight == 0:
                        self._remove(processor)
        _log.info("processor unregistering", identity=identity.hex())
        return processor_pb2.TpUnregisterResponse(status=processor_pb2.TpUnregisterResponse.OK)

    def drop(self, identity: bytes, reason: str) -> bool:
        """Forget the connection now; its open attempts go to other processors."""
        with self._lock:
            connection = self._connections.get(identity)
            if connection is None:
                return False
            for processor in list(connection.registrations.values()):
                for correlation_id in list(processor.attempts):
                    attempt = self._by_correlation[correlation_id]
                    attempt.dropped = reason
                    self._finish(attempt)  # may already remove a draining processor
                if self._is_current(processor):
                    self._remove(processor)
        _log.warning("processor dropped", identity=identity.hex(), reason=reason)
        return True

    def drop_all(self, reason: str) -> None:
        for identity in self.identities():
            self.drop(identity, reason)

    def _remove(self, processor: _Processor) -> None:
        """Take a registration out of every table (lock held); the pool's handler leaves
        the registry with its last processor, so lookups say the family is not served."""
        key = (processor.family, processor.version)
        connection = self._connections[processor.identity]
        del connection.registrations[key]
        if not connection.registrations:
            del self._connections[processor.identity]
        pool = self._pools[key]
        pool.processors.remove(processor)
        PROCESSOR_REGISTERED.labels(processor.family).dec()
        if not pool.processors:
            del self._pools[key]
            self._registry.unregister(*key)
            _log.info("family version no longer served", family=key[0], version=key[1])
        self._slot_freed.notify_all()

    # --- liveness (server thread) -----------------------------------------------------

    def identities(self) -> list[bytes]:
        with self._lock:
            return list(self._connections)

    def is_registered(self, identity: bytes) -> bool:
        with self._lock:
            return identity in self._connections

    def heard_from(self, identity: bytes) -> None:
        """Any message from a processor shows it is alive, not only a PING_RESPONSE: a
        processor busy in a long apply may answer pings late but does send state calls."""
        with self._lock:
            connection = self._connections.get(identity)
            if connection is not None:
                connection.pings_unanswered = 0

    def ping_round(self, misses_max: int) -> tuple[list[bytes], list[bytes]]:
        """(connections to ping now, connections that missed ``misses_max`` pings)."""
        to_ping, silent = [], []
        with self._lock:
            for connection in self._connections.values():
                if connection.pings_unanswered >= misses_max:
                    silent.append(connection.identity)
                else:
                    connection.pings_unanswered += 1
                    to_ping.append(connection.identity)
        return to_ping, silent

    def processors(self) -> list[ProcessorInfo]:
        with self._lock:
            return [
                ProcessorInfo(
                    identity=p.identity.hex(),
                    family=p.family,
                    version=p.version,
                    namespaces=p.namespaces,
                    max_occupancy=p.max_occupancy,
                    in_flight=p.in_flight,
                    dispatched=p.dispatched,
                    draining=p.draining,
                    header_style="RAW" if p.raw_header else "EXPANDED",
                )
                for pool in self._pools.values()
                for p in pool.processors
            ]

    # --- one transaction (scheduler threads) ----------------------------------------

    def process(self, key: FamilyKey, transaction: Transaction, context: HandlerContext) -> None:
        """Run ``transaction`` on a processor of ``key``; effects land in ``context`` on OK."""
        family = key[0]
        slot_deadline = time.monotonic() + self._request_timeout_s
        for redispatch in range(redispatches_max + 1):
            if redispatch:
                PROCESSOR_REDISPATCH_TOTAL.labels(family).inc()
            try:
                attempt = self._dispatch(key, transaction, context, slot_deadline)
            except ProcessorUnavailable:
                PROCESSOR_REQUESTS_TOTAL.labels(family, "unavailable").inc()
                raise
            except ProcessorBusy:
                PROCESSOR_REQUESTS_TOTAL.labels(family, "busy").inc()
                raise
            sent = time.monotonic()
            if not attempt.done.wait(self._request_timeout_s):
                self.drop(
                    attempt.processor.identity,
                    f"no TP_PROCESS_RESPONSE within request_timeout_s={self._request_timeout_s}",
                )
            with self._lock:
                self._finish(attempt)  # no-op if answered or dropped meanwhile
                response = attempt.response
            attempt.buffer.close()
            if response is None:
                _log.info(
                    "re-dispatching transaction",
                    family=family,
                    transaction=transaction.id[:16],
                    reason=attempt.dropped,
                )
                # A fresh slot wait: the dropped processor's time is not the next one's.
                slot_deadline = time.monotonic() + self._request_timeout_s
                continue
            PROCESSOR_REQUEST_SECONDS.labels(family).observe(time.monotonic() - sent)
            self._conclude(family, attempt, response, context)
            return
        PROCESSOR_REQUESTS_TOTAL.labels(family, "unavailable").inc()
        raise ProcessorUnavailable(
            f"transaction {transaction.id[:16]}... lost its processor {redispatches_max + 1} "
            f"times; {family} {key[1]} has no processor that answers",
            hint="check the processors' logs; the transaction is retried",
        )

    def _dispatch(
        self,
        key: FamilyKey,
        transaction: Transaction,
        context: HandlerContext,
        slot_deadline: float,
    ) -> _Attempt:
        with self._slot_freed:
            processor = self._wait_for_slot(key, slot_deadline)
            processor.in_flight += 1
            processor.dispatched += 1
            self._uses += 1
            processor.last_used = self._uses
            attempt = _Attempt(
                correlation_id=uuid.uuid4().hex,
                context_id=uuid.uuid4().hex,
                processor=processor,
                buffer=AttemptBuffer(transaction, context),
            )
            processor.attempts.add(attempt.correlation_id)
            self._by_correlation[attempt.correlation_id] = attempt
            self._by_context[attempt.context_id] = attempt
        try:
            self._send(processor.identity, _process_request(attempt, transaction))
        except BaseException:
            with self._lock:
                self._finish(attempt)
            raise
        return attempt

    def _wait_for_slot(self, key: FamilyKey, slot_deadline: float) -> _Processor:
        """The live processor of ``key`` with the most free slots (lock held)."""
        while True:
            pool = self._pools.get(key)
            live = [p for p in pool.processors if not p.draining] if pool is not None else []
            if not live:
                raise ProcessorUnavailable(
                    f"no processor is registered for {key[0]} {key[1]}",
                    hint="start a processor for this family version; the transaction waits",
                )
            free = [p for p in live if p.free() > 0]
            if free:
                return max(free, key=lambda p: (p.free(), -p.last_used))
            remaining = slot_deadline - time.monotonic()
            if remaining <= 0:
                raise ProcessorBusy(
                    f"every processor of {key[0]} {key[1]} stayed at its occupancy for "
                    f"request_timeout_s={self._request_timeout_s}"
                )
            self._slot_freed.wait(remaining)

    def _finish(self, attempt: _Attempt) -> None:
        """Close an attempt's books once (lock held): free its slot, forget its ids."""
        if self._by_correlation.pop(attempt.correlation_id, None) is None:
            return
        del self._by_context[attempt.context_id]
        processor = attempt.processor
        processor.attempts.discard(attempt.correlation_id)
        processor.in_flight -= 1
        assert processor.in_flight >= 0
        attempt.done.set()
        if processor.draining and processor.in_flight == 0 and self._is_current(processor):
            self._remove(processor)
        self._slot_freed.notify_all()

    def _is_current(self, processor: _Processor) -> bool:
        connection = self._connections.get(processor.identity)
        key = (processor.family, processor.version)
        return connection is not None and connection.registrations.get(key) is processor

    def _conclude(
        self,
        family: str,
        attempt: _Attempt,
        response: processor_pb2.TpProcessResponse,
        context: HandlerContext,
    ) -> None:
        violation = attempt.buffer.violation
        if violation is not None:
            # The processor touched what it may not (or broke a bound) and was told so;
            # whatever it answered next (Sawtooth's SDK answers INTERNAL_ERROR to a refused
            # event), the verdict is ours and deterministic, as for a built-in handler.
            PROCESSOR_REQUESTS_TOTAL.labels(family, "invalid").inc()
            raise violation
        if response.status == _INTERNAL:
            PROCESSOR_REQUESTS_TOTAL.labels(family, "internal_error").inc()
            raise ProcessorInternalError(
                f"processor {attempt.processor.identity.hex()} failed on the transaction: "
                f"{response.message[:reject_message_chars_max]}",
                hint="the runner retries; check the processor's log",
            )
        if response.status == _INVALID:
            PROCESSOR_REQUESTS_TOTAL.labels(family, "invalid").inc()
            raise ProcessorRejectedTransaction(
                response.message[:reject_message_chars_max] or "rejected by the processor"
            )
        attempt.buffer.apply_to(context)
        PROCESSOR_REQUESTS_TOTAL.labels(family, "ok").inc()

    # --- the processor's answers and state calls (server thread) ---------------------

    def complete(
        self, identity: bytes, correlation_id: str, response: processor_pb2.TpProcessResponse
    ) -> bool:
        """Deliver a TP_PROCESS_RESPONSE; False when nobody waits for it (late, dropped,
        or from another connection than the one asked), and it is ignored."""
        with self._lock:
            attempt = self._by_correlation.get(correlation_id)
            if attempt is None or attempt.processor.identity != identity:
                return False
            attempt.response = response
            self._finish(attempt)
        return True

    def buffer_for(self, identity: bytes, context_id: str) -> AttemptBuffer | None:
        """The open attempt's buffer, if ``context_id`` is one this connection was given."""
        with self._lock:
            attempt = self._by_context.get(context_id)
            if attempt is None or attempt.processor.identity != identity:
                return None
            return attempt.buffer


def _checked_family(family: str, version: str) -> tuple[str, str]:
    limits = DEFAULT_LIMITS
    if not 0 < len(family) <= limits.family_name_chars_max or not family.isprintable():
        raise ProcessorRegistrationRefused(
            f"family must be 1..{limits.family_name_chars_max} printable characters"
        )
    if not 0 < len(version) <= limits.family_version_chars_max or not version.isprintable():
        raise ProcessorRegistrationRefused(
            f"version must be 1..{limits.family_version_chars_max} printable characters"
        )
    return family, version


def _checked_namespaces(namespaces: Sequence[str]) -> list[str]:
    if not 0 < len(namespaces) <= namespaces_per_family_max:
        raise ProcessorRegistrationRefused(
            f"a processor declares 1..{namespaces_per_family_max} namespaces"
        )
    for prefix in namespaces:
        validate_prefix(prefix)
        if not prefix:
            # An empty prefix would let the family write every other family's state.
            raise ProcessorRegistrationRefused("an empty namespace covers all of state")
    return list(namespaces)


def _process_request(attempt: _Attempt, transaction: Transaction) -> bytes:
    request = processor_pb2.TpProcessRequest(
        payload=transaction.payload,
        signature=transaction.header_signature,
        context_id=attempt.context_id,
    )
    if attempt.processor.raw_header:
        request.header_bytes = transaction.header_bytes
    else:
        request.header.CopyFrom(transaction.header.to_proto())
    return encode_message(
        validator_pb2.Message.TP_PROCESS_REQUEST,
        attempt.correlation_id,
        request.SerializeToString(),
    )
