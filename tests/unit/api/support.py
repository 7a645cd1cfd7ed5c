"""A real single-node chain behind the API, for the API tests.

Chain store (memory or RocksDB), pending pool, the publisher over the processing layer's
built-in families with identity enforcement (genesis lets anyone submit asset and intkey),
and the ``SoftwareSigner`` of the chain tests as the node key. Clients sign with
``txn.SigningKey``; the test drives the publisher itself, so every commit is explicit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.unit.chain.support import SoftwareSigner
from trusted_ledger.api import ApiServer, NodeServices
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    Block,
    BlockPublisher,
    ChainStore,
    PublisherLimits,
    build_genesis,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.processing.families import IdentitySubmissionPolicy, asset, builtin_registry
from trusted_ledger.processing.families import identity as ident
from trusted_ledger.processing.families.intkey import intkey_address, intkey_payload
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.storage import Database, MemoryDatabase
from trusted_ledger.txn import (
    DEFAULT_LIMITS,
    Batch,
    BatchList,
    SigningKey,
    Transaction,
    TransactionBuilder,
    TxnLimits,
    build_batch,
)

CHAIN_ID = "api-test"
GENESIS_MS = 1_700_000_000_000
ADMIN = SigningKey((7).to_bytes(32, "big"))
ISSUER = SigningKey((11).to_bytes(32, "big"))
ALICE = SigningKey((12).to_bytes(32, "big"))
BOB = SigningKey((13).to_bytes(32, "big"))
USD = "USD"


def asset_txn(
    key: SigningKey, operation: asset.AssetOperation, dependencies: Sequence[str] = ()
) -> Transaction:
    builder = TransactionBuilder(key, asset.FAMILY_NAME, asset.FAMILY_VERSION)
    return builder.build(
        operation.payload,
        inputs=operation.inputs,
        outputs=operation.outputs,
        dependencies=dependencies,
    )


def intkey_txn(key: SigningKey, verb: str, name: str, value: int) -> Transaction:
    builder = TransactionBuilder(key, "intkey", "1.0")
    address = intkey_address(name)
    return builder.build(intkey_payload(verb, name, value), inputs=[address], outputs=[address])


def batch_of(key: SigningKey, *transactions: Transaction) -> Batch:
    return build_batch(key, list(transactions))


def body_of(*batches: Batch) -> bytes:
    return BatchList(tuple(batches)).encode()


def usd_setup() -> list[Batch]:
    """Create USD and issue 100 to Alice: two batches, the second after the first."""
    create = batch_of(ISSUER, asset_txn(ISSUER, asset.create_operation(USD, "currency", 2)))
    issue = batch_of(
        ISSUER, asset_txn(ISSUER, asset.issue_operation(USD, ALICE.public_key_hex, 100))
    )
    return [create, issue]


def transfer(amount: int, dependencies: Sequence[str] = ()) -> Batch:
    operation = asset.transfer_operation(USD, ALICE.public_key_hex, BOB.public_key_hex, amount)
    return batch_of(ALICE, asset_txn(ALICE, operation, dependencies))


@dataclass
class ApiChain:
    store: ChainStore
    pool: BatchPool
    signer: SoftwareSigner
    publisher: BlockPublisher
    server: ApiServer
    wakes: list[int] = field(default_factory=list)
    now_ms: int = GENESIS_MS

    def publish(self) -> Block | None:
        """Cut a block now (any thread) and tell the API, as the node's publisher does."""
        self.now_ms += 1000
        block = self.publisher.publish(self.now_ms)
        self.server.notify_committed()
        return block

    def commit(self, *batches: Batch) -> Block:
        """Queue ``batches`` directly (not through the API) and publish them."""
        self.pool.add_many(batches, self.now_ms)
        block = self.publish()
        assert block is not None
        return block


def make_chain(
    *,
    db: Database | None = None,
    genesis: bool = True,
    pool: BatchPool | None = None,
    limits: TxnLimits = DEFAULT_LIMITS,
    wake_error: Exception | None = None,
    clock_error: Exception | None = None,
    audit_path: Path | None = None,
) -> ApiChain:
    db = db if db is not None else MemoryDatabase(CHAIN_COLUMN_FAMILIES)
    store = ChainStore(db, CHAIN_ID)
    signer = SoftwareSigner()
    if genesis:
        update = genesis_update(store.state, ident.identity_genesis_changes([ADMIN.public_key_hex]))
        block, certificate = build_genesis(signer, CHAIN_ID, update, GENESIS_MS)
        store.commit(block, certificate, update, {})
    pool = pool if pool is not None else BatchPool()
    executor = ProcessingBlockExecutor(
        builtin_registry(), store.state, policy_factory=IdentitySubmissionPolicy
    )
    publisher = BlockPublisher(store, pool, executor, signer, PublisherLimits())
    wakes: list[int] = []

    def wake() -> None:
        if wake_error is not None:
            raise wake_error
        wakes.append(len(pool))

    def clock_ms() -> int:
        if clock_error is not None:
            raise clock_error
        return GENESIS_MS + 500

    services = NodeServices(
        store=store,
        pool=pool,
        node_public_key=signer.public_key,
        scheduler_name="serial",
        wake_publisher=wake,
        limits=limits,
        clock_ms=clock_ms,
        audit_path=audit_path,
    )
    return ApiChain(store, pool, signer, publisher, ApiServer(services), wakes)


@contextlib.asynccontextmanager
async def api_client(chain: ApiChain) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of ``chain``'s API, served by ``ApiServer.start`` on an ephemeral loopback
    port (the production runner and its options); the server is stopped on exit."""
    port = await chain.server.start("127.0.0.1", 0)
    chain.server.set_ready(True)
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        await chain.server.stop()


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]
