"""Blocks and commit votes signed through custody on SoftHSM: guarded, audited, verifiable."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.hsm.conftest import TokenEnv, shared_pool
from tests.unit.chain.support import BatchFactory, KvExecutor, kv_address
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    BlockValidator,
    ChainStore,
    CustodyChainSigner,
    Membership,
    build_genesis,
    decode_block,
    sign_proposal,
)
from trusted_ledger.custody import AuditLog, CustodySigner, KeyAlgorithm, SigningGuard, verify_trail
from trusted_ledger.errors import InvalidInput
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import MemoryDatabase

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(120)]
CHAIN_ID = "hsm-chain"


def _signer(softhsm: TokenEnv, tmp_path: Path, label: str, audit: AuditLog | None = None):  # type: ignore[no-untyped-def]
    pool = shared_pool(softhsm)
    guard_path = tmp_path / f"{label}.guard"
    key = pool.key_info(label)
    guard = (
        SigningGuard.open(guard_path, key.fingerprint)
        if guard_path.exists()
        else SigningGuard.create(guard_path, key.fingerprint)
    )
    return CustodyChainSigner(CustodySigner(pool, label, audit=audit, guard=guard)), key


def _genesis_store(signer: CustodyChainSigner) -> ChainStore:
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    initial = store.state.update(EMPTY_ROOT, {kv_address("genesis"): b"1"})
    block, certificate = build_genesis(signer, CHAIN_ID, initial, int(time.time() * 1000))
    store.commit(block, certificate, initial, {})
    return store


def test_published_blocks_verify_and_every_signature_is_audited(
    softhsm: TokenEnv, tmp_path: Path
) -> None:
    label = f"chain-{uuid.uuid4().hex[:8]}"
    key = shared_pool(softhsm).generate_key(label, KeyAlgorithm.EC_P256)
    audit = AuditLog(tmp_path / "audit.jsonl")
    signer, _ = _signer(softhsm, tmp_path, label, audit)
    store = _genesis_store(signer)
    pool = BatchPool()
    publisher = BlockPublisher(store, pool, KvExecutor(store.state), signer)
    factory = BatchFactory()
    membership = Membership([key.public_key])
    for height in range(1, 4):
        pool.add(factory.batch(f"set h{height} 1", "incr n"), 0)
        block = publisher.publish(int(time.time() * 1000))
        assert block is not None and block.number == height
        decoded = decode_block(block.encode())  # the HSM's signature verifies offline
        assert decoded.header.proposer == key.public_key
        certificate = store.certificate(block.id)
        assert certificate is not None
        certificate.verify(membership, decoded)
    audit.close()
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    assert verify_trail(lines).ok
    uses = [json.loads(line) for line in lines if json.loads(line)["kind"] == "use"]
    positions = [(u["purpose"], u["position"]) for u in uses]
    assert positions[-2:] == [("block", [3, 0, 1]), ("vote", [3, 0, 3])]
    assert len(uses) == 2 * 4  # genesis and three blocks: one proposal, one vote each


def test_a_proposal_lost_in_a_crash_moves_the_restarted_node_to_the_next_round(
    softhsm: TokenEnv, tmp_path: Path
) -> None:
    label = f"chain-{uuid.uuid4().hex[:8]}"
    key = shared_pool(softhsm).generate_key(label, KeyAlgorithm.EC_P256)
    signer, _ = _signer(softhsm, tmp_path, label)
    store = _genesis_store(signer)
    head = store.head
    assert head is not None
    # Signed at (1, 0, propose) but never committed: the node dies here.
    sign_proposal(
        signer, chain_id=CHAIN_ID, number=1, previous_block_id=head.block_id,
        state_root=head.state_root, batches=[], timestamp_ms=head.timestamp_ms,
    )  # fmt: skip
    restarted, _ = _signer(softhsm, tmp_path, label)  # guard reopened from its file
    pool = BatchPool()
    pool.add(BatchFactory().batch("set a 1"), 0)
    block = BlockPublisher(store, pool, KvExecutor(store.state), restarted).publish(
        head.timestamp_ms + 1
    )
    assert block is not None and block.header.consensus_round == 1
    # A validator holding only the public key accepts it.
    follower = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    genesis = store.block_at(0)
    assert genesis is not None
    genesis_certificate = store.certificate(genesis.id)
    assert genesis_certificate is not None
    follower.commit(
        genesis, genesis_certificate,
        follower.state.update(EMPTY_ROOT, {kv_address("genesis"): b"1"}), {},
    )  # fmt: skip
    validator = BlockValidator(follower, KvExecutor(follower.state), Membership([key.public_key]))
    certificate = store.certificate(block.id)
    assert certificate is not None
    validator.commit(block, certificate)
    assert follower.head == store.head


def test_a_custody_signer_without_guard_is_refused(softhsm: TokenEnv) -> None:
    label = f"chain-{uuid.uuid4().hex[:8]}"
    shared_pool(softhsm).generate_key(label, KeyAlgorithm.EC_P256)
    with pytest.raises(InvalidInput, match="SigningGuard"):
        CustodyChainSigner(CustodySigner(shared_pool(softhsm), label))
