"""The kit survives its node: when the node's processor endpoint goes away and comes back
(a node restart), the processor reconnects by itself and registers again."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.unit.processing.support import Chain, fresh_store, summary
from trusted_ledger.processing import HandlerRegistry
from trusted_ledger.processing.families.intkey import IntkeyHandler
from trusted_ledger.processing.tp import ProcessorServer
from trusted_ledger.processor import TransactionProcessor
from trusted_ledger.processor.examples.provenance import ProvenanceHandler

from .support import ProcessorProcess, provenance_workload, wait_registered

pytestmark = pytest.mark.timeout(60)


def test_processor_re_registers_with_a_restarted_node(tmp_path: Path) -> None:
    blocks = provenance_workload(6)
    reference = Chain(fresh_store(), HandlerRegistry([ProvenanceHandler()]))
    expected = [reference.run(block) for block in blocks]
    first = ProcessorServer(HandlerRegistry(), "tcp://127.0.0.1:0")
    endpoint = first.start()
    with ProcessorProcess.kit(endpoint, tmp_path / "tp.log") as processor:
        try:
            wait_registered(first, "provenance", process=processor)
        finally:
            first.stop()  # the node goes away...
        registry = HandlerRegistry()
        second = ProcessorServer(registry, endpoint)  # ...and comes back on the same port
        second.start()
        try:
            wait_registered(second, "provenance", process=processor)
            chain = Chain(fresh_store(), registry)
            got = [chain.run(block) for block in blocks]
            assert processor.terminate() == 0, processor.log()
        finally:
            second.stop()
    assert [summary(e) for e in got] == [summary(e) for e in expected]
    assert processor.log().count("processor.registered") == 2


def test_in_process_processor_registers_serves_and_stops() -> None:
    """The kit embedded in a program: ``run`` on a thread of its own, ``stop`` from another."""
    registry = HandlerRegistry()
    server = ProcessorServer(registry, "tcp://127.0.0.1:0")
    processor = TransactionProcessor(server.start(), max_occupancy=2)
    processor.add_handler(ProvenanceHandler())
    runner = threading.Thread(target=processor.run)
    runner.start()
    try:
        assert processor.wait_registered(10)
        (info,) = server.processors()
        assert info.max_occupancy == 2
        chain = Chain(fresh_store(), registry)
        execution = chain.run(provenance_workload(2)[0])
        assert all(result.valid for result in execution.batch_results)
        processor.stop()
        runner.join(10)
        assert not runner.is_alive()
        # It unregistered before closing, so the family left the registry at once.
        assert server.processors() == []
        assert registry.families() == frozenset()
    finally:
        processor.stop()
        server.stop()


def test_a_refused_registration_ends_the_processor_with_status_1(tmp_path: Path) -> None:
    """The node refuses to let a processor shadow a built-in family: a configuration error
    (status 1, which the systemd unit does not restart on), not a retry loop."""
    registry = HandlerRegistry([IntkeyHandler()])
    server = ProcessorServer(registry, "tcp://127.0.0.1:0")
    endpoint = server.start()
    try:
        spec = "trusted_ledger.processing.families.intkey:IntkeyHandler"
        with ProcessorProcess.kit(endpoint, tmp_path / "tp.log", spec) as processor:
            assert processor.process.wait(20) == 1, processor.log()
            assert "error: the node refused to register intkey 1.0" in processor.log()
    finally:
        server.stop()
    assert server.processors() == []
