"""Commit certificates: quorum arithmetic, encoding, and verification against a membership."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.chain.support import BatchFactory, SoftwareSigner
from trusted_ledger.chain import (
    CommitCertificate,
    Membership,
    decode_certificate,
    sign_commit_vote,
    sign_proposal,
    vote_digest,
)
from trusted_ledger.chain.block import Block
from trusted_ledger.errors import CertificateInvalid, InvalidInput, MalformedCertificate
from trusted_ledger.hashing import sha256

CHAIN = "cert-chain"


@pytest.mark.parametrize(
    ("members", "faults", "quorum"),
    [(1, 0, 1), (2, 0, 2), (3, 0, 3), (4, 1, 3), (5, 1, 4), (6, 1, 5), (7, 2, 5), (10, 3, 7)],
)
def test_quorum_is_more_than_two_thirds(members: int, faults: int, quorum: int) -> None:
    membership = Membership([SoftwareSigner().public_key for _ in range(members)])
    assert (membership.size, membership.faults_tolerated, membership.quorum) == (
        members, faults, quorum,
    )  # fmt: skip
    # Two quorums overlap in more than f members: at least one honest member is in both.
    assert 2 * quorum - members > faults


def _block(proposer: SoftwareSigner) -> Block:
    return sign_proposal(
        proposer, chain_id=CHAIN, number=3, previous_block_id=b"\x01" * 32,
        state_root=b"\x02" * 32, batches=[BatchFactory().batch("set a 1")], timestamp_ms=9,
    )  # fmt: skip


def _certificate(block: Block, voters: list[SoftwareSigner], round_: int = 0) -> CommitCertificate:
    votes = [sign_commit_vote(v, CHAIN, block.number, round_, block.id) for v in voters]
    return CommitCertificate.from_votes(CHAIN, block.number, round_, block.id, votes)


def test_a_quorum_of_members_verifies_and_round_trips() -> None:
    members = [SoftwareSigner() for _ in range(4)]
    block = _block(members[0])
    certificate = _certificate(block, members[1:])
    assert decode_certificate(certificate.encode()) == certificate
    certificate.verify(Membership(m.public_key for m in members), block)
    fingerprints = [vote.member_fingerprint for vote in certificate.votes]
    assert fingerprints == sorted(fingerprints)


def test_too_few_votes_are_no_quorum() -> None:
    members = [SoftwareSigner() for _ in range(4)]
    block = _block(members[0])
    with pytest.raises(CertificateInvalid, match=r"2 votes, a quorum .* is 3"):
        _certificate(block, members[:2]).verify(Membership(m.public_key for m in members), block)


def test_votes_of_non_members_and_forged_votes_are_refused() -> None:
    members = [SoftwareSigner() for _ in range(4)]
    outsider = SoftwareSigner()
    block = _block(members[0])
    membership = Membership(m.public_key for m in members)
    with pytest.raises(CertificateInvalid, match="not a member"):
        _certificate(block, [*members[:2], outsider]).verify(membership, block)
    good = _certificate(block, members[:3])
    forged = dataclasses.replace(good.votes[1], signature=good.votes[0].signature)
    votes = (good.votes[0], forged, good.votes[2])
    with pytest.raises(CertificateInvalid, match="does not verify"):
        dataclasses.replace(good, votes=votes).verify(membership, block)
    repeated = (good.votes[0], good.votes[0], good.votes[1])
    with pytest.raises(CertificateInvalid, match="repeats"):
        dataclasses.replace(good, votes=repeated).verify(membership, block)


def test_votes_bind_chain_height_round_and_block() -> None:
    members = [SoftwareSigner() for _ in range(1)]
    block = _block(members[0])
    membership = Membership([members[0].public_key])
    certificate = _certificate(block, members, round_=4)
    certificate.verify(membership, block)
    # The same signatures claimed for another round no longer verify.
    with pytest.raises(CertificateInvalid, match="does not verify"):
        dataclasses.replace(certificate, consensus_round=5).verify(membership, block)
    other = _block(SoftwareSigner())
    with pytest.raises(CertificateInvalid, match="not chain"):
        certificate.verify(membership, other)


def test_vote_digest_is_domain_separated_from_block_ids() -> None:
    digest = vote_digest(CHAIN, 3, 0, b"\x05" * 32)
    assert digest != sha256(b"\x05" * 32)
    others = {
        vote_digest(CHAIN, 4, 0, b"\x05" * 32),
        vote_digest("x", 3, 0, b"\x05" * 32),
        vote_digest(CHAIN, 3, 1, b"\x05" * 32),
    }
    assert len(others | {digest}) == 4
    with pytest.raises(InvalidInput):
        vote_digest(CHAIN, 3, 0, b"short")


def test_decoding_refuses_unsorted_empty_truncated_and_trailing() -> None:
    members = [SoftwareSigner() for _ in range(3)]
    block = _block(members[0])
    certificate = _certificate(block, members)
    data = certificate.encode()
    for length in range(len(data)):
        with pytest.raises(MalformedCertificate):
            decode_certificate(data[:length])
    with pytest.raises(MalformedCertificate, match="trailing"):
        decode_certificate(data + b"\x00")
    unsorted = dataclasses.replace(certificate, votes=certificate.votes[::-1])
    with pytest.raises(MalformedCertificate, match="ascending"):
        decode_certificate(unsorted.encode())
    empty = dataclasses.replace(certificate, votes=())
    with pytest.raises(MalformedCertificate, match="vote_count"):
        decode_certificate(empty.encode())


def test_membership_bounds() -> None:
    with pytest.raises(InvalidInput):
        Membership([])
    key = SoftwareSigner().public_key
    assert Membership([key, key]).size == 1
    assert key in Membership([key]) and SoftwareSigner().public_key not in Membership([key])
