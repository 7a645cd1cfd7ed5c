"""Helpers shared by the processing tests: keys, transactions, stores, both schedulers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trusted_ledger.processing import (
    BlockExecution,
    BlockExecutor,
    HandlerRegistry,
    ParallelScheduler,
    PolicyFactory,
    Scheduler,
    SerialScheduler,
    TransactionHandler,
)
from trusted_ledger.processing.families.asset import AssetOperation
from trusted_ledger.processing.families.asset_handler import AssetHandler
from trusted_ledger.processing.families.intkey import IntkeyHandler, intkey_address, intkey_payload
from trusted_ledger.state import EMPTY_ROOT, STATE_NODES_COLUMN_FAMILY, StateStore
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import Batch, SigningKey, Transaction, TransactionBuilder, build_batch

# Fixed keys: tests and scenario files name accounts by index.
KEYS = tuple(SigningKey((index + 1).to_bytes(32, "big")) for index in range(8))
# Signs every batch (a transaction names its batcher, so one batcher keeps that simple).
BATCHER = SigningKey((1000).to_bytes(32, "big"))


def fresh_store() -> StateStore:
    return StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY]))


def transaction(
    key: SigningKey,
    family: str,
    payload: bytes,
    inputs: Sequence[str],
    outputs: Sequence[str],
    *,
    version: str = "1.0",
    dependencies: Sequence[str] = (),
) -> Transaction:
    builder = TransactionBuilder(key, family, version, batcher_public_key=BATCHER.public_key_hex)
    return builder.build(payload, inputs=inputs, outputs=outputs, dependencies=dependencies)


def intkey_txn(verb: str, name: str, value: int, key: SigningKey = KEYS[0]) -> Transaction:
    address = intkey_address(name)
    return transaction(key, "intkey", intkey_payload(verb, name, value), [address], [address])


def asset_txn(operation: AssetOperation, key: SigningKey) -> Transaction:
    return transaction(key, "asset", operation.payload, operation.inputs, operation.outputs)


def batch(*transactions: Transaction) -> Batch:
    return build_batch(BATCHER, list(transactions))


def default_registry(*extra: TransactionHandler) -> HandlerRegistry:
    return HandlerRegistry([IntkeyHandler(), AssetHandler(), *extra])


def schedulers() -> list[Scheduler]:
    return [SerialScheduler(), ParallelScheduler(workers=1), ParallelScheduler(workers=4)]


@dataclass
class Chain:
    """A store and the root of its last executed block, committed after each block."""

    store: StateStore
    registry: HandlerRegistry
    root: bytes = EMPTY_ROOT
    policy_factory: PolicyFactory | None = None

    def run(self, batches: Sequence[Batch], scheduler: Scheduler | None = None) -> BlockExecution:
        executor = BlockExecutor(
            self.registry, self.store, scheduler, policy_factory=self.policy_factory
        )
        execution = executor.execute(self.root, batches)
        self.store.commit(execution.state_update)
        self.root = execution.state_root
        return execution

    def run_all(self, batches: Sequence[Batch]) -> BlockExecution:
        """Execute with every scheduler from the same root, assert identical results,
        commit once and return the serial execution."""
        executions = [
            BlockExecutor(
                self.registry, self.store, scheduler, policy_factory=self.policy_factory
            ).execute(self.root, batches)
            for scheduler in schedulers()
        ]
        reference = executions[0]
        for other in executions[1:]:
            assert summary(other) == summary(reference)
        self.store.commit(reference.state_update)
        self.root = reference.state_root
        return reference

    def get(self, address: str) -> bytes | None:
        return self.store.view(self.root).get(address)


def summary(execution: BlockExecution) -> tuple[object, ...]:
    """Everything two schedulers must agree on."""
    return (
        execution.state_root,
        execution.state_update.node_writes,
        execution.batch_results,
        execution.receipts,
        dict(execution.changes),
    )
