"""A consortium's chains in one process, for the BFT driver and consortium tests: each
member with its own memory chain store, pool, publisher and validator, all over one genesis
(signed by a founder key, identity policies letting anyone submit intkey)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

from cryptography.hazmat.primitives.asymmetric import ec

from tests.unit.api.support import ADMIN, batch_of, intkey_txn
from tests.unit.chain.support import SoftwareSigner
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    BlockValidator,
    ChainStore,
    Membership,
    PublisherLimits,
    build_genesis,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.processing.families import IdentitySubmissionPolicy, builtin_registry
from trusted_ledger.processing.families import identity as ident
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import Batch

GENESIS_MS = 1_700_000_000_000


@dataclass
class MemberChain:
    """One member's key and chain pieces."""

    private_key: ec.EllipticCurvePrivateKey
    signer: SoftwareSigner
    store: ChainStore
    pool: BatchPool
    publisher: BlockPublisher
    validator: BlockValidator


def member_chains(size: int, chain_id: str) -> list[MemberChain]:
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(size)]
    signers = [SoftwareSigner(key) for key in keys]
    membership = Membership([s.public_key for s in signers])
    founder = SoftwareSigner()  # the genesis block's signer (the founding ceremony's key)
    changes = ident.identity_genesis_changes([ADMIN.public_key_hex])
    genesis = None
    chains = []
    for key, signer in zip(keys, signers, strict=True):
        store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), chain_id)
        update = genesis_update(store.state, changes)
        if genesis is None:
            genesis = build_genesis(founder, chain_id, update, GENESIS_MS)
        store.commit(genesis[0], genesis[1], update, {})
        executor = ProcessingBlockExecutor(
            builtin_registry(), store.state, policy_factory=IdentitySubmissionPolicy
        )
        pool = BatchPool()
        publisher = BlockPublisher(store, pool, executor, signer, PublisherLimits())
        validator = BlockValidator(store, executor, membership)
        chains.append(MemberChain(key, signer, store, pool, publisher, validator))
    return chains


_names = count()


def intkey_batches(how_many: int) -> list[Batch]:
    """Batches of one ``intkey set`` each, with names never used before in this process."""
    return [
        batch_of(ADMIN, intkey_txn(ADMIN, "set", f"k{next(_names)}", 7)) for _ in range(how_many)
    ]
