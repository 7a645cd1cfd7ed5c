"""Seeded consortium runs: every named scenario over many seeds, replay, the soak command.

CI budget: the whole directory runs in well under a minute (about 300 seeded runs).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from trusted_ledger.errors import SimulationConfigInvalid, SimulationViolation
from trusted_ledger.testing.sim import SimConfig, mixed_config, run_seed, scenarios
from trusted_ledger.testing.sim.app import SimBlock
from trusted_ledger.testing.sim.node import SimNode
from trusted_ledger.testing.sim.run import main

SEEDS_PER_SCENARIO = 30
SCENARIOS = scenarios()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_is_safe_and_live_for_every_seed(name: str) -> None:
    config = SCENARIOS[name]
    failures = []
    for seed in range(SEEDS_PER_SCENARIO):
        report = run_seed(seed, config)
        if not report.ok:
            failures.append(report.summary())
        # Every honest node committed something: a run that commits nothing checks nothing.
        honest = [h for i, h in enumerate(report.heights) if i not in report.byzantine]
        assert min(honest) >= config.liveness_heights_min, report.summary()
    assert not failures, "\n".join(failures)


def test_faults_actually_happen_in_the_fault_scenarios() -> None:
    """The scenarios exercise what they are named after (a run without loss is not a lossy
    run): counters show the faults, the catch-up and the Byzantine evidence."""
    lossy = run_seed(1, SCENARIOS["lossy"])
    assert lossy.network.lost > 0 and lossy.network.duplicated > 0
    partitions = [run_seed(seed, SCENARIOS["partition"]) for seed in range(4)]
    assert all(report.network.cut > 0 for report in partitions)
    crashes = [run_seed(seed, SCENARIOS["crash"]) for seed in range(4)]
    # A node back from a crash or a partition catches up through certificates.
    assert sum(report.sync_commits for report in partitions + crashes) > 0
    double = run_seed(1, SCENARIOS["byzantine-double-vote"])
    assert double.evidence > 0


@pytest.mark.parametrize(
    "seed",
    list(range(12)),
)
def test_mixed_soak_configuration(seed: int) -> None:
    run_seed(seed, mixed_config(seed, nodes=4, byzantine=1, duration_s=12.0)).check()


@pytest.mark.parametrize(
    ("nodes", "byzantine"),
    [(1, ()), (7, ("equivocate", "spam")), (7, ("double-vote", "bad-signature"))],
)
def test_other_membership_sizes(nodes: int, byzantine: tuple[str, ...]) -> None:
    config = SimConfig(name=f"n{nodes}", nodes=nodes, byzantine=byzantine, duration_s=4.0)
    for seed in range(3):
        run_seed(seed, config).check()


def test_a_seed_replays_exactly() -> None:
    config = SCENARIOS["byzantine-spam"]
    first, second = run_seed(7, config), run_seed(7, config)
    assert first == second
    assert first.trace_hash == second.trace_hash
    assert run_seed(8, config).trace_hash != first.trace_hash


def _sabotage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Node 0 commits a different block at height 2: a fork the checkers must report."""
    original = SimNode._commit

    def forking_commit(self: SimNode, block: SimBlock, certificate: object) -> None:
        if self.index == 0 and block.height == 2:
            block = dataclasses.replace(block, payload=b"forked")
        original(self, block, certificate)  # type: ignore[arg-type]

    monkeypatch.setattr(SimNode, "_commit", forking_commit)


def test_a_failing_seed_replays_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    _sabotage(monkeypatch)
    first = run_seed(3, SCENARIOS["lossy"])
    second = run_seed(3, SCENARIOS["lossy"])
    assert not first.ok
    assert first.violations == second.violations
    assert first.trace_hash == second.trace_hash


def test_soak_command_prints_failing_seeds_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--seeds", "2", "--start", "5", "--scenario", "honest"]) == 0
    assert "2/2 seeds passed" in capsys.readouterr().out
    _sabotage(monkeypatch)
    assert main(["--seeds", "2", "--start", "5", "--duration-s", "6", "--byzantine", "0"]) == 1
    out = capsys.readouterr().out
    assert "failing seeds: 5 6" in out
    assert "--start 5 --scenario mixed" in out


def test_check_raises_on_a_failing_run(monkeypatch: pytest.MonkeyPatch) -> None:
    run_seed(3, SCENARIOS["honest"]).check()
    _sabotage(monkeypatch)
    with pytest.raises(SimulationViolation, match=r"seed 3 \[honest\] FAIL"):
        run_seed(3, SCENARIOS["honest"]).check()


def test_impossible_configurations_are_refused() -> None:
    with pytest.raises(SimulationConfigInvalid, match="tolerate"):
        run_seed(0, SimConfig(byzantine=("spam", "spam")))
    with pytest.raises(SimulationConfigInvalid, match="unknown Byzantine behaviour"):
        run_seed(0, SimConfig(byzantine=("polite",)))
    with pytest.raises(SimulationConfigInvalid, match="liveness window"):
        run_seed(0, SimConfig(duration_s=2.0, liveness_window_s=3.0))


@pytest.mark.parametrize(("seed", "duration_s"), [(24, 20.0), (125, 20.0)])
def test_double_voter_cannot_stall_the_consortium(seed: int, duration_s: float) -> None:
    """Seeds that stalled while the machine counted only a double-voter's first vote: each
    of its signed votes must count for its own value (consensus/votes.py)."""
    report = run_seed(seed, mixed_config(seed, nodes=4, byzantine=1, duration_s=duration_s))
    assert report.ok, report.summary()


def test_trace_does_not_depend_on_python_hash_order() -> None:
    """Two interpreters with different string/bytes hash seeds give the same trace: nothing
    in a run iterates over a set or dict in hash order."""
    program = (
        "from trusted_ledger.testing.sim import run_seed, mixed_config\n"
        "print(run_seed(4, mixed_config(4, nodes=4, byzantine=1, duration_s=6.0)).trace_hash)"
    )
    traces = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert len(traces) == 1
