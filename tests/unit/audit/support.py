"""A real consortium chain for the bundle tests, built block by block in one process.

Four members (bank-a..bank-d, software P-256 keys standing in for HSM keys) found the chain
with ``tl.consensus.members`` in genesis and EVERY founder's vote on block 0, as ``net
init`` does. Each later block is proposed by a member, executed by the real processing
executor and certified by the votes of the membership of its height. Each member keeps a
real ``AuditLog``; its checkpoints are anchored with real ``tl_audit`` transactions. The
admin rotates bank-d's key in block 2 (effective from block 3), and bank-d's trail then
checkpoints with its new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.unit.api.support import ADMIN
from tests.unit.chain.support import SoftwareSigner
from tests.unit.node.membership_support import membership_batch
from tests.unit.node.support import intkey_batches
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    CommitCertificate,
    PublisherLimits,
    sign_commit_vote,
    sign_proposal,
)
from trusted_ledger.chain.block import GENESIS_PREVIOUS_ID
from trusted_ledger.chain.membership import ChainMember
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.custody.audit import AuditLog, CheckpointSignature
from trusted_ledger.node.anchoring import anchor_of
from trusted_ledger.processing.families import IdentitySubmissionPolicy, builtin_registry
from trusted_ledger.processing.families import identity as ident
from trusted_ledger.processing.families import settings as st
from trusted_ledger.processing.families.audit_anchor import (
    FAMILY_NAME,
    FAMILY_VERSION,
    anchor_addresses,
)
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    encode_members_setting,
)
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.storage import Database, MemoryDatabase
from trusted_ledger.txn import Batch, SigningKey, TransactionBuilder, build_batch

CHAIN_ID = "audit-bundle-test"
GENESIS_MS = 1_767_225_600_000
NAMES = ("bank-a", "bank-b", "bank-c", "bank-d")


@dataclass
class Bank:
    name: str
    signer: SoftwareSigner
    log: AuditLog
    path: Path
    anchor_key: SigningKey = field(default_factory=SigningKey.generate)

    def use(self, count: int) -> None:
        for index in range(count):
            self.log.record_use(
                key_fingerprint=self.signer.public_key.fingerprint, purpose="block",
                digest=bytes([index]) * 32, position=[index, 0, 1], result="ok", error=None,
                latency_us=5,
            )  # fmt: skip

    def anchor_batch(self) -> Batch:
        """A checkpoint of the trail now, as the node's anchorer submits it."""
        checkpoint = self.log.checkpoint(force=True)
        assert checkpoint is not None
        anchor = anchor_of(checkpoint)
        inputs, outputs = anchor_addresses(anchor.public_key.fingerprint)
        builder = TransactionBuilder(self.anchor_key, FAMILY_NAME, FAMILY_VERSION)
        transaction = builder.build(anchor.payload(), inputs=inputs, outputs=outputs)
        return build_batch(self.anchor_key, [transaction])


def _bank(directory: Path, name: str) -> Bank:
    log = AuditLog(directory / f"{name}.jsonl")
    bank = Bank(name, SoftwareSigner(), log, directory / f"{name}.jsonl")

    def sign_checkpoint(digest: bytes) -> CheckpointSignature:
        key = bank.signer
        signature = key.sign(digest, purpose="checkpoint")
        bank.log.record_use(
            key_fingerprint=key.public_key.fingerprint, purpose="checkpoint", digest=digest,
            position=None, result="ok", error=None, latency_us=1,
        )  # fmt: skip
        return CheckpointSignature(
            key.public_key.fingerprint, "ec-p256", key.public_key.spki_der, signature.raw
        )

    log.set_checkpoint_signer(sign_checkpoint)
    return bank


@dataclass
class Consortium:
    store: ChainStore
    banks: dict[str, Bank]
    members: list[ChainMember]
    founders: list[ChainMember]
    rotated_key: SoftwareSigner
    founder_signers: dict[str, SoftwareSigner]
    clock_ms: int = GENESIS_MS

    def signer_of(self, member: ChainMember) -> SoftwareSigner:
        signers = [self.rotated_key, *self.founder_signers.values()]
        return next(s for s in signers if s.public_key == member.public_key)

    def commit(self, batches: Sequence[Batch], proposer: str) -> int:
        """Propose ``batches`` by member ``proposer``, certify by every current member."""
        self.clock_ms += 1000
        member = next(m for m in self.members if m.name == proposer)
        executor = ProcessingBlockExecutor(
            builtin_registry(), self.store.state, policy_factory=IdentitySubmissionPolicy
        )
        pool = BatchPool()
        pool.add_many(list(batches), self.clock_ms)
        publisher = BlockPublisher(
            self.store, pool, executor, self.signer_of(member), PublisherLimits()
        )
        proposed = publisher.propose(self.clock_ms)
        assert proposed is not None and len(proposed.block.batches) == len(batches)
        block = proposed.block
        votes = [
            sign_commit_vote(self.signer_of(m), CHAIN_ID, block.number, 0, block.id)
            for m in self.members
        ]
        publisher.commit(
            proposed,
            CommitCertificate.from_votes(CHAIN_ID, block.number, 0, block.id, votes),
        )
        return block.number

    def trails(self, *names: str) -> dict[str, bytes]:
        return {name: self.banks[name].path.read_bytes() for name in names}


def build_consortium(directory: Path, db: Database | None = None) -> Consortium:
    """Blocks 0..5 as described in the module docstring."""
    banks = {name: _bank(directory, name) for name in NAMES}
    founders = [ChainMember(name, banks[name].signer.public_key) for name in NAMES]
    store = ChainStore(db or MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    update = genesis_update(
        store.state,
        ident.identity_genesis_changes([ADMIN.public_key_hex]),
        st.settings_genesis_changes(
            {
                st.AUTHORIZED_KEYS: ADMIN.public_key_hex,
                MEMBERS_SETTING: encode_members_setting(founders),
            }
        ),
    )
    proposer = banks["bank-a"].signer
    genesis = sign_proposal(
        proposer, chain_id=CHAIN_ID, number=0, previous_block_id=GENESIS_PREVIOUS_ID,
        state_root=update.root, batches=(), timestamp_ms=GENESIS_MS,
    )  # fmt: skip
    votes = [sign_commit_vote(banks[n].signer, CHAIN_ID, 0, 0, genesis.id) for n in NAMES]
    store.commit(
        genesis, CommitCertificate.from_votes(CHAIN_ID, 0, 0, genesis.id, votes), update, {}
    )
    rotated = SoftwareSigner()
    founder_signers = {name: banks[name].signer for name in NAMES}
    consortium = Consortium(store, banks, list(founders), list(founders), rotated, founder_signers)
    for name in NAMES:
        banks[name].use(3)
    anchors = [banks[name].anchor_batch() for name in ("bank-a", "bank-b", "bank-d")]
    consortium.commit([*intkey_batches(2), *anchors], "bank-a")
    after = [*founders[:3], ChainMember("bank-d", rotated.public_key)]
    consortium.commit([membership_batch(after, "rotate-d")], "bank-b")
    consortium.members = after
    bank_d = banks["bank-d"]
    bank_d.signer = rotated  # the node now signs (and checkpoints) with its new key
    bank_d.use(2)
    consortium.commit(intkey_batches(1), "bank-d")
    banks["bank-a"].use(4)
    consortium.commit([banks["bank-a"].anchor_batch(), bank_d.anchor_batch()], "bank-c")
    consortium.commit(intkey_batches(1), "bank-a")
    return consortium
