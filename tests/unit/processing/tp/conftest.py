"""A server on a loopback port with short timeouts, and processors that are always stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from trusted_ledger.processing import HandlerContext, HandlerRegistry
from trusted_ledger.processing.families.intkey import IntkeyHandler
from trusted_ledger.processing.tp import ProcessorServer
from trusted_ledger.state import EMPTY_ROOT, StateStore, TransactionContext
from trusted_ledger.txn import Transaction

from ..support import KEYS, fresh_store, transaction
from .rawtp import COUNTER, RawProcessor, counter_address, counter_apply, counter_payload

REQUEST_TIMEOUT_S = 2.0
PING_INTERVAL_S = 0.1


@pytest.fixture
def registry() -> HandlerRegistry:
    return HandlerRegistry([IntkeyHandler()])


def start_server(registry: HandlerRegistry, **options: float) -> ProcessorServer:
    settings: dict[str, float] = {
        "request_timeout_s": REQUEST_TIMEOUT_S,
        "ping_interval_s": PING_INTERVAL_S,
        "ping_misses_max": 3,
    }
    settings.update(options)
    server = ProcessorServer(
        registry,
        "tcp://127.0.0.1:0",
        request_timeout_s=settings["request_timeout_s"],
        ping_interval_s=settings["ping_interval_s"],
        ping_misses_max=int(settings["ping_misses_max"]),
    )
    server.start()
    return server


@pytest.fixture
def server(registry: HandlerRegistry) -> Iterator[ProcessorServer]:
    server = start_server(registry)
    yield server
    server.stop()


Spawn = Callable[..., RawProcessor]


@pytest.fixture
def spawn(server: ProcessorServer) -> Iterator[Spawn]:
    """Start a registered raw processor on ``server`` (or on ``endpoint=``)."""
    started: list[RawProcessor] = []

    def _spawn(apply: object = counter_apply, **options: object) -> RawProcessor:
        endpoint = options.pop("endpoint", server.endpoint)
        processor = RawProcessor(str(endpoint), apply, **options)  # type: ignore[arg-type]
        started.append(processor)
        processor.start()
        return processor

    yield _spawn
    for processor in started:
        processor.dead.set()
        processor.stop()


def counter_txn(
    name: str,
    delta: int,
    *,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    key_index: int = 0,
) -> Transaction:
    address = counter_address(name)
    return transaction(
        KEYS[key_index],
        COUNTER,
        counter_payload(name, delta),
        inputs if inputs is not None else [address],
        outputs if outputs is not None else [address],
    )


def fresh_context(
    txn: Transaction, store: StateStore | None = None, root: bytes = EMPTY_ROOT
) -> HandlerContext:
    store = store if store is not None else fresh_store()
    return HandlerContext(
        TransactionContext(store.view(root), txn.header.inputs, txn.header.outputs)
    )


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
