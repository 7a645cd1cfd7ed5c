"""What consensus messages sign, and their guard positions."""

from __future__ import annotations

import pytest

from trusted_ledger.chain.certificate import vote_digest
from trusted_ledger.chain.signing import STEP_COMMIT_VOTE, commit_vote_position, proposal_position
from trusted_ledger.chain.wire import encode_chain_id, u32, u64
from trusted_ledger.consensus import (
    NIL_BLOCK_ID,
    PREVOTE_DOMAIN,
    Proposal,
    VoteKind,
    VoteMessage,
    message_digest,
    precommit_digest,
    prevote_digest,
    proposal_digest,
    signing_position,
)
from trusted_ledger.custody import Position
from trusted_ledger.errors import InvalidInput
from trusted_ledger.hashing import tagged_digest

BID = bytes(range(1, 33))


def test_proposal_signs_its_block_id_at_the_block_signature_position() -> None:
    proposal = Proposal(7, 2, BID, 1, b"p" * 32)
    assert proposal_digest("c", proposal) == BID
    assert signing_position(proposal) == proposal_position(7, 2)


def test_precommit_is_a_commit_vote() -> None:
    assert precommit_digest("c", 7, 2, BID) == vote_digest("c", 7, 2, BID)
    vote = VoteMessage(VoteKind.PRECOMMIT, 7, 2, BID, b"v" * 32)
    assert message_digest("c", vote) == vote_digest("c", 7, 2, BID)
    assert signing_position(vote) == commit_vote_position(7, 2)
    assert signing_position(vote).step == STEP_COMMIT_VOTE


def test_prevote_is_domain_separated_and_binds_every_field() -> None:
    base = prevote_digest("c", 7, 2, BID)
    assert base != vote_digest("c", 7, 2, BID)
    others = {
        prevote_digest("d", 7, 2, BID),
        prevote_digest("c", 8, 2, BID),
        prevote_digest("c", 7, 3, BID),
        prevote_digest("c", 7, 2, None),
        prevote_digest("c", 7, 2, bytes(range(2, 34))),
    }
    assert base not in others and len(others) == 5
    vote = VoteMessage(VoteKind.PREVOTE, 7, 2, None, b"v" * 32)
    expected = tagged_digest(
        PREVOTE_DOMAIN, encode_chain_id("c") + u64(7) + u32(2) + NIL_BLOCK_ID
    )  # the brief's formula, spelled out
    assert message_digest("c", vote) == prevote_digest("c", 7, 2, None) == expected
    assert signing_position(vote) == Position(7, 2, 2)


def test_the_zero_block_id_and_bad_ids_are_refused() -> None:
    with pytest.raises(InvalidInput):
        prevote_digest("c", 1, 0, NIL_BLOCK_ID)
    with pytest.raises(InvalidInput):
        precommit_digest("c", 1, 0, b"short")
    with pytest.raises(InvalidInput):
        proposal_digest("Bad Chain", Proposal(1, 0, BID, -1, b"p" * 32))
