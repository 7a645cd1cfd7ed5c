"""The chain store: atomic commits, the paired checks before a write and on open, queries."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.chain.conftest import CHAIN_ID, GENESIS_MS, Node, make_node
from tests.unit.chain.support import BatchFactory, kv_address
from trusted_ledger.chain import CHAIN_COLUMN_FAMILIES, ChainStore, CommitCertificate, sign_proposal
from trusted_ledger.chain.proposal import single_node_certificate
from trusted_ledger.chain.store import (
    BLOCKS_CF,
    HEAD_KEY,
    HEIGHTS_CF,
    META_CF,
)
from trusted_ledger.errors import (
    BlockDoesNotExtendHead,
    BlockReplaysCommitted,
    CertificateInvalid,
    ChainCorrupted,
    InvalidInput,
    ReplayedTransaction,
    StateRootMismatch,
    StorageFailure,
)
from trusted_ledger.state import STATE_NODES_COLUMN_FAMILY
from trusted_ledger.storage import MemoryDatabase, WriteBatch
from trusted_ledger.txn import CommittedTransactions, build_batch_list, check_against_chain


def _publish(node: Node, factory: BatchFactory, *payloads: str) -> None:
    for payload in payloads:
        node.pool.add(factory.batch(payload), GENESIS_MS)
    assert node.publisher.publish(GENESIS_MS + 1) is not None


def test_genesis_then_blocks_are_queryable(node: Node, factory: BatchFactory) -> None:
    genesis = node.store.block_at(0)
    assert genesis is not None and genesis.header.number == 0
    first, second = factory.batch("set a 1", "set b 2"), factory.batch("incr a")
    node.pool.add(first, GENESIS_MS)
    node.pool.add(second, GENESIS_MS)
    block = node.publisher.publish(GENESIS_MS + 5)
    assert block is not None
    head = node.store.head
    assert head is not None
    assert (head.number, head.block_id, head.timestamp_ms) == (1, block.id, GENESIS_MS + 5)
    assert node.store.block(block.id) == block
    assert node.store.block_bytes(block.id) == block.encode()
    assert node.store.block_at(1) == block and node.store.block_id_at(2) is None
    assert node.store.block_id_of_batch(second.header_signature) == block.id
    for transaction in first.transactions:
        assert node.store.block_id_of_transaction(transaction.header_signature) == block.id
        assert node.store.receipt(transaction.header_signature) is not None
    certificate = node.store.certificate(block.id)
    assert certificate is not None
    certificate.verify(node.membership, block)
    view = node.store.state.view(head.state_root)
    assert view.get(kv_address("a")) == b"2" and view.get(kv_address("b")) == b"2"
    assert view.get(kv_address("genesis")) == b"1"


def test_unknown_and_malformed_ids_are_simply_absent(node: Node) -> None:
    assert node.store.block(b"\x01" * 32) is None
    assert node.store.block(b"short") is None
    assert node.store.block_id_at(-1) is None
    assert node.store.block_id_of_batch("zz" * 64) is None
    assert node.store.block_id_of_transaction("ab") is None
    assert node.store.receipt("00" * 64) is None
    assert node.store.certificate(b"\x00" * 32) is None


def test_committed_among_drives_txn_replay_checks(node: Node, factory: BatchFactory) -> None:
    batch = factory.batch("set x 1")
    _publish_batch(node, batch)
    ids = [t.header_signature for t in batch.transactions]
    chain: CommittedTransactions = node.store  # the txn layer's protocol, checked by mypy
    assert chain.committed_among([*ids, "00" * 64]) == set(ids)
    with pytest.raises(ReplayedTransaction):
        check_against_chain(build_batch_list([batch]), node.store)
    check_against_chain(build_batch_list([factory.batch("set x 2")]), node.store)


def _publish_batch(node: Node, batch: object) -> None:
    node.pool.add(batch, GENESIS_MS)  # type: ignore[arg-type]
    assert node.publisher.publish(GENESIS_MS + 1) is not None


def _next_block(node: Node, factory: BatchFactory, *, number_offset: int = 0, **changes: object):  # type: ignore[no-untyped-def]
    """A signed next block with its outcome, optionally wrong in one header field."""
    head = node.store.head
    assert head is not None
    node.signer.watermark = None  # deliberately wrong blocks: the test plays a faulty node
    batches = [factory.batch("set n 1")]
    outcome = node.executor.execute(batches, head.state_root)
    fields = {
        "chain_id": CHAIN_ID,
        "number": head.number + 1 + number_offset,
        "previous_block_id": head.block_id,
        "state_root": outcome.state_root,
        "batches": batches,
        "timestamp_ms": head.timestamp_ms + 1,
    }
    fields.update(changes)
    block = sign_proposal(node.signer, **fields)  # type: ignore[arg-type]
    return block, outcome


def test_commit_refuses_blocks_that_do_not_extend_the_head(
    node: Node, factory: BatchFactory
) -> None:
    block, outcome = _next_block(node, factory, number_offset=1)
    certificate = single_node_certificate(node.signer, block)
    with pytest.raises(BlockDoesNotExtendHead, match="next number is 1"):
        node.store.commit(block, certificate, outcome.state_update, outcome.receipts)
    block, outcome = _next_block(node, factory, previous_block_id=b"\x07" * 32)
    with pytest.raises(BlockDoesNotExtendHead, match="links to"):
        node.store.commit(
            block, single_node_certificate(node.signer, block), outcome.state_update, {}
        )
    assert node.store.head is not None and node.store.head.number == 0


def test_commit_refuses_a_state_update_of_another_root(node: Node, factory: BatchFactory) -> None:
    block, _ = _next_block(node, factory)
    head = node.store.head
    assert head is not None
    other = node.store.state.update(head.state_root, {kv_address("other"): b"x"})
    with pytest.raises(StateRootMismatch):
        node.store.commit(block, single_node_certificate(node.signer, block), other, {})


def test_commit_refuses_a_certificate_of_another_block(node: Node, factory: BatchFactory) -> None:
    block, outcome = _next_block(node, factory)
    certificate = single_node_certificate(node.signer, block)
    wrong = dataclasses.replace(certificate, block_id=b"\x01" * 32)
    with pytest.raises(CertificateInvalid):
        node.store.commit(block, wrong, outcome.state_update, outcome.receipts)
    wrong_height = dataclasses.replace(certificate, height=7)
    with pytest.raises(CertificateInvalid):
        node.store.commit(block, wrong_height, outcome.state_update, outcome.receipts)


def test_commit_refuses_replayed_batches(node: Node, factory: BatchFactory) -> None:
    batch = factory.batch("set r 1")
    _publish_batch(node, batch)
    head = node.store.head
    assert head is not None
    outcome = node.executor.execute([batch], head.state_root)
    block = sign_proposal(
        node.signer, chain_id=CHAIN_ID, number=2, previous_block_id=head.block_id,
        state_root=outcome.state_root, batches=[batch], timestamp_ms=head.timestamp_ms,
    )  # fmt: skip
    with pytest.raises(BlockReplaysCommitted):
        node.store.commit(
            block, single_node_certificate(node.signer, block), outcome.state_update, {}
        )


def test_commit_refuses_receipts_of_foreign_transactions(node: Node, factory: BatchFactory) -> None:
    block, outcome = _next_block(node, factory)
    with pytest.raises(InvalidInput, match="receipts"):
        node.store.commit(
            block, single_node_certificate(node.signer, block), outcome.state_update,
            {"ab" * 64: b"x"},
        )  # fmt: skip
    assert node.store.block(block.id) is None  # nothing of the refused block was written


def test_reopen_finds_the_same_head(node: Node, factory: BatchFactory) -> None:
    _publish(node, factory, "set a 1")
    _publish(node, factory, "set b 1")
    reopened = ChainStore(node.db, CHAIN_ID)
    assert reopened.head == node.store.head


def test_open_refuses_another_chain_id(node: Node) -> None:
    with pytest.raises(InvalidInput, match="holds chain"):
        ChainStore(node.db, "other-chain")


def _corrupt(node: Node, column_family: str, key: bytes, value: bytes | None) -> None:
    batch = WriteBatch()
    if value is None:
        batch.delete(column_family, key)
    else:
        batch.put(column_family, key, value)
    node.db.write(batch)


@pytest.mark.parametrize(
    "damage",
    ["head block missing", "head block torn", "state root missing", "height index ahead",
     "head record short", "head record missing"],
)  # fmt: skip
def test_open_refuses_an_inconsistent_store(node: Node, factory: BatchFactory, damage: str) -> None:
    _publish(node, factory, "set a 1")
    head = node.store.head
    assert head is not None
    if damage == "head block missing":
        _corrupt(node, BLOCKS_CF, head.block_id, None)
    elif damage == "head block torn":
        data = node.db.get(BLOCKS_CF, head.block_id)
        assert data is not None
        _corrupt(node, BLOCKS_CF, head.block_id, data[:-1])
    elif damage == "state root missing":
        _corrupt(node, STATE_NODES_COLUMN_FAMILY, head.state_root, None)
    elif damage == "height index ahead":
        _corrupt(node, HEIGHTS_CF, (head.number + 1).to_bytes(8, "big"), head.block_id)
    elif damage == "head record short":
        _corrupt(node, META_CF, HEAD_KEY, b"\x00")
    else:
        _corrupt(node, META_CF, HEAD_KEY, None)
    with pytest.raises(ChainCorrupted):
        ChainStore(node.db, CHAIN_ID)


def test_a_fresh_store_has_no_head() -> None:
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    assert store.head is None
    with pytest.raises(InvalidInput, match="column families"):
        ChainStore(MemoryDatabase(), CHAIN_ID)


def test_certificate_is_stored_per_block(node: Node, factory: BatchFactory) -> None:
    _publish(node, factory, "set c 1")
    head = node.store.head
    assert head is not None
    certificate = node.store.certificate(head.block_id)
    assert isinstance(certificate, CommitCertificate)
    assert certificate.height == 1 and certificate.block_id == head.block_id
    assert make_node().store.head is not None


def test_a_failed_write_leaves_head_and_store_unchanged(
    node: Node, factory: BatchFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = node.store.head
    block, outcome = _next_block(node, factory)
    certificate = single_node_certificate(node.signer, block)

    def failing_write(batch: WriteBatch, *, sync: bool = True) -> None:
        raise StorageFailure("disk full")

    monkeypatch.setattr(node.db, "write", failing_write)
    with pytest.raises(StorageFailure):
        node.store.commit(block, certificate, outcome.state_update, outcome.receipts)
    monkeypatch.undo()
    assert node.store.head == before and node.store.block(block.id) is None
    node.store.commit(block, certificate, outcome.state_update, outcome.receipts)
    assert ChainStore(node.db, CHAIN_ID).head == node.store.head
