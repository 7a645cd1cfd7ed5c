"""The validator: re-execution must reproduce the header's state root; every other mismatch
is refused with an error naming it, and nothing is committed."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.chain.conftest import CHAIN_ID, GENESIS_MS, Node, make_follower, make_node
from tests.unit.chain.support import BatchFactory, SoftwareSigner
from trusted_ledger.chain import Block, sign_proposal, single_node_certificate
from trusted_ledger.errors import (
    BatchRootMismatch,
    BlockContainsInvalidBatch,
    BlockDoesNotExtendHead,
    BlockReplaysCommitted,
    BlockSignatureInvalid,
    CertificateInvalid,
    MalformedBlock,
    StateRootMismatch,
)
from trusted_ledger.txn import Batch


def test_follower_commits_every_block_the_leader_publishes(
    node: Node, factory: BatchFactory
) -> None:
    follower, validator = make_follower(node)
    for height in range(1, 6):
        for i in range(3):
            node.pool.add(factory.batch(f"incr k{i}", f"set h{height} {i}"), GENESIS_MS)
        block = node.publisher.publish(GENESIS_MS + height)
        assert block is not None
        certificate = node.store.certificate(block.id)
        assert certificate is not None
        validator.commit(block, certificate)
        assert follower.head == node.store.head  # same block, same state root (invariant 2)


def _proposal(
    node: Node, batches: list[Batch], *, signer: SoftwareSigner | None = None, **changes: object
) -> Block:
    head = node.store.head
    assert head is not None
    outcome = node.executor.execute(batches, head.state_root)
    fields: dict[str, object] = {
        "chain_id": CHAIN_ID, "number": head.number + 1, "previous_block_id": head.block_id,
        "state_root": outcome.state_root, "batches": batches, "timestamp_ms": head.timestamp_ms,
    }  # fmt: skip
    fields.update(changes)
    signer = signer or node.signer
    signer.watermark = None  # the test plays a faulty or malicious proposer
    return sign_proposal(signer, **fields)  # type: ignore[arg-type]


def _refused(node: Node, block: Block, error: type[Exception], match: str | None = None) -> None:
    _, validator = make_follower(node)
    with pytest.raises(error, match=match):
        validator.validate(block)


def test_a_wrong_state_root_is_refused_naming_both_roots(node: Node, factory: BatchFactory) -> None:
    block = _proposal(node, [factory.batch("set a 1")], state_root=b"\x0f" * 32)
    _refused(node, block, StateRootMismatch, "claims state root 0f0f.*re-execution gives")


def test_linkage_faults_are_refused(node: Node, factory: BatchFactory) -> None:
    batches = [factory.batch("set a 1")]
    _refused(node, _proposal(node, batches, number=2), BlockDoesNotExtendHead)
    _refused(node, _proposal(node, batches, previous_block_id=b"\x01" * 32), BlockDoesNotExtendHead)
    _refused(node, _proposal(node, batches, chain_id="other"), BlockDoesNotExtendHead, "chain")
    _refused(
        node, _proposal(node, batches, timestamp_ms=GENESIS_MS - 1), BlockDoesNotExtendHead,
        "before its parent",
    )  # fmt: skip


def test_proposer_faults_are_refused(node: Node, factory: BatchFactory) -> None:
    batches = [factory.batch("set a 1")]
    outsider = _proposal(node, batches, signer=SoftwareSigner())
    _refused(node, outsider, BlockSignatureInvalid, "not a member")
    block = _proposal(node, batches)
    forged = dataclasses.replace(block, proposer_signature=bytes(64))
    _refused(node, forged, BlockSignatureInvalid)


def test_batches_must_match_the_header(node: Node, factory: BatchFactory) -> None:
    block = _proposal(node, [factory.batch("set a 1")])
    swapped = dataclasses.replace(block, batches=(factory.batch("set a 1"),))
    _refused(node, swapped, BatchRootMismatch)
    twice = _proposal(node, [factory.batch("set a 1")] * 2)
    _refused(node, twice, MalformedBlock, "twice")


def test_an_invalid_batch_in_a_block_is_refused(node: Node, factory: BatchFactory) -> None:
    block = _proposal(node, [factory.batch("set a 1"), factory.batch("fail")])
    _refused(node, block, BlockContainsInvalidBatch, "batch 1 .* invalid: bad kv payload")


def test_a_replayed_batch_is_refused(node: Node, factory: BatchFactory) -> None:
    follower, validator = make_follower(node)
    batch = factory.batch("set a 1")
    node.pool.add(batch, GENESIS_MS)
    first = node.publisher.publish(GENESIS_MS)
    assert first is not None
    certificate = node.store.certificate(first.id)
    assert certificate is not None
    validator.commit(first, certificate)
    replay = _proposal(node, [batch])
    with pytest.raises(BlockReplaysCommitted):
        validator.validate(replay)
    assert follower.head is not None and follower.head.number == 1


def test_commit_needs_a_certificate_from_the_membership(node: Node, factory: BatchFactory) -> None:
    follower, validator = make_follower(node)
    block = _proposal(node, [factory.batch("set a 1")])
    stranger = SoftwareSigner()
    with pytest.raises(CertificateInvalid, match="not a member"):
        validator.commit(block, single_node_certificate(stranger, block))
    assert follower.head is not None and follower.head.number == 0
    validator.commit(block, single_node_certificate(node.signer, block))
    assert follower.head is not None and follower.head.block_id == block.id


def test_a_batch_with_an_unmet_dependency_is_refused(node: Node, factory: BatchFactory) -> None:
    missing = factory.batch("set a 1").transactions[0].header_signature
    block = _proposal(node, [factory.batch("set b 1", dependencies=[missing])])
    _refused(node, block, BlockContainsInvalidBatch, "batch 0 .* depends on transaction")


PAYLOADS = st.sampled_from(
    ["set k{} 1", "incr k{}", "need k{}", "del k{}", "fail", "set k{} 2"]
).flatmap(lambda template: st.integers(0, 3).map(template.format))


@settings(max_examples=25)
@given(st.lists(st.lists(st.lists(PAYLOADS, min_size=1, max_size=3), max_size=6), max_size=5))
def test_a_follower_agrees_with_every_published_block(blocks: list[list[list[str]]]) -> None:
    """Random workloads with invalid batches: whatever the publisher commits, a validator
    re-executing it reaches the same state root (invariant 2)."""
    leader = make_node()
    follower, validator = make_follower(leader)
    factory = BatchFactory()
    for height, batches in enumerate(blocks):
        for payloads in batches:
            leader.pool.add(factory.batch(*payloads), GENESIS_MS + height)
        block = leader.publisher.publish(GENESIS_MS + height)
        if block is None:
            continue
        certificate = leader.store.certificate(block.id)
        assert certificate is not None
        validator.commit(block, certificate)
        assert follower.head == leader.store.head
        assert len(leader.pool) == 0  # every candidate was committed or rejected
