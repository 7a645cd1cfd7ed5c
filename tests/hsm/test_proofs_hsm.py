"""Proofs over a chain whose blocks, votes and audit checkpoints were signed by a SoftHSM key
through custody: the node-free verifier accepts them under that key and refuses others."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.hsm.conftest import TokenEnv, shared_pool
from tests.unit.chain.support import BatchFactory, KvExecutor, SoftwareSigner, kv_address
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    CustodyChainSigner,
    Membership,
    build_genesis,
)
from trusted_ledger.chain.proof_verify import verify_proof
from trusted_ledger.chain.proofs import batch_proof, state_proof, transaction_proof
from trusted_ledger.custody import AuditLog, CustodySigner, KeyAlgorithm, SigningGuard
from trusted_ledger.custody.audit_proof import build_audit_proof
from trusted_ledger.errors import ProofRejected
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import MemoryDatabase

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(120)]
CHAIN_ID = "hsm-proofs"


def test_proofs_of_an_hsm_signed_chain(softhsm: TokenEnv, tmp_path: Path) -> None:
    label = f"proofs-{uuid.uuid4().hex[:8]}"
    pool = shared_pool(softhsm)
    key = pool.generate_key(label, KeyAlgorithm.EC_P256)
    audit = AuditLog(tmp_path / "audit.jsonl", checkpoint_every_records=4)
    guard = SigningGuard.create(tmp_path / "node.guard", key.fingerprint)
    signer = CustodyChainSigner(
        CustodySigner(pool, label, audit=audit, guard=guard, checkpoints=True)
    )
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    initial = store.state.update(EMPTY_ROOT, {kv_address("genesis"): b"1"})
    genesis, certificate = build_genesis(signer, CHAIN_ID, initial, int(time.time() * 1000))
    store.commit(genesis, certificate, initial, {})
    batches = BatchPool()
    publisher = BlockPublisher(store, batches, KvExecutor(store.state), signer)
    factory = BatchFactory()
    sent = []
    for height in range(1, 4):
        sent.append(factory.batch(f"set h{height} {height}"))
        batches.add(sent[-1], 0)
        assert publisher.publish(int(time.time() * 1000)) is not None
    audit.checkpoint()
    audit.close()

    members = Membership([key.public_key])
    strangers = Membership([SoftwareSigner().public_key])
    for batch in sent:
        proof = batch_proof(store, batch.header_signature)
        assert proof is not None
        assert verify_proof(proof, members).block is not None
        with pytest.raises(ProofRejected, match="not a member"):
            verify_proof(proof, strangers)
        transaction = transaction_proof(store, batch.transactions[0].header_signature)
        assert transaction is not None and verify_proof(transaction, members).facts["family_name"]
    state = state_proof(store, kv_address("h2"))
    assert state is not None
    assert verify_proof(state, members).facts["value"] == b"2".hex()

    # The trail: every proposal and vote above is a use record; checkpoints signed on-token.
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    seqs = [json.loads(line)["seq"] for line in lines if b'"kind":"checkpoint"' in line]
    assert len(seqs) >= 2
    whole = build_audit_proof(tmp_path / "audit.jsonl", seqs[0], seqs[-1])
    result = verify_proof(whole, node_key=key.public_key)
    assert result.facts["key_from_proof"] is False and result.facts["records"] > 4
    purposes = {r.get("purpose") for r in whole["records"]}
    assert {"block", "vote", "checkpoint"} <= purposes
    with pytest.raises(ProofRejected, match="trusted node key"):
        verify_proof(whole, node_key=SoftwareSigner().public_key)
