"""The kit's processor in a child process, against the node side's real ProcessorServer.

Differential: provenance blocks executed through the external processor give exactly the
results (state roots, node writes, batch verdicts and reasons, receipts with events) of the
same blocks executed with ProvenanceHandler built in. Then the failure cases: a processor
killed mid-block is replaced and the block completes; a SIGTERM stops it cleanly.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.unit.processing.support import Chain, fresh_store, summary
from trusted_ledger.errors import FamilyNotServed, TransactionProcessingFailed
from trusted_ledger.processing import BlockExecution, HandlerRegistry, ParallelScheduler
from trusted_ledger.processing.scheduler import SerialScheduler
from trusted_ledger.processor.examples.provenance import ProvenanceHandler

from .support import (
    ProcessorProcess,
    processor_server,
    provenance_workload,
    wait_for,
    wait_registered,
)

pytestmark = pytest.mark.timeout(60)


def _in_process(blocks: list) -> list[BlockExecution]:  # type: ignore[type-arg]
    chain = Chain(fresh_store(), HandlerRegistry([ProvenanceHandler()]))
    return [chain.run(block) for block in blocks]


@pytest.mark.parametrize("scheduler", [SerialScheduler(), ParallelScheduler(workers=4)])
def test_external_provenance_matches_built_in(tmp_path: Path, scheduler: object) -> None:
    blocks = provenance_workload(12)
    expected = _in_process(blocks)
    with (
        processor_server() as (server, registry),
        ProcessorProcess.kit(server.endpoint or "", tmp_path / "tp.log") as processor,
    ):
        wait_registered(server, "provenance", process=processor)
        assert registry.families() == frozenset({"provenance"})
        (info,) = server.processors()
        assert (info.version, info.max_occupancy, info.header_style) == ("1.0", 4, "EXPANDED")
        chain = Chain(fresh_store(), registry)
        got = [chain.run(block, scheduler) for block in blocks]  # type: ignore[arg-type]
        assert processor.terminate() == 0, processor.log()
    assert [summary(execution) for execution in got] == [summary(e) for e in expected]
    # The workload exercises both verdicts and events, or the comparison proves little.
    results = [r for execution in got for r in execution.batch_results]
    assert {r.valid for r in results} == {True, False}
    assert any(receipt.events for execution in got for receipt in execution.receipts)


def test_two_processors_share_the_family_and_one_stops_cleanly(tmp_path: Path) -> None:
    blocks = provenance_workload(8)
    expected = _in_process(blocks)
    with (
        processor_server() as (server, registry),
        ProcessorProcess.kit(server.endpoint or "", tmp_path / "a.log", occupancy=2) as first,
        ProcessorProcess.kit(server.endpoint or "", tmp_path / "b.log", occupancy=2) as second,
    ):
        wait_registered(server, "provenance", count=2)
        chain = Chain(fresh_store(), registry)
        got = [chain.run(blocks[0], ParallelScheduler(workers=4))]
        assert all(p.dispatched > 0 for p in server.processors())  # both took work
        # SIGTERM: the processor unregisters and exits 0; the other carries on.
        assert first.terminate() == 0, first.log()
        wait_for(lambda: len(server.processors()) == 1, 10, "the first to unregister")
        got += [chain.run(block, ParallelScheduler(workers=4)) for block in blocks[1:]]
        assert second.process.poll() is None
    assert [summary(e) for e in got] == [summary(e) for e in expected]


def test_a_killed_processor_is_replaced_and_the_work_completes(tmp_path: Path) -> None:
    """Killed mid-block: its in-flight transactions are re-dispatched, or (while no processor
    serves the family) the block fails as a whole, records nothing, and is executed again
    once the replacement registered, as the node does. Either way the final results are
    exactly the built-in ones: nothing half-applied, nothing lost."""
    blocks = provenance_workload(150)  # the kill must land well before the work ends
    expected = _in_process(blocks)
    with processor_server(request_timeout_s=2.0, ping_interval_s=0.5, ping_misses_max=2) as (
        server,
        registry,
    ):
        first = ProcessorProcess.kit(server.endpoint or "", tmp_path / "first.log")
        wait_registered(server, "provenance", process=first)
        chain = Chain(fresh_store(), registry)
        got = [chain.run(blocks[0])]
        failures: list[Exception] = []

        def run_rest() -> None:
            for block in blocks[1:]:
                try:
                    got.append(chain.run(block))
                except (TransactionProcessingFailed, FamilyNotServed) as exc:
                    # The block stops (no processor, or retries spent) and nothing is
                    # committed: Chain.run commits on success only.
                    failures.append(exc)
                    return

        runner = threading.Thread(target=run_rest)
        runner.start()
        started = sum(p.dispatched for p in server.processors())
        wait_for(
            lambda: sum(p.dispatched for p in server.processors()) > started + 5,
            10,
            "the second block to start",
        )
        dead = {p.identity for p in server.processors()}
        first.kill()  # mid-block: some transactions are in flight at the dead processor
        with ProcessorProcess.kit(server.endpoint or "", tmp_path / "second.log") as second:
            wait_for(
                lambda: any(p.identity not in dead for p in server.processors()),
                20,
                "the second processor to register",
            )
            runner.join(30)
            assert not runner.is_alive(), second.log()
            got += [chain.run(block) for block in blocks[len(got) :]]
            assert any(p.identity not in dead and p.dispatched for p in server.processors()), (
                "the replacement did no work: the kill came after the work, proving nothing"
            )
            assert second.terminate() == 0, second.log()
    assert len(failures) <= 1
    assert [summary(e) for e in got] == [summary(e) for e in expected]
