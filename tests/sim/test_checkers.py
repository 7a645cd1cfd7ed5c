"""The checkers fire: each is fed a hand-made violation (a checker that cannot fail is
worthless) and the matching legitimate facts, which must pass."""

from __future__ import annotations

import dataclasses

import pytest

from trusted_ledger.chain.certificate import CommitCertificate, Vote
from trusted_ledger.consensus.machine import Consensus
from trusted_ledger.consensus.signing import message_digest, precommit_digest
from trusted_ledger.consensus.types import ReportMisbehaviour, VoteKind, VoteMessage
from trusted_ledger.testing.sim import SimConfig, run_seed
from trusted_ledger.testing.sim.app import (
    GENESIS_ID,
    GENESIS_STATE_ROOT,
    CommittedBlock,
    SimBlock,
    next_state_root,
)
from trusted_ledger.testing.sim.checkers import Checkers
from trusted_ledger.testing.sim.keys import MemberKey
from trusted_ledger.testing.sim.node import GuardRefusal, SimNode
from trusted_ledger.testing.sim.rng import RngTree

CHAIN = "checker-test"
KEYS = [MemberKey.from_secret(i, RngTree(0).secret_bytes(f"key/{i}")) for i in range(4)]
IDS = [k.fingerprint for k in KEYS]


def _verify(signer: int, digest: bytes, signature: bytes) -> bool:
    try:
        KEYS[signer].private.public_key().verify(signature, digest)
    except Exception:
        return False
    return True


def _checkers(honest: frozenset[int] = frozenset({0, 1, 2})) -> Checkers:
    return Checkers(CHAIN, IDS, honest, _verify)


def _block(height: int, parent: bytes, payload: bytes) -> SimBlock:
    return SimBlock(CHAIN, height, 0, parent, IDS[height % 4], payload)


def _certificate(block: SimBlock, voters: tuple[int, ...] = (0, 1, 2)) -> CommitCertificate:
    digest = precommit_digest(CHAIN, block.height, block.round, block.block_id)
    votes = [Vote(IDS[i], KEYS[i].private.sign(digest)) for i in voters]
    return CommitCertificate.from_votes(CHAIN, block.height, block.round, block.block_id, votes)


def _record(block: SimBlock, parent_root: bytes = GENESIS_STATE_ROOT) -> CommittedBlock:
    return CommittedBlock(block, _certificate(block), next_state_root(parent_root, block.payload))


def _fired(checkers: Checkers) -> set[str]:
    return {v.checker for v in checkers.violations}


def test_a_correct_chain_passes_every_checker() -> None:
    checkers = _checkers()
    first = _record(_block(1, GENESIS_ID, b"a"))
    second = _record(_block(2, first.block.block_id, b"b"), first.state_root)
    for node in (0, 1, 2):
        checkers.observe_commit(node, first, 10)
        checkers.observe_commit(node, second, 20)
    assert checkers.violations == []


def test_agreement_fires_on_a_fork() -> None:
    checkers = _checkers()
    checkers.observe_commit(0, _record(_block(1, GENESIS_ID, b"a")), 10)
    checkers.observe_commit(1, _record(_block(1, GENESIS_ID, b"b")), 11)
    assert "agreement" in _fired(checkers)
    assert checkers.violations[0].node == 1


def test_certificate_fires_on_a_forged_signature() -> None:
    checkers = _checkers()
    record = _record(_block(1, GENESIS_ID, b"a"))
    votes = list(record.certificate.votes)
    votes[1] = Vote(votes[1].member_fingerprint, bytes(64))
    forged = dataclasses.replace(record.certificate, votes=tuple(votes))
    checkers.observe_commit(0, dataclasses.replace(record, certificate=forged), 10)
    assert _fired(checkers) == {"certificate"}
    assert "does not verify" in checkers.violations[0].detail


@pytest.mark.parametrize(
    ("voters", "expected"),
    [((0, 1), "a quorum is 3"), ((0, 1, 1), "votes twice")],
)
def test_certificate_fires_without_a_quorum_of_distinct_members(
    voters: tuple[int, ...], expected: str
) -> None:
    checkers = _checkers()
    block = _block(1, GENESIS_ID, b"a")
    digest = precommit_digest(CHAIN, 1, 0, block.block_id)
    votes = tuple(Vote(IDS[i], KEYS[i].private.sign(digest)) for i in voters)
    certificate = CommitCertificate(CHAIN, 1, 0, block.block_id, votes)
    root = next_state_root(GENESIS_STATE_ROOT, b"a")
    checkers.observe_commit(0, CommittedBlock(block, certificate, root), 10)
    assert _fired(checkers) == {"certificate"}
    assert expected in checkers.violations[0].detail


def test_certificate_fires_on_a_quorum_for_another_block_or_a_nil_precommit() -> None:
    checkers = _checkers()
    block = _block(1, GENESIS_ID, b"a")
    other = _certificate(_block(1, GENESIS_ID, b"other"))
    checkers.observe_commit(0, CommittedBlock(block, other, b"r" * 32), 10)
    assert "certificate" in _fired(checkers)
    # Precommits over the nil digest, relabelled as a certificate for the block.
    checkers = _checkers()
    nil_digest = precommit_digest(CHAIN, 1, 0, None)
    votes = [Vote(IDS[i], KEYS[i].private.sign(nil_digest)) for i in (0, 1, 2)]
    relabelled = CommitCertificate.from_votes(CHAIN, 1, 0, block.block_id, votes)
    checkers.observe_commit(0, CommittedBlock(block, relabelled, b"r" * 32), 10)
    assert _fired(checkers) == {"certificate"}


def test_certificate_fires_on_a_non_member_vote() -> None:
    checkers = Checkers(CHAIN, IDS[:3], frozenset({0, 1, 2}), _verify)
    record = _record(_block(1, GENESIS_ID, b"a"))
    block = record.block
    digest = precommit_digest(CHAIN, 1, 0, block.block_id)
    votes = [*record.certificate.votes[:2], Vote(IDS[3], KEYS[3].private.sign(digest))]
    certificate = CommitCertificate.from_votes(CHAIN, 1, 0, block.block_id, votes)
    checkers.observe_commit(0, dataclasses.replace(record, certificate=certificate), 10)
    assert "non-member" in checkers.violations[0].detail


def test_state_root_fires_when_roots_diverge() -> None:
    checkers = _checkers()
    record = _record(_block(1, GENESIS_ID, b"a"))
    checkers.observe_commit(0, record, 10)
    checkers.observe_commit(1, dataclasses.replace(record, state_root=b"\x01" * 32), 11)
    assert _fired(checkers) == {"state-root"}


def test_chain_fires_on_a_gap_or_a_wrong_parent() -> None:
    checkers = _checkers()
    checkers.observe_commit(0, _record(_block(2, GENESIS_ID, b"a")), 10)
    assert _fired(checkers) == {"chain"}
    checkers = _checkers()
    checkers.observe_commit(0, _record(_block(1, GENESIS_ID, b"a")), 10)
    checkers.observe_commit(0, _record(_block(2, b"\x07" * 32, b"b")), 20)
    assert _fired(checkers) == {"chain"}


def _signed_vote(member: int, block_id: bytes | None) -> VoteMessage:
    vote = VoteMessage(VoteKind.PREVOTE, 5, 1, block_id, IDS[member])
    return dataclasses.replace(
        vote, signature=KEYS[member].private.sign(message_digest(CHAIN, vote))
    )


def test_evidence_against_a_byzantine_member_passes_against_an_honest_one_fires() -> None:
    checkers = _checkers(honest=frozenset({0, 1, 2}))
    report = ReportMisbehaviour(IDS[3], _signed_vote(3, b"\x01" * 32), _signed_vote(3, None))
    checkers.observe_evidence(0, report, 10)
    assert checkers.violations == []
    honest = ReportMisbehaviour(IDS[1], _signed_vote(1, b"\x01" * 32), _signed_vote(1, None))
    checkers.observe_evidence(0, honest, 20)
    assert _fired(checkers) == {"evidence"}
    assert "honest member 1" in checkers.violations[0].detail


def test_evidence_fires_on_a_false_accusation() -> None:
    checkers = _checkers()
    unsigned = dataclasses.replace(_signed_vote(3, None), signature=bytes(64))
    checkers.observe_evidence(
        0, ReportMisbehaviour(IDS[3], _signed_vote(3, b"\x01" * 32), unsigned), 1
    )
    same = _signed_vote(3, None)
    checkers.observe_evidence(0, ReportMisbehaviour(IDS[3], same, same), 2)
    moved = dataclasses.replace(_signed_vote(3, None), round=2)
    checkers.observe_evidence(0, ReportMisbehaviour(IDS[3], same, moved), 3)
    assert [v.checker for v in checkers.violations] == ["evidence"] * 3


def test_guard_refusal_of_an_honest_node_fires() -> None:
    checkers = _checkers()
    refusal = GuardRefusal(1, _signed_vote(1, None), "refusing to sign at (5, 1, 2)")
    checkers.observe_guard_refusal(refusal, 10)
    assert _fired(checkers) == {"guard"}


def test_liveness_fires_when_an_honest_node_stalls() -> None:
    checkers = _checkers()
    checkers.liveness_start({0: 5, 1: 5, 2: 4, 3: 0})
    checkers.liveness_deadline({0: 9, 1: 8, 2: 5, 3: 0}, 100, growth_min=3)
    assert _fired(checkers) == {"liveness"}
    assert [v.node for v in checkers.violations] == [2]  # node 3 is Byzantine: not judged


def test_liveness_without_a_start_fires() -> None:
    checkers = _checkers()
    checkers.liveness_deadline({0: 9}, 100, growth_min=3)
    assert _fired(checkers) == {"liveness"}


# --- end to end: a sabotaged node in a real run is caught -----------------------------------


def test_a_node_that_commits_a_different_block_is_caught_in_a_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = SimNode._commit

    def forking_commit(self: SimNode, block: SimBlock, certificate: CommitCertificate) -> None:
        if self.index == 0 and block.height == 3:
            block = dataclasses.replace(block, payload=b"forked")
        original(self, block, certificate)

    monkeypatch.setattr(SimNode, "_commit", forking_commit)
    report = run_seed(1, SimConfig(name="sabotaged", duration_s=3.0, liveness_window_s=None))
    assert not report.ok
    assert {"agreement", "certificate"} <= {v.checker for v in report.violations}


def test_a_machine_with_a_quorum_of_one_is_caught_in_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Consensus, "quorum", property(lambda self: 1))
    report = run_seed(1, SimConfig(name="quorum-of-one", duration_s=3.0, liveness_window_s=None))
    assert not report.ok
    assert "certificate" in {v.checker for v in report.violations}


def test_a_machine_that_asks_to_equivocate_is_refused_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As if the machine asked for a second, different prevote at a position it used: the
    guard refuses (nothing conflicting leaves the node) and the guard checker reports it."""
    original = SimNode.sign_and_broadcast

    def double(self: SimNode, message: object) -> None:
        original(self, message)  # type: ignore[arg-type]
        if isinstance(message, VoteMessage) and message.block_id is not None and self.index == 1:
            original(self, dataclasses.replace(message, block_id=None))

    monkeypatch.setattr(SimNode, "sign_and_broadcast", double)
    report = run_seed(
        2, SimConfig(name="equivocating-machine", duration_s=2.0, liveness_window_s=None)
    )
    assert "guard" in {v.checker for v in report.violations}
