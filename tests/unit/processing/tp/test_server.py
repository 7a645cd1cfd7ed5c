"""Registration, one transaction's round trip, verdicts, authorisation and balancing, over
real loopback sockets against a raw DEALER processor."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from trusted_ledger.errors import (
    InternalError,
    InvalidTransaction,
    ProcessorInternalError,
    ProcessorRejectedTransaction,
    ProcessorUnavailable,
    TemporarilyUnavailable,
    UndeclaredInput,
    UndeclaredOutput,
    UnknownFamily,
)
from trusted_ledger.processing import HandlerRegistry
from trusted_ledger.processing.families.intkey import IntkeyHandler
from trusted_ledger.processing.receipts import Event
from trusted_ledger.processing.tp import ExternalHandler, ProcessorServer
from trusted_ledger.state import namespace_prefix
from trusted_ledger.txn.protos import processor_pb2, validator_pb2

from .conftest import Spawn, counter_txn, fresh_context, wait_until
from .rawtp import (
    COUNTER,
    INTERNAL,
    OK,
    AuthorizationError,
    CallError,
    RawContext,
    counter_address,
    counter_apply,
    header_of,
)

M = validator_pb2.Message
REG_OK = processor_pb2.TpRegisterResponse.OK
REG_ERROR = processor_pb2.TpRegisterResponse.ERROR


def _handler(registry: HandlerRegistry) -> ExternalHandler:
    handler = registry.lookup(COUNTER, "1.0")
    assert isinstance(handler, ExternalHandler)
    return handler


# --- registration ------------------------------------------------------------------------


def test_register_join_and_unregister(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    first = spawn(max_occupancy=3)
    assert first.register_response is not None
    assert first.register_response.status == REG_OK
    assert first.register_response.protocol_version == 1
    handler = _handler(registry)
    assert handler.namespaces == (namespace_prefix(COUNTER),)
    second = spawn()
    assert _handler(registry) is handler  # joined, not replaced
    infos = sorted(server.processors(), key=lambda info: info.max_occupancy)
    assert [(i.family, i.version, i.max_occupancy) for i in infos] == [
        (COUNTER, "1.0", 1),
        (COUNTER, "1.0", 3),
    ]

    first.outgoing.append((M.TP_UNREGISTER_REQUEST, b""))
    wait_until(lambda: len(server.processors()) == 1)
    assert _handler(registry) is handler  # one processor left serves it
    second.outgoing.append((M.TP_UNREGISTER_REQUEST, b""))
    wait_until(lambda: not server.processors())
    with pytest.raises(UnknownFamily):
        registry.lookup(COUNTER, "1.0")


def test_sdk_without_features_gets_protocol_version_0_and_default_occupancy(
    server: ProcessorServer, spawn: Spawn
) -> None:
    # Sawtooth's Python SDK sends protocol_version 0 and no max_occupancy, and checks that
    # the answer echoes its version.
    processor = spawn(protocol_version=0, max_occupancy=0, header_style=0)
    assert processor.register_response is not None
    assert processor.register_response.status == REG_OK
    assert processor.register_response.protocol_version == 0
    (info,) = server.processors()
    assert (info.max_occupancy, info.header_style) == (10, "EXPANDED")


def test_built_in_family_cannot_be_taken(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    processor = spawn(family="intkey", namespaces=(namespace_prefix("intkey"),))
    assert processor.register_response is not None
    assert processor.register_response.status == REG_ERROR
    assert isinstance(registry.lookup("intkey", "1.0"), IntkeyHandler)
    assert not server.processors()


@pytest.mark.parametrize(
    "options",
    [
        {"namespaces": ("XYZ",)},  # not lowercase hex
        {"namespaces": ()},
        {"namespaces": ("",)},  # all of state
        {"family": ""},
        {"version": "v" * 17},
        {"header_style": 7},
    ],
)
def test_malformed_registration_refused(
    server: ProcessorServer, spawn: Spawn, options: dict[str, object]
) -> None:
    processor = spawn(**options)
    assert processor.register_response is not None
    assert processor.register_response.status == REG_ERROR
    assert not server.processors()


def test_joining_with_other_namespaces_refused(server: ProcessorServer, spawn: Spawn) -> None:
    spawn()
    other = spawn(namespaces=("abcdef",))
    assert other.register_response is not None
    assert other.register_response.status == REG_ERROR
    assert len(server.processors()) == 1


def test_stop_unregisters_every_external_family(registry: HandlerRegistry) -> None:
    from .conftest import start_server  # noqa: PLC0415 - a server this test stops itself

    server = start_server(registry)
    from .rawtp import RawProcessor  # noqa: PLC0415

    processor = RawProcessor(str(server.endpoint), counter_apply)
    processor.start()
    _handler(registry)
    server.stop()
    with pytest.raises(UnknownFamily):
        registry.lookup(COUNTER, "1.0")
    assert isinstance(registry.lookup("intkey", "1.0"), IntkeyHandler)
    processor.stop()


# --- one transaction -----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["EXPANDED", "RAW"])
def test_apply_ok_lands_in_context(registry: HandlerRegistry, spawn: Spawn, style: str) -> None:
    processor = spawn(
        header_style=processor_pb2.TpRegisterRequest.TpProcessRequestHeaderStyle.Value(style)
    )
    txn = counter_txn("apples", 5)
    context = fresh_context(txn)
    _handler(registry).apply(txn, context)

    address = counter_address("apples")
    assert dict(context.writes) == {address: b"5"}
    assert context.events == (Event("counter/changed", (("name", "apples"),), b"5"),)
    assert context.receipt_data == (b"apples=5",)
    (request,) = processor.requests
    assert header_of(request).SerializeToString() == txn.header.to_proto().SerializeToString()
    if style == "RAW":
        assert request.header_bytes == txn.header_bytes
    assert (request.payload, request.signature) == (txn.payload, txn.id)


def test_reads_see_state_and_the_attempts_own_writes(
    registry: HandlerRegistry, spawn: Spawn
) -> None:
    seen: list[dict[str, bytes]] = []

    def apply(request: processor_pb2.TpProcessRequest, ctx: RawContext) -> tuple[int, str]:
        address = counter_address("pears")
        seen.append(ctx.get([address]))
        ctx.set({address: b"7"})
        seen.append(ctx.get([address]))
        ctx.delete([address])
        seen.append(ctx.get([address]))
        ctx.set({address: b"8"})
        return OK, ""

    spawn(apply)
    txn = counter_txn("pears", 1)
    context = fresh_context(txn)
    _handler(registry).apply(txn, context)
    address = counter_address("pears")
    assert seen == [{}, {address: b"7"}, {}]
    assert dict(context.writes) == {address: b"8"}


def test_invalid_transaction_is_a_deterministic_rejection(
    registry: HandlerRegistry, spawn: Spawn
) -> None:
    spawn()
    txn = counter_txn("plums", -1)
    context = fresh_context(txn)
    with pytest.raises(ProcessorRejectedTransaction, match="counter plums would go negative") as e:
        _handler(registry).apply(txn, context)
    assert isinstance(e.value, InvalidTransaction)
    assert e.value.message == "counter plums would go negative"
    assert not context.writes


def test_internal_error_is_an_internal_error(registry: HandlerRegistry, spawn: Spawn) -> None:
    spawn()
    txn = counter_txn("boom", 1)
    with pytest.raises(ProcessorInternalError, match="processor exploded") as e:
        _handler(registry).apply(txn, fresh_context(txn))
    assert isinstance(e.value, InternalError)


def test_write_outside_declared_outputs_refused_and_nothing_applied(
    registry: HandlerRegistry, spawn: Spawn
) -> None:
    spawn()
    elsewhere = counter_address("elsewhere")
    # Reads its own address (declared input), writes it (not a declared output).
    txn = counter_txn("figs", 2, inputs=[counter_address("figs")], outputs=[elsewhere])
    context = fresh_context(txn)
    with pytest.raises(UndeclaredOutput):
        _handler(registry).apply(txn, context)
    assert not context.writes and not context.events and not context.receipt_data


def test_read_outside_declared_inputs_refused(registry: HandlerRegistry, spawn: Spawn) -> None:
    spawn()
    txn = counter_txn("kiwis", 2, inputs=[counter_address("other")])
    context = fresh_context(txn)
    with pytest.raises(UndeclaredInput):
        _handler(registry).apply(txn, context)
    assert not context.writes


def test_processor_ignoring_an_authorization_error_is_still_invalid(
    registry: HandlerRegistry, spawn: Spawn
) -> None:
    def stubborn(request: processor_pb2.TpProcessRequest, ctx: RawContext) -> tuple[int, str]:
        ctx.set({counter_address("limes"): b"1"})
        with contextlib.suppress(AuthorizationError):
            ctx.set({counter_address("not-declared"): b"1"})
        return OK, ""

    spawn(stubborn)
    txn = counter_txn("limes", 1)
    context = fresh_context(txn)
    with pytest.raises(UndeclaredOutput):
        _handler(registry).apply(txn, context)
    assert not context.writes


def test_unknown_context_id_gets_authorization_error(
    registry: HandlerRegistry, spawn: Spawn
) -> None:
    outcomes: list[str] = []

    def probing(request: processor_pb2.TpProcessRequest, ctx: RawContext) -> tuple[int, str]:
        try:
            RawContext(ctx.processor, "no-such-context").get([counter_address("x")])
            outcomes.append("answered")
        except AuthorizationError:
            outcomes.append("authorization error")
        return counter_apply(request, ctx)

    spawn(probing)
    txn = counter_txn("x", 1)
    _handler(registry).apply(txn, fresh_context(txn))
    assert outcomes == ["authorization error"]


def test_event_over_bounds_refused_and_invalid_not_retried(
    registry: HandlerRegistry, spawn: Spawn
) -> None:
    answers: list[bool] = []

    def noisy(request: processor_pb2.TpProcessRequest, ctx: RawContext) -> tuple[int, str]:
        try:
            ctx.add_event("t" * 500, [], b"")
            answers.append(True)
        except CallError:
            answers.append(False)
            return INTERNAL, "Failed to add event"  # what Sawtooth's Python SDK answers
        return counter_apply(request, ctx)

    spawn(noisy)
    txn = counter_txn("n", 1)
    context = fresh_context(txn)
    with pytest.raises(InvalidTransaction, match="event type"):
        _handler(registry).apply(txn, context)
    assert answers == [False]
    assert not context.writes


def test_no_processor_left_is_temporarily_unavailable(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    processor = spawn()
    handler = _handler(registry)
    processor.outgoing.append((M.TP_UNREGISTER_REQUEST, b""))
    wait_until(lambda: not server.processors())
    txn = counter_txn("gone", 1)
    with pytest.raises(ProcessorUnavailable) as e:
        handler.apply(txn, fresh_context(txn))
    assert isinstance(e.value, TemporarilyUnavailable)


# --- balancing -----------------------------------------------------------------------------


def test_equal_processors_take_turns(registry: HandlerRegistry, spawn: Spawn) -> None:
    first, second = spawn(), spawn()
    handler = _handler(registry)
    for index in range(10):
        txn = counter_txn(f"n{index}", 1)
        handler.apply(txn, fresh_context(txn))
    assert (len(first.requests), len(second.requests)) == (5, 5)


def test_most_free_occupancy_wins_and_a_full_pool_waits(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    release = threading.Event()

    def held(request: processor_pb2.TpProcessRequest, ctx: RawContext) -> tuple[int, str]:
        release.wait(5)
        return counter_apply(request, ctx)

    small = spawn(held, max_occupancy=1)
    large = spawn(held, max_occupancy=3)
    handler = _handler(registry)
    txns = [counter_txn(f"b{index}", 1) for index in range(5)]
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(handler.apply, t, fresh_context(t)) for t in txns[:4]]

        def in_flight() -> dict[int, int]:
            return {info.max_occupancy: info.in_flight for info in server.processors()}

        wait_until(lambda: sum(in_flight().values()) == 4)
        assert in_flight() == {1: 1, 3: 3}
        fifth = pool.submit(handler.apply, txns[4], fresh_context(txns[4]))
        assert not fifth.done()  # every slot is taken: it waits for one
        release.set()
        for future in [*futures, fifth]:
            future.result(5)
    assert len(small.requests) + len(large.requests) == 5
