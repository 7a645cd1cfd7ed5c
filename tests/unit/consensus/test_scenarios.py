"""Four machines (and an observer) routed by hand: whole heights end to end."""

from __future__ import annotations

from trusted_ledger.chain.certificate import CommitCertificate, Membership, Vote
from trusted_ledger.consensus import Proposal, Step, TimeoutKind, VoteKind

from .support import CHAIN_ID, Router, block_id


def _certificate_checks(router: Router, height: int) -> None:
    """Every member's Decide carries a quorum that verifies as a chain commit certificate."""
    for nid in router.members:
        (decide,) = [d for d in router.nodes[nid].decisions if d.height == height]
        voters = [v.voter for v in decide.precommits]
        assert voters == sorted(voters) and len(set(voters)) == len(voters) >= 3
        assert all(v.kind is VoteKind.PRECOMMIT for v in decide.precommits)
        certificate = CommitCertificate.from_votes(
            CHAIN_ID,
            height,
            decide.round,
            decide.block_id,
            [Vote(v.voter, v.signature) for v in decide.precommits],
        )
        certificate.verify_votes(Membership(router.keys))


def test_happy_path_decides_in_round_zero_with_a_certificate() -> None:
    router = Router()
    router.start()
    router.run()
    proposer = router.members[1]  # (height 1 + round 0) % 4
    expected = block_id(1, 0, proposer)
    for node in router.nodes.values():
        assert [(d.height, d.round, d.block_id) for d in node.decisions] == [(1, 0, expected)]
        assert node.refused == []
    _certificate_checks(router, 1)

    # The next height, with the next proposer in the rotation.
    for nid, node in router.nodes.items():
        router.apply(nid, node.machine.on_committed(1, router.members))
    router.run()
    assert router.decided() == {expected, block_id(2, 0, router.members[2])}
    _certificate_checks(router, 2)


def test_silent_proposer_times_out_and_the_next_proposer_decides() -> None:
    router = Router()
    silent = router.members[1]
    alive = [m for m in router.members if m != silent]
    router.start()

    def cut(dest: bytes, message: object) -> bool:
        return (
            dest == silent
            or getattr(message, "proposer", None) == silent
            or (getattr(message, "voter", None) == silent)
        )

    router.run(drop=cut)
    assert router.decided() == set()
    router.fire(TimeoutKind.PROPOSE, alive)  # lines 57-60: prevote nil
    router.run(drop=cut)
    # 3 nil prevotes: precommit nil (line 44); 3 precommits: precommit timer (line 47).
    assert all(router.nodes[m].machine.step is Step.PRECOMMIT for m in alive)
    router.fire(TimeoutKind.PRECOMMIT, alive)  # line 65: round 1
    router.run(drop=cut)
    expected = block_id(1, 1, router.members[2])
    assert router.decided(alive) == {expected}
    assert all(router.nodes[m].decisions[0].round == 1 for m in alive)


def test_invalid_block_gets_nil_prevotes_and_the_next_round_decides() -> None:
    router = Router()
    router.invalid.add(block_id(1, 0, router.members[1]))
    router.start()
    router.run()
    assert router.decided() == set()
    # The proposer built it and trusts it; the other three judge it invalid.
    for nid in router.members[2:] + router.members[:1]:
        prevotes = [m for m in router.nodes[nid].signed if not isinstance(m, Proposal)]
        assert prevotes[0].block_id is None  # lines 23/26: valid(v) false
    router.fire(TimeoutKind.PRECOMMIT)
    router.run()
    assert router.decided() == {block_id(1, 1, router.members[2])}


def test_observer_follows_and_decides_but_never_signs() -> None:
    router = Router(observers=1)
    (observer,) = [nid for nid in router.nodes if nid not in router.members]
    router.start()
    router.run()
    node = router.nodes[observer]
    assert not node.machine.is_member
    assert node.signed == []  # Router asserts no SignAndBroadcast ever reached an observer
    assert [d.block_id for d in node.decisions] == [block_id(1, 0, router.members[1])]
    assert len(node.decisions[0].precommits) == 3  # decided on the first quorum


def test_future_height_messages_are_replayed_on_commit() -> None:
    router = Router()
    laggard = router.members[0]
    router.start()
    router.run()
    # Everyone decided height 1; the others commit and start height 2 before the laggard.
    for nid in router.members[1:]:
        router.apply(nid, router.nodes[nid].machine.on_committed(1, router.members))
    router.run(drop=lambda dest, _m: False)
    assert router.nodes[laggard].machine.height == 1
    assert router.nodes[laggard].decisions[-1].height == 1
    # Three members without the laggard are a quorum: they decided height 2 alone, and the
    # laggard has buffered all of it.
    assert all(len(router.nodes[nid].decisions) == 2 for nid in router.members[1:])
    assert router.nodes[laggard].machine.stored_messages > 0
    lag = router.nodes[laggard]
    router.apply(laggard, lag.machine.on_committed(1, router.members))
    router.run()
    assert lag.machine.decision == block_id(2, 0, router.members[2])
    assert router.decided() == {block_id(1, 0, router.members[1]), lag.machine.decision}
