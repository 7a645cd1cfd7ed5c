"""A consortium whose membership is on chain (``tl.consensus.members`` in genesis) with an
admin allowed to change it, for the membership-change tests: each node with its own memory
chain store, pool, publisher, validator and ``NodeKeyRing`` of software keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from tests.unit.api.support import ADMIN, batch_of
from tests.unit.chain.support import SoftwareSigner
from tests.unit.node.support import GENESIS_MS
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    BlockValidator,
    ChainStore,
    PublisherLimits,
    build_genesis,
)
from trusted_ledger.chain.membership import ChainMember
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.node.keyring import NodeKeyRing
from trusted_ledger.processing.families import IdentitySubmissionPolicy, builtin_registry
from trusted_ledger.processing.families import identity as ident
from trusted_ledger.processing.families import settings as st
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    encode_members_setting,
)
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import Batch, TransactionBuilder

CEREMONY_KEY = ec.generate_private_key(ec.SECP256R1())
"""The genesis block's key: one key (and a fresh guard each time), so every call makes the
same genesis block id and a node set up later joins the same chain."""


@dataclass
class NodeChain:
    name: str
    keys: list[SoftwareSigner]
    ring: NodeKeyRing
    store: ChainStore
    pool: BatchPool
    publisher: BlockPublisher
    validator: BlockValidator


def node_chains(
    chain_id: str, nodes: Sequence[tuple[str, Sequence[SoftwareSigner]]], founders: Sequence[int]
) -> list[NodeChain]:
    """One chain per node (``(name, keys)``; its first key is its founding one), all on one
    genesis whose membership is the nodes at ``founders``, in that order."""
    founding = [ChainMember(nodes[i][0], nodes[i][1][0].public_key) for i in founders]
    changes = (
        ident.identity_genesis_changes([ADMIN.public_key_hex]),
        st.settings_genesis_changes(
            {
                st.AUTHORIZED_KEYS: ADMIN.public_key_hex,
                MEMBERS_SETTING: encode_members_setting(founding),
            }
        ),
    )
    genesis = None
    chains = []
    for name, keys in nodes:
        store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), chain_id)
        update = genesis_update(store.state, *changes)
        if genesis is None:
            genesis = build_genesis(SoftwareSigner(CEREMONY_KEY), chain_id, update, GENESIS_MS)
        store.commit(genesis[0], genesis[1], update, {})
        executor = ProcessingBlockExecutor(
            builtin_registry(), store.state, policy_factory=IdentitySubmissionPolicy
        )
        pool = BatchPool()
        ring = NodeKeyRing(list(keys))
        publisher = BlockPublisher(store, pool, executor, ring, PublisherLimits())
        # The bootstrap (members file) is never used once the chain holds the setting.
        validator = BlockValidator(store, executor, founding)
        chains.append(NodeChain(name, list(keys), ring, store, pool, publisher, validator))
    return chains


def membership_batch(members: Sequence[ChainMember], nonce: str) -> Batch:
    """The admin's proposal of ``members`` (threshold 1: approved by the proposal itself)."""
    value = encode_members_setting(members)
    inputs, outputs = st.settings_addresses(MEMBERS_SETTING)
    builder = TransactionBuilder(ADMIN, st.FAMILY_NAME, st.FAMILY_VERSION)
    payload = st.propose_payload(MEMBERS_SETTING, value, nonce)
    return batch_of(ADMIN, builder.build(payload, inputs=inputs, outputs=outputs))
