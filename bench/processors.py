"""External transaction processors beside the same family built in, in one run.

    python bench/processors.py [--quick] [--blocks N] [--batches-per-block B] [--names K]
                               [--occupancy O] [--workers W]

Family: Sawtooth's intkey (the built-in ``IntkeyHandler``). Built in, it runs in the node's
process; external, the very same handler class runs in 1, 2 and 4 processor subprocesses
(our kit, ``trusted-ledger processor run``) connected to a ``ProcessorServer`` on loopback,
so the difference is the protocol alone: a TP_PROCESS round trip plus one TP_STATE_GET and
one TP_STATE_SET per transaction. Each configuration executes the same pre-signed blocks
(``inc`` of K names, one transaction per batch) from the same root with the serial and the
parallel scheduler through ``processing.BlockExecutor``; every run's state roots are checked
equal to the built-in serial run's. Printed: transactions per second, and the p50 / p99
latency of one ``apply`` (for external processors: dispatch, round trips and buffer replay).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from trusted_ledger.observability.logging import configure_logging
from trusted_ledger.processing import (
    BlockExecutor,
    HandlerContext,
    HandlerRegistry,
    ParallelScheduler,
    Scheduler,
    SerialScheduler,
    TransactionHandler,
)
from trusted_ledger.processing.families.intkey import IntkeyHandler, intkey_address, intkey_payload
from trusted_ledger.processing.tp import ProcessorServer
from trusted_ledger.state import EMPTY_ROOT, STATE_NODES_COLUMN_FAMILY, StateStore
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import Batch, SigningKey, Transaction, TransactionBuilder, build_batch

HANDLER_SPEC = "trusted_ledger.processing.families.intkey:IntkeyHandler"


class _Timed(TransactionHandler):
    """Records how long each ``apply`` of the wrapped handler took (thread-safe append)."""

    def __init__(self, inner: TransactionHandler) -> None:
        self.inner = inner
        self.seconds: list[float] = []
        self._lock = threading.Lock()

    @property
    def family_name(self) -> str:
        return self.inner.family_name

    @property
    def family_versions(self) -> tuple[str, ...]:
        return self.inner.family_versions

    @property
    def namespaces(self) -> tuple[str, ...]:
        return self.inner.namespaces

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        started = time.perf_counter()
        self.inner.apply(transaction, context)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.seconds.append(elapsed)


def _txn(key: SigningKey, batcher: SigningKey, verb: str, name: str, value: int) -> Batch:
    builder = TransactionBuilder(key, "intkey", "1.0", batcher_public_key=batcher.public_key_hex)
    address = intkey_address(name)
    txn = builder.build(intkey_payload(verb, name, value), inputs=[address], outputs=[address])
    return build_batch(batcher, [txn])


def _workload(blocks: int, per_block: int, names: int) -> tuple[list[Batch], list[list[Batch]]]:
    keys = [SigningKey((i + 1).to_bytes(32, "big")) for i in range(8)]
    batcher = SigningKey((10**6).to_bytes(32, "big"))
    rng = random.Random(11)
    setup = [_txn(keys[0], batcher, "set", f"k{i}", 1000) for i in range(names)]
    work = [
        [
            _txn(rng.choice(keys), batcher, "inc", f"k{rng.randrange(names)}", rng.randint(1, 9))
            for _ in range(per_block)
        ]
        for _ in range(blocks)
    ]
    return setup, work


def _measure(
    handler: TransactionHandler,
    store: StateStore,
    root: bytes,
    scheduler: Scheduler,
    blocks: list[list[Batch]],
) -> tuple[float, list[float], list[bytes]]:
    timed = _Timed(handler)
    executor = BlockExecutor(HandlerRegistry([timed]), store, scheduler)
    roots = []
    started = time.perf_counter()
    for block in blocks:
        roots.append(executor.execute(root, block).state_root)
    return time.perf_counter() - started, timed.seconds, roots


def _spawn_processors(endpoint: str, count: int, occupancy: int) -> list[subprocess.Popen[bytes]]:
    command = [
        sys.executable,
        "-m",
        "trusted_ledger.cli",
        "processor",
        "run",
        HANDLER_SPEC,
        "--connect",
        endpoint,
        "--max-occupancy",
        str(occupancy),
        "--log-level",
        "warning",
    ]
    return [subprocess.Popen(command) for _ in range(count)]


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small blocks, for CI")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--batches-per-block", type=int, default=400)
    parser.add_argument("--names", type=int, default=2000)
    parser.add_argument("--occupancy", type=int, default=4, help="per processor")
    parser.add_argument("--workers", type=int, default=8, help="parallel scheduler threads")
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    if args.quick:
        args.blocks, args.batches_per_block, args.names = 2, 100, 500
    setup, blocks = _workload(args.blocks, args.batches_per_block, args.names)
    store = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    execution = BlockExecutor(HandlerRegistry([IntkeyHandler()]), store).execute(EMPTY_ROOT, setup)
    store.commit(execution.state_update)
    root = execution.state_root
    transactions = args.blocks * args.batches_per_block
    schedulers: list[Scheduler] = [SerialScheduler(), ParallelScheduler(args.workers)]
    print(
        f"{transactions} intkey inc in {args.blocks} blocks over {args.names} names; "
        f"external processors: occupancy {args.occupancy}, parallel scheduler: "
        f"{args.workers} workers"
    )
    print(f"{'handler':<22}{'scheduler':<12}{'tx/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    reference: list[bytes] | None = None

    def report(label: str, handler: TransactionHandler) -> None:
        nonlocal reference
        for scheduler in schedulers:
            seconds, latencies, roots = _measure(handler, store, root, scheduler, blocks)
            if reference is None:
                reference = roots
            assert roots == reference, f"{label} {scheduler.name} disagrees with built-in"
            print(
                f"{label:<22}{scheduler.name:<12}{transactions / seconds:>9.0f}"
                f"{_percentile(latencies, 0.5) * 1e3:>9.3f}"
                f"{_percentile(latencies, 0.99) * 1e3:>9.3f}"
            )

    report("built-in", IntkeyHandler())

    registry = HandlerRegistry()
    server = ProcessorServer(registry, "tcp://127.0.0.1:0", request_timeout_s=30.0)
    endpoint = server.start()
    children: list[subprocess.Popen[bytes]] = []
    try:
        for count in (1, 2, 4):
            children += _spawn_processors(endpoint, count - len(children), args.occupancy)
            _wait(lambda n=count: len(server.processors()) == n, 30, f"{count} processors")
            external = registry.lookup("intkey", "1.0")
            report(f"external x{count}", external)
            dispatched = [info.dispatched for info in server.processors()]
            print(f"{'':<22}dispatched per processor so far: {dispatched}")
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(10)
        server.stop()


if __name__ == "__main__":
    main()
