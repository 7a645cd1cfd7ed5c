"""Trail anchors made by a real SoftHSM key: the node's own ``AuditLog`` checkpoint path
signs them, the real ``tl_audit`` handler verifies and commits them in real blocks, and a
rewritten head signed by the very same HSM key is refused."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

import pytest

from tests.hsm.conftest import TokenEnv, shared_pool
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    CustodyChainSigner,
    build_genesis,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.custody import AuditLog, CustodySigner, KeyAlgorithm, SigningGuard, verify_trail
from trusted_ledger.custody.audit import checkpoint_digest
from trusted_ledger.node.anchoring import AuditAnchorer
from trusted_ledger.observability.metrics import REGISTRY
from trusted_ledger.processing.families import builtin_registry
from trusted_ledger.processing.families.audit_anchor import AuditAnchor
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import MemoryDatabase

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(120)]
CHAIN_ID = "anchor-chain"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _anchors(result: str) -> float:
    return REGISTRY.get_sample_value("tl_audit_anchors_total", {"result": result}) or 0.0


def test_node_checkpoints_anchor_commit_and_a_rewrite_is_refused(
    softhsm: TokenEnv, tmp_path: Path
) -> None:
    label = f"anchor-{uuid.uuid4().hex[:8]}"
    token = shared_pool(softhsm)
    key = token.generate_key(label, KeyAlgorithm.EC_P256)
    audit = AuditLog(tmp_path / "audit.jsonl")
    guard = SigningGuard.create(tmp_path / "node.guard", key.fingerprint)
    custody = CustodySigner(token, label, audit=audit, guard=guard, checkpoints=True)
    signer = CustodyChainSigner(custody)
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    initial = store.state.update(EMPTY_ROOT, {})
    genesis, certificate = build_genesis(signer, CHAIN_ID, initial, _now_ms())
    store.commit(genesis, certificate, initial, {})
    pool = BatchPool()
    executor = ProcessingBlockExecutor(builtin_registry(), store.state)
    publisher = BlockPublisher(store, pool, executor, signer)
    gossiped: list[bytes] = []
    anchorer = AuditAnchorer(
        audit, store, pool, every_s=0, wake=lambda: None, gossip=gossiped.append
    )
    committed_before = _anchors("committed")
    rejected_before = _anchors("rejected")

    heads = []
    for _ in range(3):
        batch_id = anchorer.anchor_now()
        assert batch_id is not None and batch_id in pool
        block = publisher.publish(_now_ms())
        assert block is not None and [b.header_signature for b in block.batches] == [batch_id]
        anchorer.follow()
        anchored = anchorer.anchored(key.public_key)
        assert anchored is not None
        heads.append(anchored.head_seq)
        assert anchorer.committed_head_seq == anchored.head_seq
    assert heads == sorted(heads) and len(set(heads)) == 3
    assert _anchors("committed") - committed_before == 3
    assert len(gossiped) == 3  # each anchor went out on the API's on_accepted path

    # The same HSM key signs a different head at the anchored sequence number: a member
    # rewriting its own history. The signature is genuine; the ledger still refuses it.
    anchored = anchorer.anchored(key.public_key)
    assert anchored is not None
    forged_head = hashlib.sha256(b"a rewritten trail").digest()
    signature = custody.sign(
        checkpoint_digest(anchored.head_seq, forged_head.hex()), purpose="checkpoint"
    )
    rewrite = AuditAnchor(key.public_key, anchored.head_seq, forged_head, signature.raw)
    rewrite.verify()
    forged_id = anchorer.submit(rewrite)
    assert publisher.publish(_now_ms()) is None  # nothing valid to cut
    reason = pool.rejection(forged_id) or ""
    assert "audit trail rewrite detected" in reason
    anchorer.follow()
    assert _anchors("rejected") - rejected_before == 1
    assert anchorer.anchored(key.public_key) == anchored

    audit.close()
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    report = verify_trail(lines, key.public_key)
    assert report.ok, report.problems
    records = [json.loads(line) for line in lines]
    # Every committed anchor names a real checkpoint of the trail, head for head.
    checkpoints = {
        r["head_seq"]: r for r in records if r["kind"] == "checkpoint" and r["head_seq"] in heads
    }
    assert sorted(checkpoints) == heads
    # The trail itself holds the anchored head, not the rewritten one.
    assert records[anchored.head_seq]["hash"] == anchored.head_hash.hex() != forged_head.hex()
    assert checkpoints[anchored.head_seq]["signature"] == anchored.signature.hex()
    for head_seq, checkpoint in checkpoints.items():
        assert records[head_seq]["hash"] == checkpoint["head"]
