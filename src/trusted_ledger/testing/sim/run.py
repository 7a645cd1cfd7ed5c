"""Run a simulated consortium from one seed, check it after every event, report.

``run_seed(seed, config)`` builds n members (Ed25519 keys derived from the seed), the
network, the fault schedule (crashes, partitions, which members are Byzantine - drawn from
the seed where the configuration leaves them open), and then pops events until the
configured duration, running the checkers after each one. It stops at the first violation.
The report carries a trace hash: SHA-256 over every event processed, so "replays exactly"
is a comparison of two hex strings.

The soak command (``python -m trusted_ledger.testing.sim``) runs many seeds of a mixed
configuration whose faults are drawn per seed, prints each failing seed with the command
that replays it, and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from trusted_ledger.chain.certificate import Membership
from trusted_ledger.consensus.types import TimeoutConfig
from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey
from trusted_ledger.errors import (
    SimulationConfigInvalid,
    SimulationLimitExceeded,
    SimulationViolation,
)
from trusted_ledger.testing.sim.byzantine import BEHAVIOURS, behaviour_named
from trusted_ledger.testing.sim.checkers import Checkers, Violation
from trusted_ledger.testing.sim.clock import US_PER_S, EventQueue
from trusted_ledger.testing.sim.keys import MemberKey
from trusted_ledger.testing.sim.messages import (
    BlockChecked,
    Crash,
    Deliver,
    Event,
    GossipTick,
    LivenessMark,
    Payload,
    Restart,
    TimerFired,
    ValueBuilt,
)
from trusted_ledger.testing.sim.network import NetworkConfig, NetworkStats, Partition, SimNetwork
from trusted_ledger.testing.sim.node import NodeTiming, SimNode
from trusted_ledger.testing.sim.rng import RngTree

events_max = 3_000_000
"""Events one run may process: a run that needs more is a storm (a bug), not a workload."""
verify_cache_max = 200_000
"""Signature verdicts remembered per run. Verification is a pure function, so memoising it
changes no outcome; it saves re-checking one broadcast message at every receiver."""


@dataclass(frozen=True, slots=True)
class CrashPlan:
    """Crash a node at ``at_s`` and restart it ``down_s`` later; ``node`` None lets the seed
    pick an honest one."""

    at_s: float
    down_s: float
    node: int | None = None


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """Cut ``side_size`` nodes (picked by the seed) off from the rest in [start_s, heal_s)."""

    start_s: float
    heal_s: float
    side_size: int


@dataclass(frozen=True, slots=True)
class SimConfig:
    name: str = "honest"
    nodes: int = 4
    byzantine: tuple[str, ...] = ()
    """One behaviour name per Byzantine member; the seed picks which members."""
    duration_s: float = 5.0
    network: NetworkConfig = field(default_factory=NetworkConfig)
    partitions: tuple[PartitionPlan, ...] = ()
    crashes: tuple[CrashPlan, ...] = ()
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    timing: NodeTiming = field(default_factory=NodeTiming)
    liveness_window_s: float | None = 4.0
    """After the last heal and restart, every honest node must commit ``liveness_heights_min``
    more blocks within this window; None skips the check (e.g. f + 1 faulty)."""
    liveness_heights_min: int = 3
    chain_id: str = "sim-consortium"

    def validate(self) -> None:
        if self.nodes < 1:
            raise SimulationConfigInvalid("a consortium has at least one member")
        faults = (self.nodes - 1) // 3
        crashing = len({c.node for c in self.crashes if c.node is not None})
        if len(self.byzantine) > faults:
            raise SimulationConfigInvalid(
                f"{len(self.byzantine)} Byzantine members, {self.nodes} members tolerate {faults}"
            )
        for name in self.byzantine:
            behaviour_named(name)
        for plan in self.partitions:
            if not (0 <= plan.start_s < plan.heal_s and 0 < plan.side_size < self.nodes):
                raise SimulationConfigInvalid(f"bad partition plan {plan}")
        for crash in self.crashes:
            if crash.at_s < 0 or crash.down_s <= 0:
                raise SimulationConfigInvalid(f"bad crash plan {crash}")
        if crashing > self.nodes:
            raise SimulationConfigInvalid("more crashing nodes than members")
        if (
            self.liveness_window_s is not None
            and self.liveness_start_s + self.liveness_window_s > self.duration_s
        ):
            raise SimulationConfigInvalid(
                f"liveness window [{self.liveness_start_s}, "
                f"{self.liveness_start_s + self.liveness_window_s}] s ends after the run "
                f"({self.duration_s} s)"
            )

    @property
    def liveness_start_s(self) -> float:
        """The last heal or restart: from then on the network is good and every node up."""
        ends = [p.heal_s for p in self.partitions] + [c.at_s + c.down_s for c in self.crashes]
        return max(ends, default=0.0)


@dataclass(frozen=True, slots=True)
class SimReport:
    seed: int
    config: str
    ok: bool
    violations: tuple[Violation, ...]
    trace_hash: str
    events: int
    simulated_s: float
    heights: tuple[int, ...]
    """Committed height of every node at the end (Byzantine ones included)."""
    byzantine: tuple[int, ...]
    network: NetworkStats
    evidence: int
    sync_commits: int

    def check(self) -> None:
        """Raise ``SimulationViolation`` (with the summary and the seed) unless the run
        was clean: for callers that treat a failing seed as an error, like tests."""
        if not self.ok:
            raise SimulationViolation(
                self.summary(), hint=f"replay with run_seed({self.seed}, <the same config>)"
            )

    def summary(self) -> str:
        status = "ok" if self.ok else "FAIL"
        line = (
            f"seed {self.seed} [{self.config}] {status}: heights {list(self.heights)} "
            f"byzantine {list(self.byzantine)} events {self.events} trace {self.trace_hash[:16]}"
        )
        return "\n  ".join([line, *(str(v) for v in self.violations)])


class Simulation:
    """One run: the nodes, the network, the queue and the checkers (``NodeServices``)."""

    def __init__(self, seed: int, config: SimConfig) -> None:
        config.validate()
        self.seed = seed
        self.config = config
        tree = RngTree(seed)
        plan_rng = tree.child("plan")
        n = config.nodes
        self.byzantine = tuple(sorted(plan_rng.sample(range(n), len(config.byzantine))))
        honest = [i for i in range(n) if i not in self.byzantine]
        self.queue: EventQueue[Event] = EventQueue()
        partitions = tuple(
            Partition(
                int(p.start_s * US_PER_S),
                int(p.heal_s * US_PER_S),
                frozenset(plan_rng.sample(range(n), p.side_size)),
            )
            for p in config.partitions
        )
        network_config = replace(config.network, partitions=config.network.partitions + partitions)
        self.network = SimNetwork(n, network_config, tree.child("network"))
        self.keys = [MemberKey.from_secret(i, tree.secret_bytes(f"key/{i}")) for i in range(n)]
        self._public = [m.private.public_key() for m in self.keys]
        membership = Membership(
            PublicKey.from_ec_point(KeyAlgorithm.ED25519, m.public_raw) for m in self.keys
        )
        self._verdicts: dict[tuple[int, bytes, bytes], bool] = {}
        behaviours = dict(zip(self.byzantine, config.byzantine, strict=True))
        self.nodes: list[SimNode] = []
        for key in self.keys:
            name = behaviours.get(key.index)
            self.nodes.append(
                SimNode(
                    key,
                    self.keys,
                    membership,
                    config.chain_id,
                    self,
                    tree.child(f"node/{key.index}"),
                    timeouts=config.timeouts,
                    timing=config.timing,
                    behaviour=behaviour_named(name) if name is not None else None,
                )
            )
        self.checkers = Checkers(
            config.chain_id, [k.fingerprint for k in self.keys],
            frozenset(honest), self.verify,
        )  # fmt: skip
        for crash in config.crashes:
            node = crash.node if crash.node is not None else plan_rng.choice(honest)
            self.queue.schedule_at(int(crash.at_s * US_PER_S), Crash(node))
            self.queue.schedule_at(int((crash.at_s + crash.down_s) * US_PER_S), Restart(node))
        if config.liveness_window_s is not None:
            start_us = int(config.liveness_start_s * US_PER_S)
            self.queue.schedule_at(start_us, LivenessMark(deadline=False))
            self.queue.schedule_at(
                start_us + int(config.liveness_window_s * US_PER_S), LivenessMark(deadline=True)
            )
        self._trace = hashlib.sha256(f"{seed}/{config}".encode())
        self.events = 0

    # --- NodeServices ----------------------------------------------------------------------

    @property
    def now_us(self) -> int:
        return self.queue.now_us

    def send(self, source: int, destination: int, payload: Payload) -> None:
        if not self.nodes[source].up:
            return
        for arrival in self.network.send(source, destination, self.queue.now_us):
            self.queue.schedule_at(arrival, Deliver(destination, source, payload))

    def schedule(self, delay_us: int, event: Event) -> None:
        self.queue.schedule(delay_us, event)

    def verify(self, signer: int, digest: bytes, signature: bytes) -> bool:
        key = (signer, digest, signature)
        verdict = self._verdicts.get(key)
        if verdict is None:
            try:
                self._public[signer].verify(signature, digest)
                verdict = True
            except Exception:  # InvalidSignature, or bytes of a wrong length
                verdict = False
            if len(self._verdicts) >= verify_cache_max:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> SimReport:
        for node in self.nodes:
            node.start()
        end_us = int(self.config.duration_s * US_PER_S)
        violations = self.checkers.violations
        while not violations:
            next_us = self.queue.next_time_us()
            if next_us is None or next_us > end_us:
                break
            if self.events >= events_max:
                raise SimulationLimitExceeded(f"seed {self.seed}: more than {events_max} events")
            now_us, event = self.queue.pop()
            self.events += 1
            self._trace.update(f"{now_us}|{event!r}\n".encode())
            try:
                self._dispatch(event)
            except Exception as exc:  # any crash of a node's code is a finding
                target = getattr(event, "node", getattr(event, "destination", None))
                self.checkers.violations.append(
                    Violation(
                        "node-error",
                        now_us,
                        target,
                        f"{type(exc).__name__}: {exc} on {event!r}"[:2000],
                    )
                )
                break
            self.checkers.after_event(self.nodes, now_us)
        return SimReport(
            seed=self.seed,
            config=self.config.name,
            ok=not violations,
            violations=tuple(violations),
            trace_hash=self._trace.hexdigest(),
            events=self.events,
            simulated_s=self.queue.now_us / US_PER_S,
            heights=tuple(node.committed_height for node in self.nodes),
            byzantine=self.byzantine,
            network=self.network.stats,
            evidence=sum(len(node.evidence) for node in self.nodes),
            sync_commits=sum(node.counters.sync_committed for node in self.nodes),
        )

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Deliver):
            delivered = self.network.arrived(event.source, event.destination, self.queue.now_us)
            node = self.nodes[event.destination]
            if delivered and node.up:
                node.on_event(event)
        elif isinstance(event, TimerFired | ValueBuilt | BlockChecked | GossipTick):
            node = self.nodes[event.node]
            if node.up and node.incarnation == event.incarnation:
                node.on_event(event)
        elif isinstance(event, Crash):
            self.nodes[event.node].crash()
        elif isinstance(event, Restart):
            self.nodes[event.node].start()
        else:
            heights = {node.index: node.committed_height for node in self.nodes}
            if event.deadline:
                self.checkers.liveness_deadline(
                    heights, self.queue.now_us, self.config.liveness_heights_min
                )
            else:
                self.checkers.liveness_start(heights)


def run_seed(seed: int, config: SimConfig) -> SimReport:
    """Run ``config`` from ``seed``; the same pair always gives the same report."""
    return Simulation(seed, config).run()


# --- configurations ----------------------------------------------------------------------------


def scenarios() -> dict[str, SimConfig]:
    """The named configurations CI runs (tests/sim) and ``--scenario`` accepts.

    Short on purpose (a few simulated seconds: a fast network commits ~10 heights a second
    and CI runs hundreds of seeds); each keeps a liveness window after its last fault. The
    soak (``mixed``) is where long runs with faults drawn per seed happen.
    """
    lossy = NetworkConfig(loss_probability=0.1, duplicate_probability=0.05, reorder_probability=0.1)
    named = {
        "honest": SimConfig(name="honest", duration_s=3.0, liveness_window_s=3.0),
        "lossy": SimConfig(name="lossy", network=lossy, duration_s=6.0, liveness_window_s=6.0),
        "crash": SimConfig(
            name="crash", crashes=(CrashPlan(0.5, 1.5),), duration_s=5.0, liveness_window_s=3.0
        ),
        "partition": SimConfig(
            name="partition", partitions=(PartitionPlan(0.5, 2.0, 1),), duration_s=5.0,
            liveness_window_s=3.0,
        ),
        "split": SimConfig(
            name="split", partitions=(PartitionPlan(0.5, 2.0, 2),), duration_s=6.0,
            liveness_window_s=4.0,
        ),
    }  # fmt: skip
    for behaviour in sorted(BEHAVIOURS):
        named[f"byzantine-{behaviour}"] = SimConfig(
            name=f"byzantine-{behaviour}", byzantine=(behaviour,), duration_s=5.0,
            liveness_window_s=5.0,
        )  # fmt: skip
    return named


def mixed_config(seed: int, *, nodes: int, byzantine: int, duration_s: float) -> SimConfig:
    """A soak configuration whose faults are drawn from the seed: network quality (a WAN
    between banks: up to 100 ms per link, up to 10 % loss), at most one crash and one
    partition, both over by 40 % of the run, and ``byzantine`` members each with a behaviour
    of their own. The remaining 60 % is the liveness window: rounds that grew during the
    faults (timeouts grow per round) need some of it before heights come fast again."""
    rng = RngTree(seed).child("mixed-config")
    duration_s = float(duration_s)
    faults_end_s = 0.4 * duration_s
    network = NetworkConfig(
        base_delay_ms_max=rng.choice((10.0, 40.0, 100.0)),
        loss_probability=rng.choice((0.0, 0.0, 0.02, 0.1)),
        duplicate_probability=rng.choice((0.0, 0.05)),
        reorder_probability=rng.choice((0.0, 0.1, 0.2)),
        reorder_delay_ms_max=100.0,
    )
    crashes: tuple[CrashPlan, ...] = ()
    if rng.random() < 0.5:
        at = rng.uniform(0.0, faults_end_s * 0.7)
        crashes = (CrashPlan(at, rng.uniform(0.1, faults_end_s - at)),)
    partitions: tuple[PartitionPlan, ...] = ()
    if rng.random() < 0.5 and nodes > 1:
        start = rng.uniform(0.0, faults_end_s * 0.7)
        heal = rng.uniform(start + 0.1, faults_end_s)
        partitions = (PartitionPlan(start, heal, rng.randrange(1, nodes)),)
    behaviours = tuple(rng.choice(sorted(BEHAVIOURS)) for _ in range(byzantine))
    config = SimConfig(
        name=f"mixed-n{nodes}-b{byzantine}-d{duration_s:g}", nodes=nodes, byzantine=behaviours,
        duration_s=duration_s, network=network, partitions=partitions, crashes=crashes,
        liveness_window_s=None, liveness_heights_min=3,
    )  # fmt: skip
    # The window runs from the end of the last fault (at most 40 % in) to the end.
    return replace(config, liveness_window_s=duration_s - config.liveness_start_s)


# --- the soak command --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trusted_ledger.testing.sim",
        description="Run seeded consortium simulations; print failing seeds; exit 1 if any.",
    )
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--byzantine", type=int, default=1)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument(
        "--scenario",
        default="mixed",
        help=f"mixed (faults drawn per seed) or one of {', '.join(scenarios())}",
    )
    parser.add_argument("--verbose", action="store_true", help="print every seed's summary")
    args = parser.parse_args(argv)
    named = scenarios()
    if args.scenario != "mixed" and args.scenario not in named:
        parser.error(f"unknown scenario {args.scenario!r}")
    failed: list[int] = []
    started = time.monotonic()  # progress output only; nothing simulated reads it
    for seed in range(args.start, args.start + args.seeds):
        if args.scenario == "mixed":
            config = mixed_config(
                seed, nodes=args.nodes, byzantine=args.byzantine, duration_s=args.duration_s
            )
        else:
            config = named[args.scenario]
        report = run_seed(seed, config)
        if args.verbose or not report.ok:
            print(report.summary(), flush=True)
        if not report.ok:
            failed.append(seed)
            print(f"  replay: {_replay_command(seed, args)}", flush=True)
    elapsed = time.monotonic() - started
    print(f"{args.seeds - len(failed)}/{args.seeds} seeds passed in {elapsed:.1f} s")
    if failed:
        print("failing seeds: " + " ".join(str(s) for s in failed))
        return 1
    return 0


def _replay_command(seed: int, args: argparse.Namespace) -> str:
    return (
        f"python -m trusted_ledger.testing.sim --seeds 1 --start {seed} "
        f"--scenario {args.scenario} --nodes {args.nodes} --byzantine {args.byzantine} "
        f"--duration-s {args.duration_s:g} --verbose"
    )


if __name__ == "__main__":
    sys.exit(main())
