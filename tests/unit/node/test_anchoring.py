"""The node's anchorer with a software key standing in for the HSM (the real token is in
tests/hsm/test_audit_anchor_hsm.py): its thread anchors at start, follows the batch to its
commit, survives a failing checkpoint, and does nothing when switched off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.chain.support import SoftwareSigner
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    build_genesis,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.custody.audit import AuditLog, CheckpointSignature
from trusted_ledger.errors import ConfigurationError, HsmUnavailable
from trusted_ledger.node import load_config
from trusted_ledger.node.anchoring import AuditAnchorer
from trusted_ledger.observability.metrics import REGISTRY
from trusted_ledger.processing.families import builtin_registry
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import MemoryDatabase

WAIT_S = 30  # only stops a hung test; nothing here is timed


def _anchors(result: str) -> float:
    return REGISTRY.get_sample_value("tl_audit_anchors_total", {"result": result}) or 0.0


def _until(condition: object) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    assert condition(), "condition not reached"  # type: ignore[operator]


class Node:
    """A chain, pool and publisher signed by a software key; its audit log's checkpoints
    signed by the same key, recording the use as custody's signer does."""

    def __init__(self, tmp_path: Path, *, failing: bool = False) -> None:
        self.key = SoftwareSigner()
        self.audit = AuditLog(tmp_path / "audit.jsonl")
        fingerprint = self.key.public_key.fingerprint

        def sign_checkpoint(digest: bytes) -> CheckpointSignature:
            if failing:
                raise HsmUnavailable("token removed")
            signature = self.key.sign(digest, purpose="checkpoint")
            self.audit.record_use(
                key_fingerprint=fingerprint, purpose="checkpoint", digest=digest,
                position=None, result="ok", error=None, latency_us=1,
            )  # fmt: skip
            return CheckpointSignature(
                fingerprint, "ec-p256", self.key.public_key.spki_der, signature.raw
            )

        self.audit.set_checkpoint_signer(sign_checkpoint)
        self.audit.record_use(
            key_fingerprint=fingerprint, purpose="test", digest=b"\x01" * 32,
            position=None, result="ok", error=None, latency_us=1,
        )  # fmt: skip
        self.store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), "anchor-unit")
        initial = self.store.state.update(EMPTY_ROOT, {})
        block, certificate = build_genesis(self.key, "anchor-unit", initial, 1)
        self.store.commit(block, certificate, initial, {})
        self.pool = BatchPool()
        self.publisher = BlockPublisher(
            self.store, self.pool, ProcessingBlockExecutor(builtin_registry(), self.store.state),
            self.key,
        )  # fmt: skip
        self.gossiped: list[bytes] = []

    def anchorer(self, every_s: float) -> AuditAnchorer:
        return AuditAnchorer(
            self.audit, self.store, self.pool, every_s=every_s, wake=lambda: None,
            gossip=self.gossiped.append,
        )  # fmt: skip


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = Node(tmp_path)
    yield made
    made.audit.close()


def test_the_thread_anchors_at_start_and_sees_the_commit(node: Node) -> None:
    anchorer = node.anchorer(every_s=3600)
    committed = _anchors("committed")
    anchorer.start()
    try:
        _until(lambda: len(node.pool) == 1)
        block = node.publisher.publish(int(time.time() * 1000))
        assert block is not None
        _until(lambda: anchorer.committed_head_seq is not None)
    finally:
        anchorer.stop()
    assert _anchors("committed") == committed + 1
    anchored = anchorer.anchored(node.key.public_key)
    assert anchored is not None and anchored.head_seq == anchorer.committed_head_seq
    assert len(node.gossiped) == 1
    assert anchorer.age_s() < WAIT_S


def test_a_failing_checkpoint_is_counted_and_the_thread_goes_on(tmp_path: Path) -> None:
    node = Node(tmp_path, failing=True)
    anchorer = node.anchorer(every_s=0.05)
    failed = _anchors("failed")
    anchorer.start()
    try:
        _until(lambda: _anchors("failed") >= failed + 2)  # it kept trying after the first
    finally:
        anchorer.stop()
        node.audit.close()
    assert len(node.pool) == 0


def test_anchoring_off_does_nothing(node: Node) -> None:
    anchorer = node.anchorer(every_s=0)
    anchorer.start()
    anchorer.stop()
    assert len(node.pool) == 0 and not node.gossiped


def test_a_trail_without_records_has_nothing_to_anchor(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "empty.jsonl")
    node = Node(tmp_path)
    anchorer = AuditAnchorer(
        audit, node.store, node.pool, every_s=1, wake=lambda: None, gossip=lambda _: None
    )
    assert anchorer.anchor_now() is None
    audit.close()
    node.audit.close()


def test_negative_anchor_interval_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[custody]\npin_env = "TL_PIN"\nanchor_every_s = -5\n')
    with pytest.raises(ConfigurationError, match=r"custody\.anchor_every_s must be 0"):
        load_config(path)
    path.write_text('[custody]\npin_env = "TL_PIN"\n')
    assert load_config(path).custody.anchor_every_s == 300
