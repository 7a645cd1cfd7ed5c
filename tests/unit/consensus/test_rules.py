"""One machine driven by hand-written messages from the other members: each rule alone."""

from __future__ import annotations

from trusted_ledger.consensus import (
    Consensus,
    Decide,
    Proposal,
    ReportMisbehaviour,
    RequestValue,
    ScheduleTimeout,
    Step,
    TimeoutKind,
    ValidateBlock,
    VoteKind,
    future_rounds_max,
)

from .support import echo, feed, member_ids, precommit, prevote, sent

M = member_ids(4)
ME = M[0]
V = b"\x0a" * 32
W = b"\x0b" * 32


def _proposal(h: int, r: int, bid: bytes, vr: int = -1) -> Proposal:
    return Proposal(h, r, bid, vr, M[(h + r) % 4], b"sig")


def _locked_on_v_then_round_1(machine: Consensus) -> None:
    """Round 0 at height 1: ME prevotes V, sees a polka for V, locks; then round 1."""
    machine.start()
    assert feed(machine, _proposal(1, 0, V)) == [ValidateBlock(1, V)]
    echo(machine, machine.on_block_validated(1, V, True))
    actions = feed(machine, prevote(1, 0, V, M[1]), prevote(1, 0, V, M[2]))
    assert [(m.kind, m.block_id) for m in sent(actions)] == [(VoteKind.PRECOMMIT, V)]
    state = machine.persistent_state()
    assert (state.locked_round, state.locked_value, state.valid_round) == (0, V, 0)
    actions = feed(machine, precommit(1, 0, None, M[1]), precommit(1, 0, None, M[2]))
    assert ScheduleTimeout(TimeoutKind.PRECOMMIT, 1, 0, 500) in actions  # line 47
    machine.on_timeout(TimeoutKind.PRECOMMIT, 1, 0)
    assert (machine.round, machine.step) == (1, Step.PROPOSE)


def test_locked_node_prevotes_nil_for_another_value() -> None:
    machine = Consensus(ME, 1, M)
    _locked_on_v_then_round_1(machine)
    actions = feed(machine, _proposal(1, 1, W))
    actions += machine.on_block_validated(1, W, True)
    assert [(m.kind, m.round, m.block_id) for m in sent(actions)] == [(VoteKind.PREVOTE, 1, None)]


def test_locked_node_prevotes_its_locked_value_again() -> None:
    machine = Consensus(ME, 1, M)
    _locked_on_v_then_round_1(machine)
    actions = feed(machine, _proposal(1, 1, V, vr=0))
    assert [(m.kind, m.round, m.block_id) for m in sent(actions)] == [(VoteKind.PREVOTE, 1, V)]


def test_a_newer_polka_unlocks() -> None:
    """Lines 28-30: a proposal of W with valid round 1 >= locked round 0 and 2f+1 prevotes
    for W in round 1 gets a prevote for W despite the lock on V."""
    machine = Consensus(ME, 1, M)
    _locked_on_v_then_round_1(machine)
    echo(machine, machine.on_timeout(TimeoutKind.PROPOSE, 1, 1))  # no proposal: nil
    feed(machine, *(prevote(1, 1, W, m) for m in M[1:]))  # polka for W, proposal unseen
    feed(machine, *(precommit(1, 1, None, m) for m in M[1:]))
    machine.on_timeout(TimeoutKind.PRECOMMIT, 1, 1)
    assert machine.round == 2
    # Without the newer polka claimed (valid round -1) the lock holds...
    other = Consensus(ME, 1, M)
    _locked_on_v_then_round_1(other)
    echo(other, other.on_timeout(TimeoutKind.PROPOSE, 1, 1))
    feed(other, *(prevote(1, 1, W, m) for m in M[1:]))
    feed(other, *(precommit(1, 1, None, m) for m in M[1:]))
    other.on_timeout(TimeoutKind.PRECOMMIT, 1, 1)
    feed(other, _proposal(1, 2, W, vr=-1))
    actions = other.on_block_validated(1, W, True)
    assert [(m.kind, m.round, m.block_id) for m in sent(actions)] == [(VoteKind.PREVOTE, 2, None)]
    # ...with it, the node prevotes W.
    actions = feed(machine, _proposal(1, 2, W, vr=1))
    assert actions == [ValidateBlock(1, W)]
    actions = machine.on_block_validated(1, W, True)
    assert [(m.kind, m.round, m.block_id) for m in sent(actions)] == [(VoteKind.PREVOTE, 2, W)]


def test_proposer_re_proposes_its_valid_value() -> None:
    """Line 36 at the precommit step records V as valid without locking; as proposer of the
    next round, ME proposes V again with its valid round instead of asking for a value."""
    machine = Consensus(ME, 3, M)  # proposers at height 3: r0 M[3], r1 M[0] = ME
    machine.start()
    echo(machine, machine.on_timeout(TimeoutKind.PROPOSE, 3, 0))  # prevote nil
    feed(machine, *(prevote(3, 0, V, m) for m in M[1:]))  # polka for V, no proposal yet
    echo(machine, machine.on_timeout(TimeoutKind.PREVOTE, 3, 0))  # precommit nil
    assert machine.step is Step.PRECOMMIT
    feed(machine, _proposal(3, 0, V))
    machine.on_block_validated(3, V, True)
    state = machine.persistent_state()
    assert (state.locked_round, state.valid_round, state.valid_value) == (-1, 0, V)
    feed(machine, *(precommit(3, 0, None, m) for m in M[1:]))
    actions = machine.on_timeout(TimeoutKind.PRECOMMIT, 3, 0)
    assert not any(isinstance(a, RequestValue) for a in actions)
    assert sent(actions) == [Proposal(3, 1, V, 0, ME)]


def test_proposer_without_valid_value_requests_one() -> None:
    machine = Consensus(ME, 4, M)  # proposer(4, 0) = M[0]
    actions = machine.start()
    assert RequestValue(4, 0) in actions
    assert sent(machine.on_value(4, 0, V)) == [Proposal(4, 0, V, -1, ME)]
    assert machine.on_value(4, 0, W) == []  # answered once


def test_round_skip_needs_f_plus_one_members() -> None:
    machine = Consensus(ME, 1, M)
    machine.start()
    assert feed(machine, prevote(1, 5, None, M[1])) == []
    assert machine.round == 0
    actions = feed(machine, precommit(1, 5, W, M[2]))  # f + 1 = 2 members at round 5
    assert machine.round == 5
    assert ScheduleTimeout(TimeoutKind.PROPOSE, 1, 5, 1000 + 5 * 500) in actions


def test_round_skip_goes_to_the_round_f_plus_one_members_reached() -> None:
    machine = Consensus(ME, 1, M)
    machine.start()
    feed(machine, prevote(1, 1000, None, M[1]))  # beyond the window: only remembered
    feed(machine, prevote(1, 7, None, M[2]))
    assert machine.round == 7  # not 1000: one member alone may be faulty
    feed(machine, prevote(1, 900, None, M[3]))
    assert machine.round == 900


def test_precommit_quorum_of_a_past_round_decides() -> None:
    """Line 49 holds in any round: ME is in round 2 when round 0's precommits arrive."""
    machine = Consensus(ME, 1, M)
    machine.start()
    feed(machine, *(prevote(1, 2, None, m) for m in M[1:3]))
    assert machine.round == 2
    actions = feed(machine, *(precommit(1, 0, V, m) for m in M[1:]))
    assert not any(isinstance(a, Decide) for a in actions)  # no proposal for V yet
    assert feed(machine, _proposal(1, 0, V)) == [ValidateBlock(1, V)]
    actions = machine.on_block_validated(1, V, True)
    (decide,) = [a for a in actions if isinstance(a, Decide)]
    assert (decide.height, decide.round, decide.block_id) == (1, 0, V)
    assert [v.voter for v in decide.precommits] == sorted(M[1:])
    assert feed(machine, _proposal(1, 2, W)) == []  # decided: the height is over


def test_equivocation_is_reported_once() -> None:
    machine = Consensus(ME, 1, M)
    machine.start()
    echo(machine, machine.on_timeout(TimeoutKind.PROPOSE, 1, 0))  # own prevote nil
    first, second = prevote(1, 0, V, M[1]), prevote(1, 0, W, M[1])
    assert feed(machine, first) == []
    assert feed(machine, second) == [ReportMisbehaviour(M[1], first, second)]
    assert feed(machine, prevote(1, 0, None, M[1])) == []  # reported once per position
    assert feed(machine, first) == []  # a duplicate
    # W now has M[1] (its second vote), M[2], M[3]: a quorum, but no proposal of W in
    # round 0, so no precommit (line 36 needs the proposal).
    actions = feed(machine, prevote(1, 0, W, M[2]), prevote(1, 0, W, M[3]))
    assert not sent(actions)
    assert any(isinstance(a, ScheduleTimeout) for a in actions)  # 4 prevotes of any kind
    p1, p2 = _proposal(1, 1, V), _proposal(1, 1, W)
    assert feed(machine, p1) == [ValidateBlock(1, V)]
    assert feed(machine, p2) == [ReportMisbehaviour(M[2], p1, p2)]


def test_non_members_other_heights_and_wrong_proposers_are_ignored() -> None:
    machine = Consensus(ME, 5, M)
    machine.start()
    outsider = b"\x99" * 32
    before = machine.stored_messages
    for message in (
        prevote(5, 0, V, outsider),
        Proposal(5, 0, V, -1, outsider),
        prevote(4, 0, V, M[1]),  # an older height
        precommit(7, 0, V, M[1]),  # beyond height + 1: catch-up's job
        Proposal(5, 0, V, -1, M[3]),  # not proposer(5, 0) = M[1]
        Proposal(5, 0, V, 0, M[1]),  # valid round must be below the round
        prevote(5, 0, bytes(32), M[2]),  # the zero id is nil's, not a block
    ):
        assert feed(machine, message) == []
    assert machine.stored_messages == before


def test_restart_keeps_the_lock_and_skips_the_used_round() -> None:
    machine = Consensus(ME, 1, M)
    _locked_on_v_then_round_1(machine)
    echo(machine, machine.on_timeout(TimeoutKind.PROPOSE, 1, 1))  # prevote nil in round 1
    saved = machine.persistent_state()
    assert (saved.round, saved.step, saved.locked_value) == (1, Step.PREVOTE, V)

    restarted = Consensus(ME, 1, M, restored=saved)
    restarted.start()
    assert restarted.round == 2  # round 1 may hold signed votes lost in the crash
    assert restarted.persistent_state().locked_round == 0
    actions = feed(restarted, _proposal(1, 2, W))
    actions += restarted.on_block_validated(1, W, True)
    assert [(m.kind, m.block_id) for m in sent(actions)] == [(VoteKind.PREVOTE, None)]


def test_restart_at_the_propose_step_resumes_the_same_round() -> None:
    machine = Consensus(ME, 1, M)
    _locked_on_v_then_round_1(machine)
    restarted = Consensus(ME, 1, M, restored=machine.persistent_state())
    restarted.start()
    assert (restarted.round, restarted.step) == (1, Step.PROPOSE)
    # The message log is not persisted: a proposal citing round 0's polka waits for those
    # prevotes (line 28), while the restored lock alone lets ME prevote its locked value
    # (line 23), with no second validation of a value it had validated before the crash.
    assert sent(feed(restarted, _proposal(1, 1, V, vr=0))) == []
    restarted = Consensus(ME, 1, M, restored=machine.persistent_state())
    restarted.start()
    actions = feed(restarted, _proposal(1, 1, V))
    assert [(m.kind, m.round, m.block_id) for m in sent(actions)] == [(VoteKind.PREVOTE, 1, V)]


def test_spam_of_future_rounds_keeps_memory_bounded() -> None:
    machine = Consensus(ME, 1, M)
    machine.start()
    for r in range(100_000):
        machine.on_vote(prevote(1, r, V if r % 2 else None, M[1]))
        machine.on_vote(precommit(2, r, V, M[2]))  # next height: buffered, bounded
    assert machine.round == 0  # one member alone cannot move us
    window = future_rounds_max + 1
    assert machine.stored_messages <= window * 3 * 2 + 1
    # The round skip still works: one more member far ahead.
    feed(machine, prevote(1, 99_999, None, M[3]))
    assert machine.round == 99_999
