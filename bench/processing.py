"""Block execution throughput: the serial scheduler beside the parallel one, same blocks.

    python bench/processing.py [--quick] [--blocks N] [--batches-per-block B] [--accounts A]
                               [--processor-latency-us U]

Workload: asset transfers (one per batch, Sawtooth's usual shape) between A accounts of one
asset, each signed by its holder; blocks are built and signed before timing starts. Every
scheduler executes the same blocks from the same state root (execution only: no commit, so
each run starts from identical state); the results are checked to be identical, then the
transactions per second of each are printed side by side.

With built-in Python handlers the parallel scheduler's threads contend for the GIL, so it
is expected to be no faster than serial here: what it buys is overlap for handlers that wait
(external processors over ZMQ, issue 5), which ``--processor-latency-us`` simulates by
sleeping (GIL released) before each call. The bench shows both sides.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from trusted_ledger.processing import (
    BlockExecutor,
    HandlerContext,
    HandlerRegistry,
    ParallelScheduler,
    Scheduler,
    SerialScheduler,
)
from trusted_ledger.processing.families import AssetHandler, asset, builtin_registry
from trusted_ledger.state import EMPTY_ROOT, STATE_NODES_COLUMN_FAMILY, StateStore
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import Batch, SigningKey, Transaction, TransactionBuilder, build_batch

CODE = "USD"


def _signed(key: SigningKey, batcher: SigningKey, operation: asset.AssetOperation) -> Batch:
    builder = TransactionBuilder(key, "asset", "1.0", batcher_public_key=batcher.public_key_hex)
    txn = builder.build(operation.payload, inputs=operation.inputs, outputs=operation.outputs)
    return build_batch(batcher, [txn])


def _setup(store: StateStore, accounts: list[SigningKey], batcher: SigningKey) -> bytes:
    issuer = accounts[0]
    batches = [_signed(issuer, batcher, asset.create_operation(CODE, "currency", 2))]
    batches += [
        _signed(issuer, batcher, asset.issue_operation(CODE, key.public_key_hex, 10**9))
        for key in accounts
    ]
    execution = BlockExecutor(builtin_registry(), store).execute(EMPTY_ROOT, batches)
    store.commit(execution.state_update)
    return execution.state_root


def _blocks(
    accounts: list[SigningKey], batcher: SigningKey, blocks: int, per_block: int
) -> list[list[Batch]]:
    rng = random.Random(7)
    result = []
    for _ in range(blocks):
        block = []
        for _ in range(per_block):
            sender, receiver = rng.sample(accounts, 2)
            operation = asset.transfer_operation(
                CODE, sender.public_key_hex, receiver.public_key_hex, rng.randint(1, 100)
            )
            block.append(_signed(sender, batcher, operation))
        result.append(block)
    return result


class _RemoteAssetHandler(AssetHandler):
    """The asset handler behind a simulated processor round trip (sleeps, GIL released)."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        time.sleep(self.latency_s)
        super().apply(transaction, context)


def _run(
    store: StateStore,
    root: bytes,
    scheduler: Scheduler,
    blocks: list[list[Batch]],
    latency_s: float = 0.0,
) -> tuple[float, list[bytes]]:
    handler = _RemoteAssetHandler(latency_s) if latency_s else AssetHandler()
    executor = BlockExecutor(HandlerRegistry([handler]), store, scheduler)
    roots = []
    started = time.perf_counter()
    for block in blocks:
        roots.append(executor.execute(root, block).state_root)
    return time.perf_counter() - started, roots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few small blocks, for CI")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--batches-per-block", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per scheduler (median)")
    parser.add_argument(
        "--processor-latency-us",
        type=int,
        default=0,
        help="simulated external-processor round trip per transaction (0: built-in)",
    )
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.batches_per_block, args.accounts, args.repeat = 3, 100, 200, 1
    accounts = [SigningKey((i + 1).to_bytes(32, "big")) for i in range(args.accounts)]
    batcher = SigningKey((10**6).to_bytes(32, "big"))
    store = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))
    root = _setup(store, accounts, batcher)
    blocks = _blocks(accounts, batcher, args.blocks, args.batches_per_block)
    transactions = args.blocks * args.batches_per_block
    schedulers: list[Scheduler] = [SerialScheduler(), ParallelScheduler(2), ParallelScheduler(4)]
    reference: list[bytes] | None = None
    print(
        f"{transactions} asset transfers in {args.blocks} blocks, {args.accounts} accounts, "
        f"simulated processor latency {args.processor_latency_us} us"
    )
    print(f"{'scheduler':<14}{'tx/s':>10}{'ms/block':>10}")
    for scheduler in schedulers:
        latency_s = args.processor_latency_us / 1e6
        runs = [_run(store, root, scheduler, blocks, latency_s) for _ in range(args.repeat)]
        seconds = statistics.median(run[0] for run in runs)
        roots = runs[0][1]
        if reference is None:
            reference = roots
        assert roots == reference, f"{scheduler.name} disagrees with serial"
        label = scheduler.name + (
            f"({scheduler.workers})" if isinstance(scheduler, ParallelScheduler) else ""
        )
        print(f"{label:<14}{transactions / seconds:>10.0f}{1000 * seconds / args.blocks:>10.1f}")


if __name__ == "__main__":
    main()
