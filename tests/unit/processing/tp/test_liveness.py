"""Processors that die, fall silent, answer late or send garbage: the transaction is moved,
never half-applied, never lost, and the server keeps serving the others."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import zmq

from trusted_ledger.errors import ProcessorUnavailable, UnknownFamily
from trusted_ledger.observability.metrics import PROCESSOR_REDISPATCH_TOTAL
from trusted_ledger.processing import HandlerRegistry
from trusted_ledger.processing.tp import ExternalHandler, ProcessorServer
from trusted_ledger.txn.protos import processor_pb2, validator_pb2

from .conftest import Spawn, counter_txn, fresh_context, start_server, wait_until
from .rawtp import COUNTER, OK, RawContext, RawProcessor, counter_address, counter_apply

M = validator_pb2.Message


def _handler(registry: HandlerRegistry) -> ExternalHandler:
    handler = registry.lookup(COUNTER, "1.0")
    assert isinstance(handler, ExternalHandler)
    return handler


def _redispatches() -> float:
    return PROCESSOR_REDISPATCH_TOTAL.labels(COUNTER)._value.get()


def _writes_then_waits(wrote: threading.Event, until: threading.Event) -> object:
    """An apply that writes 999 and emits an event, then hangs until ``until``."""

    def apply(request: processor_pb2.TpProcessRequest, ctx: RawContext) -> tuple[int, str]:
        ctx.set({counter_address("pay"): b"999"})
        ctx.add_event("bogus", [], b"")
        wrote.set()
        until.wait(10)
        return OK, ""

    return apply


def test_killed_mid_request_is_redispatched_and_its_writes_discarded(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    wrote = threading.Event()
    dying = RawProcessor(str(server.endpoint), lambda r, c: (OK, ""), max_occupancy=4)
    dying.apply = _writes_then_waits(wrote, dying.dead)  # type: ignore[assignment]
    dying.start()
    survivor = spawn(max_occupancy=1)
    handler = _handler(registry)
    before = _redispatches()
    txn = counter_txn("pay", 5)
    context = fresh_context(txn)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(handler.apply, txn, context)
        assert wrote.wait(5)  # the most free slots: the dying one got it and wrote
        dying.kill()  # closes its socket: the next ping finds it unreachable
        future.result(10)
    assert dict(context.writes) == {counter_address("pay"): b"5"}  # the survivor's only
    assert [e.event_type for e in context.events] == ["counter/changed"]
    assert [r.signature for r in survivor.requests] == [txn.id]
    assert _redispatches() == before + 1
    assert len(server.processors()) == 1


def test_request_timeout_drops_the_processor_and_its_late_answer_is_ignored(
    registry: HandlerRegistry, spawn: Spawn
) -> None:
    # Pings far apart: only the request timeout can notice this processor.
    server = start_server(registry, request_timeout_s=0.3, ping_interval_s=60)
    try:
        wrote, release = threading.Event(), threading.Event()
        slow = RawProcessor(str(server.endpoint), lambda r, c: (OK, ""), max_occupancy=4)
        slow.apply = _writes_then_waits(wrote, release)  # type: ignore[assignment]
        slow.start()
        spawn(endpoint=server.endpoint, max_occupancy=1)
        txn = counter_txn("pay", 3)
        context = fresh_context(txn)
        _handler(registry).apply(txn, context)
        assert wrote.is_set()
        assert dict(context.writes) == {counter_address("pay"): b"3"}
        release.set()  # the slow one answers OK now: nobody listens any more
        wait_until(lambda: len(slow.requests) == 1)
        assert dict(context.writes) == {counter_address("pay"): b"3"}
        assert len(server.processors()) == 1
        slow.stop()
    finally:
        server.stop()


def test_silent_processor_dropped_after_missed_pings(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    silent = spawn(answer_pings=False)
    wait_until(lambda: not server.processors(), timeout_s=3)
    assert silent.pings >= 3
    with pytest.raises(UnknownFamily):
        registry.lookup(COUNTER, "1.0")


def test_answering_processor_stays(server: ProcessorServer, spawn: Spawn) -> None:
    chatty = spawn()
    wait_until(lambda: chatty.pings >= 6, timeout_s=3)
    assert len(server.processors()) == 1


def test_last_processor_dying_mid_request_is_unavailable(
    registry: HandlerRegistry, server: ProcessorServer
) -> None:
    wrote = threading.Event()
    dying = RawProcessor(str(server.endpoint), lambda r, c: (OK, ""))
    dying.apply = _writes_then_waits(wrote, dying.dead)  # type: ignore[assignment]
    dying.start()
    handler = _handler(registry)
    txn = counter_txn("pay", 1)
    context = fresh_context(txn)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(handler.apply, txn, context)
        assert wrote.wait(5)
        dying.kill()
        with pytest.raises(ProcessorUnavailable):
            future.result(10)
    assert not context.writes


def test_garbage_does_not_stop_the_server(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    # An unregistered peer: garbage, a non-processor type, extra frames. Ignored.
    stranger = zmq.Context.instance().socket(zmq.DEALER)
    stranger.setsockopt(zmq.LINGER, 0)
    stranger.connect(str(server.endpoint))
    stranger.send(b"\xff\x00garbage")
    stranger.send_multipart([b"", b"two frames"])
    stranger.send(
        validator_pb2.Message(
            message_type=M.CLIENT_BATCH_SUBMIT_REQUEST, correlation_id="c"
        ).SerializeToString()
    )
    # A registered processor that sends garbage is dropped; the others go on.
    rogue = spawn()
    good = spawn()
    wait_until(lambda: len(server.processors()) == 2)
    rogue.send_raw([b"\x0a\xff\xff\xff"])
    wait_until(lambda: len(server.processors()) == 1)
    txn = counter_txn("still", 4)
    context = fresh_context(txn)
    _handler(registry).apply(txn, context)
    assert dict(context.writes) == {counter_address("still"): b"4"}
    assert len(good.requests) == 1 and not rogue.requests
    stranger.close(linger=0)


def test_bad_response_status_drops_and_redispatches(
    registry: HandlerRegistry, server: ProcessorServer, spawn: Spawn
) -> None:
    confused = spawn(lambda r, c: (0, "unset status"), max_occupancy=4)
    spawn(counter_apply, max_occupancy=1)
    txn = counter_txn("status", 2)
    context = fresh_context(txn)
    _handler(registry).apply(txn, context)
    assert len(confused.requests) == 1
    assert dict(context.writes) == {counter_address("status"): b"2"}
    assert len(server.processors()) == 1
