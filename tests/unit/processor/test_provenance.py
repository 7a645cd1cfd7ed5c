"""The provenance family's rules, run in process through processing's executor."""

from __future__ import annotations

import cbor2
import pytest

from tests.unit.processing.support import KEYS, Chain, batch, fresh_store, transaction
from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing import HandlerRegistry
from trusted_ledger.processor.examples import provenance
from trusted_ledger.processor.examples.provenance import (
    ItemRecord,
    ProvenanceHandler,
    ProvenanceOperation,
    handover_operation,
    item_address,
    register_operation,
)
from trusted_ledger.txn import SigningKey, Transaction

FACTORY, CARRIER, RETAILER = KEYS[0], KEYS[1], KEYS[2]
ITEM = "pallet-0042"


def provenance_txn(operation: ProvenanceOperation, key: SigningKey) -> Transaction:
    return transaction(key, "provenance", operation.payload, operation.inputs, operation.outputs)


def new_chain() -> Chain:
    return Chain(fresh_store(), HandlerRegistry([ProvenanceHandler()]))


def record(chain: Chain, item: str = ITEM) -> ItemRecord:
    stored = chain.get(item_address(item))
    assert stored is not None
    return ItemRecord.decode(stored)


def test_register_then_hand_over_keeps_the_ordered_custody_history() -> None:
    chain = new_chain()
    register = provenance_txn(register_operation(ITEM, "40 crates of apples"), FACTORY)
    to_carrier = provenance_txn(handover_operation(ITEM, CARRIER.public_key_hex), FACTORY)
    to_retailer = provenance_txn(handover_operation(ITEM, RETAILER.public_key_hex), CARRIER)
    # Two blocks, the second with two batches: sequence numbers do not depend on blocks.
    chain.run_all([batch(register)])
    execution = chain.run_all([batch(to_carrier), batch(to_retailer)])
    assert all(result.valid for result in execution.batch_results)

    item = record(chain)
    assert item.holder == RETAILER.public_key_hex
    assert item.description == "40 crates of apples"
    assert [(e.seq, e.holder, e.from_holder, e.transaction_id) for e in item.history] == [
        (0, FACTORY.public_key_hex, None, register.id),
        (1, CARRIER.public_key_hex, FACTORY.public_key_hex, to_carrier.id),
        (2, RETAILER.public_key_hex, CARRIER.public_key_hex, to_retailer.id),
    ]
    events = [receipt.events for receipt in execution.receipts]
    assert [event.event_type for (event,) in events] == ["provenance/handed-over"] * 2
    assert dict(events[1][0].attributes)["seq"] == "2"


def test_state_is_canonical_cbor() -> None:
    chain = new_chain()
    register = provenance_txn(register_operation(ITEM, "d"), FACTORY)
    chain.run_all([batch(register)])
    stored = chain.get(item_address(ITEM))
    holder = FACTORY.public_key_hex
    assert stored == cbor2.dumps(
        {
            "item": ITEM,
            "description": "d",
            "holder": holder,
            "history": [{"seq": 0, "holder": holder, "from": None, "txn": register.id}],
        },
        canonical=True,
    )
    assert item_address(ITEM).startswith(provenance.PROVENANCE_NAMESPACE)
    assert len(item_address(ITEM)) == 70


def _reason(chain: Chain, *transactions: Transaction) -> str | None:
    (result,) = chain.run_all([batch(*transactions)]).batch_results
    return None if result.valid else result.reason


def test_only_the_current_holder_may_hand_over() -> None:
    chain = new_chain()
    chain.run_all([batch(provenance_txn(register_operation(ITEM, "d"), FACTORY))])
    # The receiver cannot pull the item to itself, and nobody else can redirect it.
    for thief in (CARRIER, RETAILER):
        stolen = provenance_txn(handover_operation(ITEM, thief.public_key_hex), thief)
        assert _reason(chain, stolen) == f"only the current holder may hand item {ITEM!r} over"
    assert record(chain).holder == FACTORY.public_key_hex
    # After a handover the former holder has lost the right.
    chain.run_all(
        [batch(provenance_txn(handover_operation(ITEM, CARRIER.public_key_hex), FACTORY))]
    )
    back = provenance_txn(handover_operation(ITEM, RETAILER.public_key_hex), FACTORY)
    assert _reason(chain, back) == f"only the current holder may hand item {ITEM!r} over"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"Action": "steal", "Item": ITEM}, "Action must be one of register, handover"),
        ({"Action": "register", "Item": "", "Description": "d"}, "Item must be"),
        ({"Action": "register", "Item": "-x", "Description": "d"}, "Item must be"),
        ({"Action": "register", "Item": ITEM}, "Description must be a text string"),
        ({"Action": "register", "Item": ITEM, "Description": "x" * 257}, "Description must be at"),
        ({"Action": "handover", "Item": "unknown", "To": KEYS[1].public_key_hex}, "item 'unknown'"),
    ],
)
def test_malformed_payloads_are_rejected(payload: dict[str, object], reason: str) -> None:
    chain = new_chain()
    item = payload["Item"]
    address = item_address(item) if isinstance(item, str) else item_address(ITEM)
    txn = transaction(FACTORY, "provenance", cbor2.dumps(payload), [address], [address])
    got = _reason(chain, txn)
    assert got is not None
    assert got.startswith(reason)


def test_handover_rules_register_twice_self_handover_bad_key() -> None:
    chain = new_chain()
    chain.run_all([batch(provenance_txn(register_operation(ITEM, "d"), FACTORY))])
    again = provenance_txn(register_operation(ITEM, "other"), CARRIER)
    assert _reason(chain, again) == f"item {ITEM!r} is already registered"
    to_self = provenance_txn(handover_operation(ITEM, FACTORY.public_key_hex), FACTORY)
    assert _reason(chain, to_self) == f"item {ITEM!r} is already held by {FACTORY.public_key_hex}"
    bad_key = provenance_txn(handover_operation(ITEM, "02" + "A" * 64), FACTORY)
    assert _reason(chain, bad_key) == (
        "To must be a compressed secp256k1 public key (66 lowercase hex chars)"
    )


def test_custody_history_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "custody_entries_max", 2)
    chain = new_chain()
    chain.run_all([batch(provenance_txn(register_operation(ITEM, "d"), FACTORY))])
    chain.run_all(
        [batch(provenance_txn(handover_operation(ITEM, CARRIER.public_key_hex), FACTORY))]
    )
    third = provenance_txn(handover_operation(ITEM, RETAILER.public_key_hex), CARRIER)
    assert _reason(chain, third) == f"item {ITEM!r} has reached custody_entries_max=2"


def test_decode_refuses_a_record_whose_history_is_out_of_order() -> None:
    entry = {"seq": 1, "holder": "a", "from": None, "txn": "t"}
    data = cbor2.dumps({"item": ITEM, "description": "d", "holder": "a", "history": [entry]})
    with pytest.raises(InvalidTransaction, match="not numbered"):
        ItemRecord.decode(data)
