"""Deterministic simulation of a whole consortium in one process from one seed (issue 6).

``run_seed(seed, SimConfig(...))`` runs n members - the real ``consensus.Consensus`` machine
each, driven by ``SimNode`` - over a simulated network with delays, loss, duplication,
reordering and partitions, with crashes and restarts and Byzantine members, and checks
safety after every event and liveness after the last heal. docs/simulation.md explains what
is simulated, what is checked, and how to replay a seed or soak.
"""

from trusted_ledger.testing.sim.checkers import Checkers, Violation
from trusted_ledger.testing.sim.run import (
    CrashPlan,
    PartitionPlan,
    SimConfig,
    SimReport,
    mixed_config,
    run_seed,
    scenarios,
)

__all__ = [
    "Checkers",
    "CrashPlan",
    "PartitionPlan",
    "SimConfig",
    "SimReport",
    "Violation",
    "mixed_config",
    "run_seed",
    "scenarios",
]
