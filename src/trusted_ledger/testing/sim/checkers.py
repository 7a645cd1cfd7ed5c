"""Invariant checkers, run after every event of a simulated run.

Safety checkers look only at what honest nodes wrote to their disks and what their machines
reported, incrementally (each new commit is checked once, so checking after every event
costs O(new facts), not O(chain)):

- ``agreement``: no two honest nodes commit different blocks at one height (invariant 1);
- ``certificate``: every committed block carries a quorum (floor(2n/3) + 1) of distinct
  member signatures over ``precommit_digest`` = the chain's ``vote_digest`` for exactly that
  chain id, height and block id, verified vote by vote here (the nodes' catch-up uses
  ``chain.CommitCertificate.verify_votes``, so two verifiers agree or a test fails);
- ``state-root``: honest nodes' state roots agree per height (the toy application's
  re-execution, invariant 2);
- ``chain``: each node's chain is contiguous, each block names its predecessor, and a
  committed block is never lost, crash or not (invariant 6);
- ``evidence``: misbehaviour is reported only against Byzantine members, and only with two
  validly signed, different messages at one position (a false accusation is a bug);
- ``guard``: an honest node's guard never refuses its machine (the machine asked to sign
  two different messages at one position, or below a position it passed: a bug that the
  guard contained, which is still a bug).

Liveness is checked on a window chosen by the runner after the last heal and restart: every
honest node's committed height grows by at least ``heights_min`` within it.

A violation is recorded, not raised, so that a test can inject one and see the checker fire,
and the runner can stop at the first and report its seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from trusted_ledger.chain.certificate import CommitCertificate
from trusted_ledger.consensus.signing import message_digest, precommit_digest, signing_position
from trusted_ledger.consensus.types import Proposal, ReportMisbehaviour
from trusted_ledger.errors import InvalidInput
from trusted_ledger.testing.sim.app import GENESIS_ID, CommittedBlock
from trusted_ledger.testing.sim.node import GuardRefusal, SimNode

certificate_cache_max = 100_000
"""Certificates whose verdict is remembered: nodes usually commit the same certificate
(or one of a few), and a verdict is a pure function of the certificate bytes."""


@dataclass(frozen=True, slots=True)
class Violation:
    checker: str
    time_us: int
    node: int | None
    detail: str

    def __str__(self) -> str:
        where = f"node {self.node}" if self.node is not None else "cluster"
        return f"[{self.checker}] t={self.time_us / 1e6:.6f}s {where}: {self.detail}"


@dataclass(slots=True)
class _Seen:
    committed: int = 0
    evidence: int = 0
    refusals: int = 0
    head_id: bytes = GENESIS_ID


@dataclass(slots=True)
class Checkers:
    chain_id: str
    member_ids: Sequence[bytes]
    honest: frozenset[int]
    verify: Callable[[int, bytes, bytes], bool]
    """(signer index, digest, signature) -> valid; the runner's memoised Ed25519 check."""
    violations: list[Violation] = field(default_factory=list)
    _decided: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    _roots: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    _seen: dict[int, _Seen] = field(default_factory=dict)
    _certificate_verdicts: dict[bytes, str | None] = field(default_factory=dict)
    _liveness_base: dict[int, int] | None = None
    _index_of: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index_of = {member: i for i, member in enumerate(self.member_ids)}

    def _fail(self, checker: str, time_us: int, node: int | None, detail: str) -> None:
        self.violations.append(Violation(checker, time_us, node, detail))

    # --- after every event ---------------------------------------------------------------

    def after_event(self, nodes: Sequence[SimNode], time_us: int) -> None:
        for node in nodes:
            if node.index not in self.honest:
                continue
            seen = self._seen.setdefault(node.index, _Seen())
            chain = node.disk.chain
            if len(chain) < seen.committed:
                self._fail(
                    "chain", time_us, node.index,
                    f"committed height fell from {seen.committed} to {len(chain)}",
                )  # fmt: skip
                seen.committed = len(chain)
            for record in chain[seen.committed :]:
                self.observe_commit(node.index, record, time_us)
            for report in node.evidence[seen.evidence :]:
                self.observe_evidence(node.index, report, time_us)
            seen.evidence = len(node.evidence)
            for refusal in node.guard_refusals[seen.refusals :]:
                self.observe_guard_refusal(refusal, time_us)
            seen.refusals = len(node.guard_refusals)

    def observe_commit(self, node: int, record: CommittedBlock, time_us: int) -> None:
        """One new block on an honest node's disk, in order."""
        seen = self._seen.setdefault(node, _Seen())
        block = record.block
        height, block_id = block.height, block.block_id
        if height != seen.committed + 1 or block.parent_id != seen.head_id:
            self._fail(
                "chain", time_us, node,
                f"block at height {height} (parent {block.parent_id.hex()[:16]}) does not "
                f"extend height {seen.committed} ({seen.head_id.hex()[:16]})",
            )  # fmt: skip
        seen.committed, seen.head_id = height, block_id
        first = self._decided.setdefault(height, (block_id, node))
        if first[0] != block_id:
            self._fail(
                "agreement", time_us, node,
                f"committed {block_id.hex()[:16]} at height {height}, node {first[1]} "
                f"committed {first[0].hex()[:16]}",
            )  # fmt: skip
        root = self._roots.setdefault(height, (record.state_root, node))
        if root[0] != record.state_root:
            self._fail(
                "state-root", time_us, node,
                f"state root {record.state_root.hex()[:16]} at height {height}, node "
                f"{root[1]} has {root[0].hex()[:16]}",
            )  # fmt: skip
        problem = self._certificate_problem(record)
        if problem is not None:
            self._fail("certificate", time_us, node, f"height {height}: {problem}")

    def _certificate_problem(self, record: CommittedBlock) -> str | None:
        certificate, block = record.certificate, record.block
        if (certificate.chain_id, certificate.height, certificate.block_id) != (
            self.chain_id,
            block.height,
            block.block_id,
        ):
            return (
                f"certificate names chain {certificate.chain_id!r} height "
                f"{certificate.height} block {certificate.block_id.hex()[:16]}, the block is "
                f"{block.block_id.hex()[:16]}"
            )
        key = certificate.encode()
        if key in self._certificate_verdicts:
            return self._certificate_verdicts[key]
        verdict = self._votes_problem(certificate)
        if len(self._certificate_verdicts) >= certificate_cache_max:
            self._certificate_verdicts.clear()
        self._certificate_verdicts[key] = verdict
        return verdict

    def _votes_problem(self, certificate: CommitCertificate) -> str | None:
        """Checked independently of ``CommitCertificate.verify_votes`` (which the nodes'
        catch-up uses): digest from ``consensus.signing.precommit_digest``, so a machine or
        driver that signed precommits over anything else fails here."""
        digest = precommit_digest(
            certificate.chain_id, certificate.height, certificate.consensus_round,
            certificate.block_id,
        )  # fmt: skip
        voters: set[int] = set()
        for vote in certificate.votes:
            member = self._index_of.get(vote.member_fingerprint)
            if member is None:
                return f"a vote by non-member {vote.member_fingerprint.hex()[:16]}"
            if member in voters:
                return f"member {member} votes twice"
            if not self.verify(member, digest, vote.signature):
                return f"the vote of member {member} does not verify"
            voters.add(member)
        quorum = 2 * len(self.member_ids) // 3 + 1
        if len(voters) < quorum:
            return f"{len(voters)} valid member votes, a quorum is {quorum}"
        return None

    def observe_evidence(self, node: int, report: ReportMisbehaviour, time_us: int) -> None:
        member = next((i for i, m in enumerate(self.member_ids) if m == report.member), None)
        if member is None:
            self._fail("evidence", time_us, node, "misbehaviour reported for a non-member")
            return
        first, second = report.first, report.second
        problem = None
        if first == second:
            problem = "the two messages are the same"
        elif signing_position(first) != signing_position(second):
            problem = "the two messages are at different positions"
        else:
            for message in (first, second):
                signer = message.proposer if isinstance(message, Proposal) else message.voter
                try:
                    digest = message_digest(self.chain_id, message)
                except InvalidInput:
                    problem = "a message has no digest (malformed)"
                    break
                if signer != report.member or not self.verify(member, digest, message.signature):
                    problem = "a message is not validly signed by the accused member"
                    break
        if problem is not None:
            self._fail("evidence", time_us, node, f"evidence against member {member}: {problem}")
        elif member in self.honest:
            self._fail(
                "evidence", time_us, node,
                f"honest member {member} signed two different messages at "
                f"{signing_position(first).as_list()}",
            )  # fmt: skip

    def observe_guard_refusal(self, refusal: GuardRefusal, time_us: int) -> None:
        self._fail("guard", time_us, refusal.node, f"{refusal.reason}: {refusal.message}")

    # --- liveness ------------------------------------------------------------------------

    def liveness_start(self, heights: Mapping[int, int]) -> None:
        self._liveness_base = {n: h for n, h in heights.items() if n in self.honest}

    def liveness_deadline(self, heights: Mapping[int, int], time_us: int, growth_min: int) -> None:
        base = self._liveness_base
        if base is None:
            self._fail("liveness", time_us, None, "the liveness window never started")
            return
        for node in sorted(base):
            grown = heights[node] - base[node]
            if grown < growth_min:
                self._fail(
                    "liveness", time_us, node,
                    f"committed height grew by {grown} ({base[node]} -> {heights[node]}) in "
                    f"the liveness window, at least {growth_min} required",
                )  # fmt: skip
