"""The height log's counting rule: every signed vote counts for its own value, a member's
distinct values at one position are capped, and "any 2f+1" counts members once."""

from __future__ import annotations

from trusted_ledger.consensus import VoteKind, VoteMessage
from trusted_ledger.consensus.votes import Admission, HeightLog, values_per_position_max

V, W, X, Y = (bytes([n]) * 32 for n in (1, 2, 3, 4))
A, B, C = (bytes([n]) * 32 for n in (10, 11, 12))


def _prevote(block_id: bytes | None, voter: bytes) -> VoteMessage:
    return VoteMessage(VoteKind.PREVOTE, 1, 0, block_id, voter, b"sig")


def test_a_double_voter_counts_for_both_values_but_once_in_total() -> None:
    log = HeightLog(1)
    assert log.add(_prevote(V, A), A, 0)[0] is Admission.ADDED
    admission, first = log.add(_prevote(W, A), A, 0)
    assert admission is Admission.EQUIVOCATION and first == _prevote(V, A)
    log.add(_prevote(W, B), B, 0)
    log.add(_prevote(None, C), C, 0)
    messages = log.round(0)
    assert messages.count(VoteKind.PREVOTE, V) == 1
    assert messages.count(VoteKind.PREVOTE, W) == 2  # A's second vote counts for W
    assert messages.count(VoteKind.PREVOTE, None) == 1
    assert messages.total(VoteKind.PREVOTE) == 3  # members, not votes
    assert log.add(_prevote(W, A), A, 0)[0] is Admission.DUPLICATE


def test_a_members_values_at_one_position_are_capped() -> None:
    log = HeightLog(1)
    for block_id in (V, W, X, Y, None):
        log.add(_prevote(block_id, A), A, 0)
    messages = log.round(0)
    counted = [b for b in (V, W, X, Y, None) if messages.count(VoteKind.PREVOTE, b)]
    assert counted == [V, W, X][:values_per_position_max]
    assert log.stored_messages == values_per_position_max
