"""The chain over the real processing layer: a publisher executing intkey and asset blocks
serially, a validator on a second store re-executing them with the parallel scheduler."""

from __future__ import annotations

import cbor2

from tests.unit.chain.conftest import CHAIN_ID, GENESIS_MS
from tests.unit.chain.support import SoftwareSigner
from tests.unit.processing.support import KEYS, asset_txn, batch, intkey_txn
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BatchStatus,
    BlockPublisher,
    BlockValidator,
    ChainStore,
    Membership,
    batch_status,
    build_genesis,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor, encode_receipt
from trusted_ledger.processing import (
    Event,
    HandlerRegistry,
    ParallelScheduler,
    SerialScheduler,
    StateChange,
    TransactionReceipt,
)
from trusted_ledger.processing.families import AssetHandler, IntkeyHandler, asset
from trusted_ledger.processing.families.intkey import decode_intkey_state, intkey_address
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import Batch

CODE = "USD"
ISSUER, ALICE, BOB = KEYS[0], KEYS[1], KEYS[2]


def _registry() -> HandlerRegistry:
    return HandlerRegistry([IntkeyHandler(), AssetHandler()])


def _blocks() -> list[list[Batch]]:
    """Three blocks' worth of batches; the second carries an intkey batch that underflows."""
    alice, bob = ALICE.public_key_hex, BOB.public_key_hex
    return [
        [
            batch(intkey_txn("set", "a", 10)),
            batch(asset_txn(asset.create_operation(CODE, "currency", 2), ISSUER)),
            batch(intkey_txn("set", "b", 5), intkey_txn("inc", "b", 1)),
        ],
        [
            batch(asset_txn(asset.issue_operation(CODE, alice, 100), ISSUER)),
            batch(intkey_txn("inc", "a", 5)),
            batch(intkey_txn("dec", "b", 7)),  # 6 - 7 < 0: invalid
        ],
        [
            batch(asset_txn(asset.transfer_operation(CODE, alice, bob, 40), ALICE)),
            batch(intkey_txn("inc", "a", 1), intkey_txn("dec", "b", 6)),
        ],
    ]


def test_parallel_validator_reaches_the_serial_publishers_roots() -> None:
    signer = SoftwareSigner()
    leader = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    genesis, genesis_certificate = build_genesis(
        signer, CHAIN_ID, leader.state.update(EMPTY_ROOT, {}), GENESIS_MS
    )
    leader.commit(genesis, genesis_certificate, leader.state.update(EMPTY_ROOT, {}), {})
    follower = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    follower.commit(genesis, genesis_certificate, follower.state.update(EMPTY_ROOT, {}), {})

    pool = BatchPool()
    publisher = BlockPublisher(
        leader, pool, ProcessingBlockExecutor(_registry(), leader.state, SerialScheduler()), signer
    )
    parallel = ProcessingBlockExecutor(_registry(), follower.state, ParallelScheduler(workers=4))
    assert parallel.scheduler.name != SerialScheduler.name
    validator = BlockValidator(follower, parallel, Membership([signer.public_key]))

    blocks = _blocks()
    invalid = blocks[1][2]
    for number, batches in enumerate(blocks, start=1):
        now_ms = GENESIS_MS + 10 * number
        for pending in batches:
            pool.add(pending, now_ms)
        block = publisher.publish(now_ms)
        assert block is not None and block.number == number
        expected = tuple(b for b in batches if b is not invalid)
        assert block.batches == expected
        certificate = leader.certificate(block.id)
        assert certificate is not None
        outcome = validator.commit(block, certificate)
        # Invariant 2: re-execution on the other store, other scheduler, gives the same root.
        assert outcome.state_root == block.header.state_root
        assert all(result.valid and result.reason == "" for result in outcome.batch_results)
        for transaction_id in block.transaction_ids:
            stored = leader.receipt(transaction_id)
            assert stored is not None and stored == follower.receipt(transaction_id)

    leader_head, follower_head = leader.head, follower.head
    assert leader_head is not None and follower_head is not None
    assert leader_head.state_root == follower_head.state_root
    assert leader_head.block_id == follower_head.block_id
    assert len(pool) == 0

    report = batch_status(invalid.header_signature, leader, pool)
    assert report.status is BatchStatus.INVALID
    assert report.reason == 'Verb is "dec", but result would be less than 0'

    state = follower.state.view(follower_head.state_root)
    assert decode_intkey_state(state.get(intkey_address("a")) or b"") == {"a": 16}
    assert decode_intkey_state(state.get(intkey_address("b")) or b"") == {"b": 0}
    holding = state.get(asset.holding_address(CODE, BOB.public_key_hex))
    assert holding is not None and asset.Holding.decode(holding).balance == 40


def test_receipts_are_canonical_cbor_with_the_documented_fields() -> None:
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    executor = ProcessingBlockExecutor(_registry(), store.state)
    setter = batch(intkey_txn("set", "a", 10))
    bad = batch(intkey_txn("inc", "missing", 1))
    outcome = executor.execute([setter, bad], EMPTY_ROOT)
    assert [(r.batch_id, r.valid) for r in outcome.batch_results] == [
        (setter.header_signature, True),
        (bad.header_signature, False),
    ]
    assert outcome.batch_results[0].reason == ""
    assert outcome.batch_results[1].reason == 'Verb is "inc" but name "missing" not in state'
    transaction = setter.transactions[0]
    assert list(outcome.receipts) == [transaction.header_signature]
    encoded = outcome.receipts[transaction.header_signature]
    address = intkey_address("a")
    value = cbor2.dumps({"a": 10}, canonical=True)
    assert cbor2.loads(encoded) == {
        "transaction_id": transaction.header_signature,
        "family_name": "intkey",
        "state_changes": [[address, value]],
        "events": [],
        "data": [],
    }
    assert cbor2.dumps(cbor2.loads(encoded), canonical=True) == encoded
    assert outcome.state_root == store.state.update(EMPTY_ROOT, {address: value}).root


def test_receipt_encoding_keeps_deletes_events_and_data() -> None:
    receipt = TransactionReceipt(
        "ab" * 64,
        "asset",
        (StateChange("01" * 35, None), StateChange("02" * 35, b"\x01")),
        (Event("asset/transfer", (("Asset", "USD"), ("Amount", "5")), b"\x00"),),
        (b"x",),
    )
    assert cbor2.loads(encode_receipt(receipt)) == {
        "transaction_id": "ab" * 64,
        "family_name": "asset",
        "state_changes": [["01" * 35, None], ["02" * 35, b"\x01"]],
        "events": [
            {
                "event_type": "asset/transfer",
                "attributes": [["Asset", "USD"], ["Amount", "5"]],
                "data": b"\x00",
            }
        ],
        "data": [b"x"],
    }
