"""Fixtures for the chain unit tests: an in-memory chain with a genesis block."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.unit.chain.support import BatchFactory, KvExecutor, SoftwareSigner, kv_address
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    BlockValidator,
    ChainStore,
    Membership,
    build_genesis,
)
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import MemoryDatabase

CHAIN_ID = "test-chain"
GENESIS_MS = 1_700_000_000_000
GENESIS_STATE = {kv_address("genesis"): b"1"}


@dataclass
class Node:
    """One single-node chain on a memory database."""

    db: MemoryDatabase
    store: ChainStore
    signer: SoftwareSigner
    executor: KvExecutor
    pool: BatchPool
    publisher: BlockPublisher

    @property
    def membership(self) -> Membership:
        return Membership([self.signer.public_key])


def make_node(signer: SoftwareSigner | None = None, pool: BatchPool | None = None) -> Node:
    db = MemoryDatabase(CHAIN_COLUMN_FAMILIES)
    store = ChainStore(db, CHAIN_ID)
    signer = signer or SoftwareSigner()
    executor = KvExecutor(store.state)
    initial = store.state.update(EMPTY_ROOT, GENESIS_STATE)
    block, certificate = build_genesis(signer, CHAIN_ID, initial, GENESIS_MS)
    store.commit(block, certificate, initial, {})
    pool = pool or BatchPool()
    return Node(db, store, signer, executor, pool, BlockPublisher(store, pool, executor, signer))


def make_follower(leader: Node) -> tuple[ChainStore, BlockValidator]:
    """A second node with the leader's genesis, validating the leader's blocks."""
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    genesis = leader.store.block_at(0)
    assert genesis is not None
    certificate = leader.store.certificate(genesis.id)
    assert certificate is not None
    store.commit(genesis, certificate, store.state.update(EMPTY_ROOT, GENESIS_STATE), {})
    return store, BlockValidator(store, KvExecutor(store.state), leader.membership)


@pytest.fixture
def node() -> Node:
    return make_node()


@pytest.fixture
def factory() -> BatchFactory:
    return BatchFactory()
