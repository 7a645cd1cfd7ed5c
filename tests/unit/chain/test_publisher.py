"""The publisher: cutting blocks by count, bytes and time; dropping invalid batches with a
reason; moving to the next round when the guard refuses a proposal."""

from __future__ import annotations

import pytest

from tests.unit.chain.conftest import GENESIS_MS, Node, make_follower, make_node
from tests.unit.chain.support import BatchFactory, KvExecutor, SoftwareSigner, kv_address
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BatchStatus,
    BlockPublisher,
    ChainStore,
    CommitCertificate,
    Membership,
    PublisherLimits,
    batch_status,
    sign_commit_vote,
)
from trusted_ledger.chain.proposal import proposal_rounds_max
from trusted_ledger.custody import Position
from trusted_ledger.custody.guard import Watermark
from trusted_ledger.errors import CertificateInvalid, InternalError, InvalidInput, ProposalRefused
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import Batch, TransactionBuilder, build_batch


def test_publish_commits_pending_batches_in_order(node: Node, factory: BatchFactory) -> None:
    batches = [factory.batch("set a 1"), factory.batch("incr a"), factory.batch("incr a")]
    for batch in batches:
        node.pool.add(batch, GENESIS_MS)
    block = node.publisher.publish(GENESIS_MS + 10)
    assert block is not None and block.batches == tuple(batches)
    assert len(node.pool) == 0
    head = node.store.head
    assert head is not None and head.block_id == block.id
    assert node.store.state.view(head.state_root).get(kv_address("a")) == b"3"
    assert [purpose for purpose, _, _ in node.signer.signed[-2:]] == ["block", "vote"]
    assert node.publisher.publish(GENESIS_MS + 20) is None  # nothing pending: no empty block


def test_invalid_batches_are_dropped_with_their_reason(node: Node, factory: BatchFactory) -> None:
    good, bad, malformed = factory.batch("set a 1"), factory.batch("fail"), factory.batch("nope")
    for batch in (good, bad, malformed):
        node.pool.add(batch, GENESIS_MS)
    block = node.publisher.publish(GENESIS_MS)
    assert block is not None and block.batches == (good,)
    assert node.pool.rejection(bad.header_signature) == "bad kv payload b'fail'"
    assert node.pool.rejection(malformed.header_signature) == "bad kv payload b'nope'"
    assert len(node.pool) == 0
    # A validator re-executing the block agrees on its state root (invariant 2).
    _, validator = make_follower(node)
    validator.validate(block)


def test_only_invalid_batches_make_no_block(node: Node, factory: BatchFactory) -> None:
    node.pool.add(factory.batch("fail"), GENESIS_MS)
    assert node.publisher.publish(GENESIS_MS) is None
    head = node.store.head
    assert head is not None and head.number == 0


def test_committed_batches_and_replayed_transactions_leave_the_pool(
    node: Node, factory: BatchFactory
) -> None:
    batch = factory.batch("set a 1")
    node.pool.add(batch, GENESIS_MS)
    node.publisher.publish(GENESIS_MS)
    node.pool.add(batch, GENESIS_MS)  # resubmitted after commit (the API would refuse it)
    assert node.publisher.publish(GENESIS_MS) is None
    assert batch.header_signature not in node.pool
    assert node.pool.rejection(batch.header_signature) is None  # committed, not invalid
    # Another batch around an already committed transaction is a replay.
    replay = factory.batch("set z 1")
    rewrapped = build_batch(factory.key, [*batch.transactions, *replay.transactions])
    node.pool.add(rewrapped, GENESIS_MS)
    assert node.publisher.publish(GENESIS_MS) is None
    assert node.pool.rejection(rewrapped.header_signature) == "replays a committed transaction"
    # Two pending batches around one transaction: the first wins.
    fresh = factory.batch("set y 1")
    twin = build_batch(factory.key, [*fresh.transactions, *factory.batch("set w 1").transactions])
    node.pool.add(fresh, GENESIS_MS)
    node.pool.add(twin, GENESIS_MS)
    block = node.publisher.publish(GENESIS_MS)
    assert block is not None and block.batches == (fresh,)
    reason = node.pool.rejection(twin.header_signature)
    assert reason == "repeats a transaction of an earlier pending batch"


def test_blocks_are_cut_by_count_and_bytes(factory: BatchFactory) -> None:
    node = make_node()
    batches = [factory.batch(f"set k{i} {i}") for i in range(7)]
    for batch in batches:
        node.pool.add(batch, GENESIS_MS)
    size = len(batches[0].encode())
    node.publisher.limits = PublisherLimits(block_batches_max=3, block_bytes_max=10**6)
    block = node.publisher.publish(GENESIS_MS)
    assert block is not None and len(block.batches) == 3
    node.publisher.limits = PublisherLimits(block_batches_max=100, block_bytes_max=2 * size + 5)
    block = node.publisher.publish(GENESIS_MS)
    assert block is not None and len(block.batches) == 2
    assert len(node.pool) == 2


def test_due_by_time_count_or_bytes(factory: BatchFactory) -> None:
    node = make_node()
    publisher = BlockPublisher(
        node.store, node.pool, node.executor, node.signer,
        PublisherLimits(block_batches_max=2, block_bytes_max=10**6, block_interval_ms=100),
    )  # fmt: skip
    assert not publisher.due(GENESIS_MS) and publisher.publish_if_due(GENESIS_MS) is None
    node.pool.add(factory.batch("set a 1"), GENESIS_MS)
    assert not publisher.due(GENESIS_MS + 99)
    assert publisher.due(GENESIS_MS + 100)
    node.pool.add(factory.batch("set b 1"), GENESIS_MS + 50)
    assert publisher.due(GENESIS_MS + 51)  # a full block need not wait
    block = publisher.publish_if_due(GENESIS_MS + 51)
    assert block is not None and block.header.timestamp_ms == GENESIS_MS + 51


def test_timestamps_never_run_backwards(node: Node, factory: BatchFactory) -> None:
    node.pool.add(factory.batch("set a 1"), GENESIS_MS)
    block = node.publisher.publish(GENESIS_MS - 5_000)  # the clock stepped back
    assert block is not None and block.header.timestamp_ms == GENESIS_MS


def test_a_refused_proposal_moves_to_the_next_round(node: Node, factory: BatchFactory) -> None:
    # As after a crash between signing a proposal at height 1 and committing it.
    node.signer.watermark = Watermark(Position(1, 0, 3), b"\x42" * 32)
    node.pool.add(factory.batch("set a 1"), GENESIS_MS)
    block = node.publisher.publish(GENESIS_MS)
    assert block is not None and block.header.consensus_round == 1
    certificate = node.store.certificate(block.id)
    assert certificate is not None and certificate.consensus_round == 1
    node.signer.watermark = Watermark(Position(2, proposal_rounds_max, 1), b"\x42" * 32)
    node.pool.add(factory.batch("set b 1"), GENESIS_MS)
    with pytest.raises(ProposalRefused, match="running twice"):
        node.publisher.publish(GENESIS_MS)
    assert len(node.pool) == 1  # the batch waits for a later attempt


def test_publish_needs_genesis_and_sane_limits() -> None:
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), "x")
    publisher = BlockPublisher(store, BatchPool(), KvExecutor(store.state), SoftwareSigner())
    with pytest.raises(InternalError, match="genesis"):
        publisher.publish(0)
    for bad in ({"block_batches_max": 0}, {"block_bytes_max": 2**40}, {"block_interval_ms": -1}):
        with pytest.raises(InvalidInput):
            PublisherLimits(**bad)


def _first_transaction(batch: Batch) -> str:
    return batch.transactions[0].header_signature


def test_dependencies_must_be_committed_or_earlier(node: Node, factory: BatchFactory) -> None:
    base = factory.batch("set base 1")
    node.pool.add(base, GENESIS_MS)
    node.publisher.publish(GENESIS_MS)
    on_committed = factory.batch("set c 1", dependencies=[_first_transaction(base)])
    first = factory.batch("set d 1")
    on_earlier = factory.batch("set e 1", dependencies=[_first_transaction(first)])
    for batch in (on_committed, first, on_earlier):
        node.pool.add(batch, GENESIS_MS)
    block = node.publisher.publish(GENESIS_MS)
    assert block is not None and block.batches == (on_committed, first, on_earlier)


def test_dropping_a_batch_re_executes_until_every_batch_is_valid(
    node: Node, factory: BatchFactory
) -> None:
    invalid = factory.batch("fail")
    setter = factory.batch("set k 1", dependencies=[_first_transaction(invalid)])
    needs_k = factory.batch("need k")  # valid only while the setter stays in the block
    keeper = factory.batch("set other 1")
    for batch in (invalid, setter, needs_k, keeper):
        node.pool.add(batch, GENESIS_MS)
    calls = node.executor.calls
    block = node.publisher.publish(GENESIS_MS)
    assert block is not None and block.batches == (keeper,)
    assert node.executor.calls - calls == 3  # all four, then without invalid, then keeper
    assert node.pool.rejection(invalid.header_signature) == "bad kv payload b'fail'"
    reason = node.pool.rejection(setter.header_signature)
    assert reason is not None and reason.startswith("dependency ")
    assert node.pool.rejection(needs_k.header_signature) == "k is not set"
    _, validator = make_follower(node)
    validator.validate(block)


def _later_batch(factory: BatchFactory, dependencies: tuple[str, ...] = ()) -> Batch:
    """A batch of family 'later', which the test executor does not serve yet."""
    builder = TransactionBuilder(factory.key, "later", "1.0")
    transaction = builder.build(
        b"x", inputs=["aaaaaa"], outputs=["aaaaaa"], dependencies=dependencies
    )
    return build_batch(factory.key, [transaction])


def test_unserved_family_waits_in_the_pool_with_its_reason(
    node: Node, factory: BatchFactory
) -> None:
    """No processor for a family is not a verdict: the batch stays pending (status says
    why), a batch depending on it waits too, and the batches around them commit."""
    waiting = _later_batch(factory)
    dependent = factory.batch("set b 1", dependencies=[waiting.transactions[0].header_signature])
    after = factory.batch("set a 1")
    for batch in (waiting, dependent, after):
        node.pool.add(batch, GENESIS_MS)
    block = node.publisher.publish(GENESIS_MS + 10)
    assert block is not None and block.batches == (after,)
    report = batch_status(waiting.header_signature, node.store, node.pool)
    assert report.status is BatchStatus.PENDING
    assert report.reason == "waiting for family 'later'"
    dependent_report = batch_status(dependent.header_signature, node.store, node.pool)
    assert dependent_report.status is BatchStatus.PENDING
    assert dependent_report.reason is not None and "itself waiting" in dependent_report.reason
    assert node.pool.rejection(dependent.header_signature) is None
    assert node.publisher.publish(GENESIS_MS + 20) is None  # still nothing it can execute


def test_propose_then_commit_with_a_quorum_certificate(node: Node, factory: BatchFactory) -> None:
    """The BFT split of publish: a proposal changes nothing until it is committed with a
    certificate of other members' votes, which a follower accepts too."""
    others = [SoftwareSigner() for _ in range(3)]
    membership = Membership([node.signer.public_key, *(s.public_key for s in others)])
    follower_store, validator = make_follower(node)
    validator.membership = membership
    batch = factory.batch("set a 7")
    node.pool.add(batch, GENESIS_MS)
    proposed = node.publisher.propose(GENESIS_MS + 10)
    assert proposed is not None
    head = node.store.head
    assert head is not None and head.number == 0 and batch.header_signature in node.pool
    block = proposed.block
    assert validator.validate(block).state_root == proposed.outcome.state_root
    header = block.header
    votes = [
        sign_commit_vote(signer, header.chain_id, header.number, header.consensus_round, block.id)
        for signer in others  # a quorum of 4 is 3: the proposer's own vote is not needed
    ]
    certificate = CommitCertificate.from_votes(
        header.chain_id, header.number, header.consensus_round, block.id, votes
    )
    node.publisher.commit(proposed, certificate)
    validator.commit(block, certificate)
    assert node.store.head == follower_store.head
    assert batch.header_signature not in node.pool
    too_few = CommitCertificate.from_votes(
        header.chain_id, header.number, header.consensus_round, block.id, votes[:2]
    )
    with pytest.raises(CertificateInvalid, match="quorum"):
        too_few.verify(membership, block)
