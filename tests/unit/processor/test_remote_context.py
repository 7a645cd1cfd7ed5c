"""``RemoteContext`` against the node's ``HandlerContext``: every call and every misuse gives
the same verdict, reason, state and receipt, built in and through a kit processor."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.processing.support import KEYS, Chain, batch, fresh_store, summary, transaction
from trusted_ledger.errors import TransactionProcessingFailed
from trusted_ledger.processing import HandlerRegistry
from trusted_ledger.processing.context import (
    events_per_transaction_max,
    receipt_data_bytes_max,
    receipt_data_entries_max,
)
from trusted_ledger.txn import Batch

from .probe_handler import ProbeHandler, probe_address, probe_payload
from .support import ProcessorProcess, processor_server, wait_registered

pytestmark = pytest.mark.timeout(60)
PROBE_SPEC = "tests.unit.processor.probe_handler:ProbeHandler"
DECLARED = probe_address(1)
UNDECLARED = probe_address(2)


def probe(action: str, **fields: object) -> Batch:
    payload = probe_payload(action, **fields)
    return batch(transaction(KEYS[0], "probe", payload, [DECLARED], [DECLARED]))


BLOCKS = [
    [
        probe("write", Address=DECLARED, Value=b"one"),
        probe("read", Address=DECLARED),
        probe("read", Address=probe_address(1)),
        probe("read", Address=UNDECLARED),
        probe("write", Address=UNDECLARED),
        probe("delete", Address=UNDECLARED),
        probe("read", Address="not-an-address"),
        probe("write", Address=DECLARED, Value="text, not bytes"),
        probe("events", Count=3),
        probe("events", Count=events_per_transaction_max + 1),
        probe("data", Count=receipt_data_entries_max, Bytes=10),
        probe("data", Count=receipt_data_entries_max + 1, Bytes=1),
        probe("data", Count=1, Bytes=receipt_data_bytes_max + 1),
        probe("invalid"),
        probe("nonsense"),
    ],
    [probe("delete", Address=DECLARED), probe("read", Address=DECLARED)],
    # Outside the family's namespaces: refused by the node before any processor sees it.
    [batch(transaction(KEYS[0], "probe", probe_payload("read"), ["ab"], ["ab"]))],
]


def test_every_context_call_and_misuse_matches_the_built_in_context(tmp_path: Path) -> None:
    reference = Chain(fresh_store(), HandlerRegistry([ProbeHandler()]))
    expected = [reference.run(block) for block in BLOCKS]
    with (
        processor_server() as (server, registry),
        ProcessorProcess.kit(server.endpoint or "", tmp_path / "tp.log", PROBE_SPEC) as tp,
    ):
        wait_registered(server, "probe", process=tp)
        chain = Chain(fresh_store(), registry)
        got = [chain.run(block) for block in BLOCKS]
    for ours, theirs in zip(got, expected, strict=True):
        assert [(r.valid, r.reason) for r in ours.batch_results] == [
            (r.valid, r.reason) for r in theirs.batch_results
        ]
        assert summary(ours) == summary(theirs)
    verdicts = [r.valid for r in got[0].batch_results]
    assert verdicts.count(True) == 5 and verdicts.count(False) == 10


def test_a_crashing_handler_fails_the_block_as_built_in(tmp_path: Path) -> None:
    """INTERNAL_ERROR is no verdict: retried, then the block fails with nothing recorded."""
    block = [probe("write", Address=DECLARED), probe("crash")]
    with pytest.raises(TransactionProcessingFailed, match="RuntimeError"):
        Chain(fresh_store(), HandlerRegistry([ProbeHandler()])).run(block)
    with (
        processor_server() as (server, registry),
        ProcessorProcess.kit(server.endpoint or "", tmp_path / "tp.log", PROBE_SPEC) as tp,
    ):
        wait_registered(server, "probe", process=tp)
        with pytest.raises(TransactionProcessingFailed, match="RuntimeError: probe crashed"):
            Chain(fresh_store(), registry).run(block)
    assert "processor.handler_failed" in tp.log()
