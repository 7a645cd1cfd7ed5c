"""Shared scenario files (scenarios/*.json), fed to every scheduler alike.

Each scenario is a chain of blocks; each block lists batches of transactions written in a
small language (``intkey``: [verb, name, value]; ``asset``: [action, code, ...] with
accounts named by key index) and the expected verdicts, reasons and resulting state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trusted_ledger.processing import BlockExecution, Scheduler
from trusted_ledger.processing.families import asset
from trusted_ledger.processing.families.intkey import (
    INTKEY_NAMESPACE,
    decode_intkey_state,
    intkey_address,
    intkey_payload,
)
from trusted_ledger.txn import Batch, Transaction

from .support import KEYS, Chain, asset_txn, batch, default_registry, fresh_store, schedulers
from .support import transaction as build_transaction

SCENARIO_DIR = Path(__file__).parent / "scenarios"
SCENARIOS = [
    (path.stem, scenario)
    for path in sorted(SCENARIO_DIR.glob("*.json"))
    for scenario in json.loads(path.read_text())
]


def _intkey(spec: dict[str, Any], built: list[list[Transaction]]) -> Transaction:
    verb, name, value = spec["intkey"]
    dependencies = [built[b][t].id for b, t in spec.get("depends_on", [])]
    addresses = [intkey_address(declared) for declared in spec.get("declare", [name])]
    if spec.get("declare_namespace"):
        addresses = [INTKEY_NAMESPACE]
    return build_transaction(
        KEYS[spec.get("signer", 0)],
        spec.get("family", "intkey"),
        intkey_payload(verb, name, value),
        addresses,
        addresses,
        version=spec.get("version", "1.0"),
        dependencies=dependencies,
    )


def _asset(spec: dict[str, Any]) -> Transaction:
    action, code, *args = spec["asset"]
    signer = KEYS[spec["signer"]]
    if action == "create":
        operation = asset.create_operation(code, args[0], args[1])
    elif action == "issue":
        operation = asset.issue_operation(code, KEYS[args[0]].public_key_hex, args[1])
    elif action == "transfer":
        to = KEYS[args[0]].public_key_hex
        operation = asset.transfer_operation(code, signer.public_key_hex, to, args[1])
    elif action == "redeem":
        operation = asset.redeem_operation(code, signer.public_key_hex, args[0])
    else:
        account = KEYS[args[0]].public_key_hex
        operation = asset.freeze_operation(code, account, frozen=not spec.get("unfreeze"))
    return asset_txn(operation, signer)


def _check(
    chain: Chain, batches: list[Batch], execution: BlockExecution, expect: dict[str, Any]
) -> None:
    results = execution.batch_results
    assert [r.valid for r in results] == expect["valid"]
    for result, reason in zip(results, expect.get("reasons", [None] * len(results)), strict=True):
        if reason is not None:
            assert result.reason is not None and reason in result.reason, result.reason
    for index, (result, failed) in enumerate(
        zip(results, expect.get("failed_index", []), strict=False)
    ):
        assert result.invalid_transaction_id == batches[index].transactions[failed].id
    for name, value in expect.get("intkey", {}).items():
        stored = chain.get(intkey_address(name))
        assert (decode_intkey_state(stored).get(name) if stored else None) == value
    for code, balances in expect.get("balances", {}).items():
        for index, balance in balances.items():
            stored = chain.get(asset.holding_address(code, KEYS[int(index)].public_key_hex))
            assert (asset.Holding.decode(stored).balance if stored else 0) == balance
    for code, supply in expect.get("supply", {}).items():
        stored = chain.get(asset.asset_class_address(code))
        assert stored is not None and asset.AssetClass.decode(stored).supply == supply


@pytest.mark.parametrize(
    "scheduler", schedulers(), ids=lambda s: f"{s.name}-{getattr(s, 'workers', 1)}"
)
@pytest.mark.parametrize(("file", "scenario"), SCENARIOS, ids=[s["name"] for _, s in SCENARIOS])
def test_scenario(file: str, scenario: dict[str, Any], scheduler: Scheduler) -> None:
    chain = Chain(fresh_store(), default_registry())
    for block in scenario["blocks"]:
        built: list[list[Transaction]] = []
        for specs in block["batches"]:
            built.append([_intkey(t, built) if "intkey" in t else _asset(t) for t in specs])
        batches = [batch(*txns) for txns in built]
        execution = chain.run(batches, scheduler)
        _check(chain, batches, execution, block["expect"])
