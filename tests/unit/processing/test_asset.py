"""The asset family: rules, and conservation of supply under random operation sequences."""

from __future__ import annotations

import os
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trusted_ledger.processing.families import asset
from trusted_ledger.txn import Transaction

from .support import KEYS, Chain, asset_txn, batch, default_registry, fresh_store, transaction

ISSUER = KEYS[0]
HOLDERS = KEYS[:5]  # the issuer holds units too, so that redeem has something to burn
CODE = "USD"


def _balance(chain: Chain, key_index: int, code: str = CODE) -> int:
    stored = chain.get(asset.holding_address(code, KEYS[key_index].public_key_hex))
    return asset.Holding.decode(stored).balance if stored else 0


def _supply(chain: Chain, code: str = CODE) -> int:
    stored = chain.get(asset.asset_class_address(code))
    assert stored is not None
    return asset.AssetClass.decode(stored).supply


def _created_chain() -> Chain:
    chain = Chain(fresh_store(), default_registry())
    chain.run_all([batch(asset_txn(asset.create_operation(CODE, "currency", 2), ISSUER))])
    return chain


def test_class_record_encoding_is_canonical_cbor() -> None:
    chain = _created_chain()
    stored = chain.get(asset.asset_class_address(CODE))
    assert stored == cbor2.dumps(
        {
            "code": CODE,
            "kind": "currency",
            "decimals": 2,
            "issuer": ISSUER.public_key_hex,
            "supply": 0,
        },
        canonical=True,
    )
    assert asset.asset_class_address(CODE).startswith(asset.ASSET_NAMESPACE + "00")


def test_transfer_emits_event_and_empties_delete_the_holding() -> None:
    chain = _created_chain()
    chain.run_all(
        [batch(asset_txn(asset.issue_operation(CODE, KEYS[1].public_key_hex, 5), ISSUER))]
    )
    move = asset.transfer_operation(CODE, KEYS[1].public_key_hex, KEYS[2].public_key_hex, 5)
    execution = chain.run_all([batch(asset_txn(move, KEYS[1]))])
    (receipt,) = execution.receipts
    (event,) = receipt.events
    assert event.event_type == "asset/transferred"
    assert ("amount", "5") in event.attributes and ("asset", CODE) in event.attributes
    # The sender's holding is now empty and unfrozen: deleted rather than stored as zero.
    assert chain.get(asset.holding_address(CODE, KEYS[1].public_key_hex)) is None
    assert _balance(chain, 2) == 5


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"Action": "melt", "Asset": CODE}, "Action must be one of"),
        ({"Action": "create", "Asset": "usd", "Kind": "currency", "Decimals": 2}, "asset code"),
        ({"Action": "create", "Asset": "X", "Kind": "bond", "Decimals": 2}, "Kind must be"),
        ({"Action": "create", "Asset": "X", "Kind": "currency", "Decimals": 19}, "Decimals"),
        ({"Action": "transfer", "Asset": CODE, "To": "02" + "a" * 64, "Amount": 0}, "Amount"),
        ({"Action": "transfer", "Asset": CODE, "To": "04" + "a" * 64, "Amount": 1}, "To must"),
        ({"Action": "transfer", "Asset": "EUR", "To": "02" + "a" * 64, "Amount": 1}, "not exist"),
    ],
)
def test_invalid_payloads(payload: dict[str, object], reason: str) -> None:
    chain = _created_chain()
    everything = [asset.ASSET_NAMESPACE]
    txn = transaction(KEYS[1], "asset", cbor2.dumps(payload), everything, everything)
    result = chain.run_all([batch(txn)]).batch_results[0]
    assert not result.valid and reason in (result.reason or ""), result.reason


def test_self_transfer_and_overflowing_issue_are_rejected() -> None:
    chain = _created_chain()
    me = KEYS[1].public_key_hex
    issue_all = asset_txn(asset.issue_operation(CODE, me, asset.units_max), ISSUER)
    one_more = asset_txn(asset.issue_operation(CODE, me, 1), ISSUER)
    to_self = asset_txn(asset.transfer_operation(CODE, me, me, 1), KEYS[1])
    results = chain.run_all([batch(issue_all), batch(one_more), batch(to_self)]).batch_results
    assert [r.valid for r in results] == [True, False, False]
    assert "would exceed" in (results[1].reason or "")
    assert "same account" in (results[2].reason or "")
    assert _supply(chain) == asset.units_max


# --- property: conservation -----------------------------------------------------------------

operations = st.one_of(
    st.tuples(st.just("issue"), st.integers(0, 4), st.integers(1, 60)),
    st.tuples(st.just("transfer"), st.integers(0, 4), st.integers(0, 4), st.integers(1, 80)),
    st.tuples(st.just("redeem"), st.integers(1, 60)),
    st.tuples(st.just("freeze"), st.integers(0, 4), st.booleans()),
    st.tuples(st.just("forged_issue"), st.integers(1, 4), st.integers(1, 60)),
)


def _operation_txn(op: tuple[Any, ...]) -> Transaction:
    kind = op[0]
    if kind == "issue":
        _, to, amount = op
        return asset_txn(asset.issue_operation(CODE, KEYS[to].public_key_hex, amount), ISSUER)
    if kind == "forged_issue":  # a holder pretending to issue
        _, signer, amount = op
        operation = asset.issue_operation(CODE, KEYS[signer].public_key_hex, amount)
        return asset_txn(operation, KEYS[signer])
    if kind == "transfer":
        _, sender, to, amount = op
        operation = asset.transfer_operation(
            CODE,
            KEYS[sender].public_key_hex,
            KEYS[to].public_key_hex,
            amount,
        )
        return asset_txn(operation, KEYS[sender])
    if kind == "redeem":
        return asset_txn(asset.redeem_operation(CODE, ISSUER.public_key_hex, op[1]), ISSUER)
    _, account, frozen = op
    operation = asset.freeze_operation(CODE, KEYS[account].public_key_hex, frozen=frozen)
    return asset_txn(operation, ISSUER)


@settings(
    max_examples=400 if os.environ.get("TL_SOAK") == "1" else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    blocks=st.lists(
        st.lists(st.lists(operations, min_size=1, max_size=3), min_size=1, max_size=4),
        min_size=1,
        max_size=5,
    )
)
def test_supply_changes_only_by_issue_and_redeem(
    blocks: list[list[list[tuple[Any, ...]]]],
) -> None:
    chain = _created_chain()
    issued = redeemed = 0
    for block in blocks:
        batches = [batch(*(_operation_txn(op) for op in ops)) for ops in block]
        execution = chain.run_all(batches)
        for ops, result in zip(block, execution.batch_results, strict=True):
            if result.valid:
                issued += sum(op[2] for op in ops if op[0] == "issue")
                redeemed += sum(op[1] for op in ops if op[0] == "redeem")
        balances = [_balance(chain, index) for index in range(len(HOLDERS))]
        assert all(balance >= 0 for balance in balances)
        assert sum(balances) == _supply(chain) == issued - redeemed
        # A forged issue can never be valid.
        for ops, result in zip(block, execution.batch_results, strict=True):
            if any(op[0] == "forged_issue" for op in ops):
                assert not result.valid
