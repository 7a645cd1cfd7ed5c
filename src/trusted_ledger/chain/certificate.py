"""Commit certificates: a quorum of member votes that a block is committed at its height.

A vote is a signature over a domain-separated digest of (chain id, height, round, block id),
so a vote can never be replayed as a block signature, a vote of another chain or another
height. The certificate lists each vote as (member key fingerprint, signature), sorted by
fingerprint with no repeats, so one set of votes has one encoding. Quorum: more than two
thirds of the membership, floor(2n/3) + 1, which is 2f + 1 for n = 3f + 1 members and
makes any two quorums share at least f + 1 members - at least one of them honest. A
single-node chain is a membership of one whose quorum is that node's own vote.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from trusted_ledger.chain.block import SIGNATURE_BYTES, Block
from trusted_ledger.chain.signing import PURPOSE_VOTE, ChainSigner, commit_vote_position
from trusted_ledger.chain.wire import Reader, encode_chain_id, u16, u32, u64
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import (
    CertificateInvalid,
    InvalidInput,
    MalformedCertificate,
    SignatureInvalid,
)
from trusted_ledger.hashing import DIGEST_SIZE, tagged_digest

CERTIFICATE_MAGIC = b"TLCC"
CERTIFICATE_VERSION = 1
VOTE_DOMAIN = "trusted-ledger/commit-vote/v1"
FINGERPRINT_BYTES = DIGEST_SIZE

members_max = 1024
"""Largest membership (and so most votes in a certificate): far above any bank consortium,
low enough that checking a certificate costs at most ~0.1 s of signature verification."""


def vote_digest(chain_id: str, height: int, consensus_round: int, block_id: bytes) -> bytes:
    """What a commit vote signs (docs/formats.md §6.4)."""
    if len(block_id) != DIGEST_SIZE:
        raise InvalidInput(f"a block id is {DIGEST_SIZE} bytes")
    body = encode_chain_id(chain_id) + u64(height) + u32(consensus_round) + block_id
    return tagged_digest(VOTE_DOMAIN, body)


class Membership:
    """The public keys whose votes count, by fingerprint."""

    def __init__(self, members: Iterable[PublicKey]) -> None:
        self._by_fingerprint = {bytes.fromhex(key.fingerprint): key for key in members}
        if not 1 <= len(self._by_fingerprint) <= members_max:
            raise InvalidInput(f"a membership has 1..{members_max} distinct keys")

    @property
    def size(self) -> int:
        return len(self._by_fingerprint)

    @property
    def faults_tolerated(self) -> int:
        """f: the most members that may be faulty with safety kept."""
        return (self.size - 1) // 3

    @property
    def quorum(self) -> int:
        return 2 * self.size // 3 + 1

    def key(self, fingerprint: bytes) -> PublicKey | None:
        return self._by_fingerprint.get(fingerprint)

    def __contains__(self, key: object) -> bool:
        return (
            isinstance(key, PublicKey)
            and self._by_fingerprint.get(bytes.fromhex(key.fingerprint)) == key
        )

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self._by_fingerprint.values())


@dataclass(frozen=True)
class Vote:
    member_fingerprint: bytes
    signature: bytes


def sign_commit_vote(
    signer: ChainSigner, chain_id: str, height: int, consensus_round: int, block_id: bytes
) -> Vote:
    """This node's commit vote, signed through custody at (height, round, commit step)."""
    digest = vote_digest(chain_id, height, consensus_round, block_id)
    signature = signer.sign(
        digest, purpose=PURPOSE_VOTE, position=commit_vote_position(height, consensus_round)
    )
    return Vote(bytes.fromhex(signer.public_key.fingerprint), signature.raw)


@dataclass(frozen=True)
class CommitCertificate:
    chain_id: str
    height: int
    consensus_round: int
    block_id: bytes
    votes: tuple[Vote, ...]

    @classmethod
    def from_votes(
        cls,
        chain_id: str,
        height: int,
        consensus_round: int,
        block_id: bytes,
        votes: Iterable[Vote],
    ) -> CommitCertificate:
        """A certificate of ``votes`` in canonical (fingerprint) order."""
        ordered = tuple(sorted(votes, key=lambda vote: vote.member_fingerprint))
        return cls(chain_id, height, consensus_round, block_id, ordered)

    @property
    def digest(self) -> bytes:
        return vote_digest(self.chain_id, self.height, self.consensus_round, self.block_id)

    def encode(self) -> bytes:
        parts = [
            CERTIFICATE_MAGIC, u16(CERTIFICATE_VERSION), encode_chain_id(self.chain_id),
            u64(self.height), u32(self.consensus_round), self.block_id, u16(len(self.votes)),
        ]  # fmt: skip
        for vote in self.votes:
            parts += (vote.member_fingerprint, vote.signature)
        return b"".join(parts)

    def verify(self, membership: Membership, block: Block) -> None:
        """Raise ``CertificateInvalid`` unless this is a quorum of valid member votes for
        ``block`` (same chain, height and id; the round is the one the votes were cast in)."""
        header = block.header
        if (self.chain_id, self.height, self.block_id) != (
            header.chain_id,
            header.number,
            block.id,
        ):
            raise CertificateInvalid(
                f"certificate is for chain {self.chain_id!r} height {self.height} block "
                f"{self.block_id.hex()[:16]}, not chain {header.chain_id!r} height "
                f"{header.number} block {block.id.hex()[:16]}"
            )
        self.verify_votes(membership)

    def verify_votes(self, membership: Membership) -> None:
        digest = self.digest
        seen: set[bytes] = set()
        for index, vote in enumerate(self.votes):
            key = membership.key(vote.member_fingerprint)
            if key is None:
                raise CertificateInvalid(
                    f"vote {index} is by {vote.member_fingerprint.hex()[:16]}, not a member"
                )
            if vote.member_fingerprint in seen:
                raise CertificateInvalid(f"vote {index} repeats a member")
            seen.add(vote.member_fingerprint)
            try:
                key.verify(digest, vote.signature)
            except SignatureInvalid as exc:
                raise CertificateInvalid(
                    f"vote {index} by {vote.member_fingerprint.hex()[:16]} does not verify"
                ) from exc
        if len(seen) < membership.quorum:
            raise CertificateInvalid(
                f"{len(seen)} votes, a quorum of this membership of {membership.size} is "
                f"{membership.quorum}"
            )


def decode_certificate(data: bytes) -> CommitCertificate:
    """Parse certificate bytes: bounds, canonical vote order; signatures are not checked
    here (that needs the membership: ``CommitCertificate.verify``)."""
    reader = Reader(data, "commit certificate", MalformedCertificate)
    reader.expect(CERTIFICATE_MAGIC, "magic")
    version = reader.u16("format_version")
    if version != CERTIFICATE_VERSION:
        raise reader.fail("format_version", f"{version} is not supported")
    chain_id = reader.chain_id()
    height = reader.u64("height")
    consensus_round = reader.u32("consensus_round")
    block_id = reader.take(DIGEST_SIZE, "block_id")
    count = reader.u16("vote_count")
    if not 1 <= count <= members_max:
        raise reader.fail("vote_count", f"{count} outside [1, {members_max}]")
    votes: list[Vote] = []
    for index in range(count):
        fingerprint = reader.take(FINGERPRINT_BYTES, f"votes[{index}].fingerprint")
        if votes and fingerprint <= votes[-1].member_fingerprint:
            raise reader.fail(f"votes[{index}]", "fingerprints must be strictly ascending")
        votes.append(Vote(fingerprint, reader.take(SIGNATURE_BYTES, f"votes[{index}].signature")))
    reader.finish()
    return CommitCertificate(chain_id, height, consensus_round, block_id, tuple(votes))
