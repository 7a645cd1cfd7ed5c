"""A processor written with the official Sawtooth Python SDK, run against our ProcessorServer.

``sdk_intkey_processor.py`` uses only SDK APIs (and cbor2) plus the import of
``sawtooth_compat``; it runs in a child process, registers over the wire like any Sawtooth
processor, and intkey blocks executed through it write the same state as our built-in
intkey handler.
"""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import pytest

from tests.unit.processing.support import Chain, batch, fresh_store, intkey_txn
from trusted_ledger.processing import HandlerRegistry
from trusted_ledger.processing.families.intkey import IntkeyHandler, intkey_address

from .support import ProcessorProcess, processor_server, wait_registered

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        importlib.util.find_spec("sawtooth_sdk") is None,
        reason="sawtooth-sdk not installed (scripts/setup.sh installs it)",
    ),
]

BLOCKS = [
    [batch(intkey_txn("set", f"k{i}", i)) for i in range(8)],
    [
        batch(intkey_txn("inc", "k1", 10), intkey_txn("dec", "k2", 2)),
        batch(intkey_txn("set", "k3", 1)),  # exists: invalid
        batch(intkey_txn("dec", "k0", 1)),  # below 0: invalid
        batch(intkey_txn("inc", "k7", 3)),
    ],
]


def test_sdk_intkey_processor_writes_what_the_built_in_family_writes(tmp_path: Path) -> None:
    reference = Chain(fresh_store(), HandlerRegistry([IntkeyHandler()]))
    expected = [reference.run(block) for block in BLOCKS]
    with (
        processor_server() as (server, registry),
        ProcessorProcess.sdk_intkey(server.endpoint or "", tmp_path / "sdk.log") as sdk,
    ):
        wait_registered(server, "intkey", process=sdk)
        (info,) = server.processors()
        assert (info.version, info.namespaces) == ("1.0", (intkey_address("x")[:6],))
        chain = Chain(fresh_store(), registry)
        got = [chain.run(block) for block in BLOCKS]
        # The SDK stops on SIGINT (KeyboardInterrupt): it unregisters, then exits.
        sdk.process.send_signal(signal.SIGINT)
        assert sdk.process.wait(15) == 0, sdk.log()
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.state_root == theirs.state_root
        assert ours.state_update.node_writes == theirs.state_update.node_writes
        assert [r.valid for r in ours.batch_results] == [r.valid for r in theirs.batch_results]
    assert [r.valid for r in got[1].batch_results] == [True, False, False, True]
    assert got[1].batch_results[1].reason.startswith('Verb is "set", but already exists')
    # Events the SDK handler added travelled through TP_EVENT_ADD into the receipts.
    events = [e for receipt in got[1].receipts for e in receipt.events]
    assert [(e.event_type, e.attributes) for e in events] == [
        ("intkey/inc", (("name", "k1"),)),
        ("intkey/dec", (("name", "k2"),)),
        ("intkey/inc", (("name", "k7"),)),
    ]
