"""The BFT driver over real chains: four members in one process on an in-memory transport.

Each member has its own ChainStore on a MemoryDatabase (same genesis), the processing
layer's built-in families (intkey batches) and a ``SoftwareSigner`` that applies the signing
guard's rule. Then the consensus wire format: round trips and every malformed input.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.chain.support import SoftwareSigner
from tests.unit.node.support import intkey_batches, member_chains
from trusted_ledger.chain import (
    BatchPool,
    Block,
    BlockPublisher,
    BlockValidator,
    ChainStore,
    CommitCertificate,
)
from trusted_ledger.chain.block import BLOCK_MAGIC, FORMAT_VERSION
from trusted_ledger.chain.wire import u16, u32
from trusted_ledger.consensus import (
    PersistentState,
    Proposal,
    TimeoutConfig,
    VoteKind,
    VoteMessage,
    prevote_digest,
)
from trusted_ledger.custody import Position
from trusted_ledger.errors import InvalidInput, MalformedConsensusMessage
from trusted_ledger.hashing import sha256
from trusted_ledger.node.bft import BftDriver, member_id
from trusted_ledger.node.bft_wire import (
    WireProposal,
    WireVote,
    block_id_of,
    decode_message,
    encode_proposal,
    encode_vote,
)
from trusted_ledger.txn import Batch

CHAIN_ID = "bft-test"
TIMEOUTS = TimeoutConfig(
    propose_ms=120,
    propose_delta_ms=20,
    prevote_ms=60,
    prevote_delta_ms=10,
    precommit_ms=60,
    precommit_delta_ms=10,
)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# --- a consortium of four in one process ----------------------------------------------------


@dataclass
class Member:
    index: int
    private_key: ec.EllipticCurvePrivateKey
    signer: SoftwareSigner
    store: ChainStore
    pool: BatchPool
    publisher: BlockPublisher
    validator: BlockValidator
    persisted: list[PersistentState] = field(default_factory=list)
    driver: BftDriver | None = None
    committed: list[tuple[Block, CommitCertificate]] = field(default_factory=list)

    @property
    def head_number(self) -> int:
        head = self.store.head
        assert head is not None
        return head.number


class Network:
    """Broadcast = schedule delivery to every other running member on the loop; ``drop``
    and ``delay_s`` are the fault hooks (per sender and receiver)."""

    def __init__(self) -> None:
        self.members: list[Member] = []
        self.drop: Callable[[int, int], bool] = lambda _src, _dst: False
        self.delay_s: Callable[[int, int], float] = lambda _src, _dst: 0.0
        self.sent = 0

    def transport(self, index: int) -> MemberTransport:
        return MemberTransport(self, index)

    def deliver(self, src: int, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.sent += 1
        for member in self.members:
            if member.index == src or self.drop(src, member.index):
                continue
            loop.call_later(self.delay_s(src, member.index), self._receive, member, data)

    @staticmethod
    def _receive(member: Member, data: bytes) -> None:
        if member.driver is not None:
            member.driver.on_message(data)


@dataclass
class MemberTransport:
    network: Network
    index: int
    outgoing: Callable[[bytes], Sequence[bytes]] = lambda data: (data,)
    """A hook for Byzantine behaviour: what this member really sends for one broadcast."""

    def broadcast(self, data: bytes) -> None:
        for item in self.outgoing(data):
            self.network.deliver(self.index, item)


def make_consortium(size: int = 4) -> tuple[Network, list[Member]]:
    network = Network()
    for index, chain in enumerate(member_chains(size, CHAIN_ID)):
        network.members.append(
            Member(
                index,
                chain.private_key,
                chain.signer,
                chain.store,
                chain.pool,
                chain.publisher,
                chain.validator,
            )
        )
    _consortium[:] = network.members
    return network, network.members


def start_driver(
    network: Network, member: Member, *, transport: MemberTransport | None = None
) -> BftDriver:
    """A driver for ``member``, restored from its last persisted state (if any)."""
    restored = member.persisted[-1] if member.persisted else None
    driver = BftDriver(
        store=member.store,
        pool=member.pool,
        publisher=member.publisher,
        validator=member.validator,
        signer=member.signer,
        members=[m.signer.public_key for m in network.members],
        transport=transport or network.transport(member.index),
        persist=member.persisted.append,
        restored=restored,
        timeouts=TIMEOUTS,
        clock_ms=wall_ms,
        resend_interval_ms=100,
        idle_poll_ms=20,
        on_commit=lambda block, cert: member.committed.append((block, cert)),
    )
    member.driver = driver
    driver.start()
    return driver


def stop_driver(member: Member) -> None:
    assert member.driver is not None
    member.driver.stop()
    member.driver = None


def submit(members: Sequence[Member], batches: Sequence[Batch]) -> None:
    for member in members:
        member.pool.add_many(batches, wall_ms())


_consortium: list[Member] = []


def describe() -> str:
    """Heads, heights and rounds of the consortium, for a failure message."""
    return "; ".join(
        f"m{m.index}: head {m.head_number}, pool {len(m.pool)}, "
        + (f"h{m.driver.height} r{m.driver.round}" if m.driver else "stopped")
        for m in _consortium
    )


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time; state: {describe()}")
        await asyncio.sleep(0.01)


def all_committed(members: Sequence[Member], batches: Sequence[Batch]) -> Callable[[], bool]:
    ids = [b.header_signature for b in batches]
    return lambda: all(
        not member.store.batches_committed_among(ids) ^ set(ids) for member in members
    )


def check_no_fork_and_certified(members: Sequence[Member]) -> None:
    """Invariant 1 across every pair of members, and every certificate verifies against the
    four-member membership."""
    membership = members[0].validator.membership
    top = max(member.head_number for member in members)
    for number in range(top + 1):
        ids = {
            block_id
            for member in members
            if (block_id := member.store.block_id_at(number)) is not None
        }
        assert len(ids) == 1, f"fork at height {number}"
    for member in members:
        for number in range(1, member.head_number + 1):
            block = member.store.block_at(number)
            assert block is not None
            certificate = member.store.certificate(block.id)
            assert certificate is not None
            certificate.verify(membership, block)


def check_no_double_signing(member: Member) -> None:
    """Never two different digests at one guard position (invariant 3)."""
    seen: dict[Position, bytes] = {}
    for _purpose, position, digest in member.signer.signed:
        if position is not None:
            assert seen.setdefault(position, digest) == digest, f"double signing at {position}"


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


# --- consensus over real chains ------------------------------------------------------------


def test_four_members_commit_the_same_blocks() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        for member in members:
            start_driver(network, member)
        first = intkey_batches(3)
        submit(members, first)  # no gossip yet: every pool gets them
        await wait_until(all_committed(members, first))
        only_one = intkey_batches(2)
        submit(members[2:3], only_one)  # one pool: commits when member 2 proposes
        await wait_until(all_committed(members, only_one))
        await wait_until(lambda: len({m.head_number for m in members}) == 1)
        for member in members:
            stop_driver(member)
        heads = {member.store.head for member in members}
        assert len(heads) == 1 and next(iter(heads)) is not None
        check_no_fork_and_certified(members)
        for member in members:
            assert len(member.pool) == 0
            check_no_double_signing(member)
            head = member.store.head
            assert head is not None and head.number >= 2
            roots = {m.store.block_at(head.number).header.state_root for m in members}  # type: ignore[union-attr]
            assert roots == {head.state_root}

    run(scenario)


def test_a_silent_member_does_not_stop_the_others() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        live = members[:3]
        for member in live:
            start_driver(network, member)
        # Heights 1..5 include height 3, whose round-0 proposer is the silent member 3.
        for _ in range(5):
            batches = intkey_batches(1)
            submit(live, batches)
            await wait_until(all_committed(live, batches))
        for member in live:
            stop_driver(member)
        check_no_fork_and_certified(live)
        assert min(m.head_number for m in live) >= 5
        assert members[3].head_number == 0
        rounds = {m.store.block_at(3).header.consensus_round for m in live}  # type: ignore[union-attr]
        assert rounds != {0}  # round 0 of height 3 was the silent member's: it failed

    run(scenario)


def test_two_of_four_stopped_make_no_progress_until_one_returns() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        for member in members:
            start_driver(network, member)
        stop_driver(members[2])
        stop_driver(members[3])
        batches = intkey_batches(2)
        submit(members, batches)
        await asyncio.sleep(1.0)
        assert [m.head_number for m in members] == [0, 0, 0, 0]
        # No quorum, so not even a round change: 2 messages never make 2f+1 (line 34).
        start_driver(network, members[2])  # back, from its persisted state
        live = members[:3]
        await wait_until(all_committed(live, batches), timeout_s=15)
        for member in live:
            stop_driver(member)
        check_no_fork_and_certified(members)
        for member in members:
            check_no_double_signing(member)

    run(scenario)


def test_an_equivocating_member_is_reported_and_nothing_forks() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        byzantine = members[3]
        # The same key without its guard: what a compromised node could sign.
        rogue = SoftwareSigner(byzantine.private_key)

        def equivocate(data: bytes) -> Sequence[bytes]:
            decoded = decode_message(data)
            if not isinstance(decoded, WireVote) or decoded.vote.kind is not VoteKind.PREVOTE:
                return (data,)
            vote = decoded.vote
            other = sha256(b"a block nobody proposed" + bytes([vote.round % 256]))
            digest = prevote_digest(CHAIN_ID, vote.height, vote.round, other)
            signature = rogue.sign(digest, purpose="prevote").raw
            forged = VoteMessage(vote.kind, vote.height, vote.round, other, vote.voter, signature)
            return (encode_vote(CHAIN_ID, forged), data)  # the conflicting one first

        transport = network.transport(3)
        transport.outgoing = equivocate
        # Honest traffic is slower, so the honest members hear both prevotes before they
        # decide without member 3 (after a decision the height's messages are ignored).
        network.delay_s = lambda src, _dst: 0.0 if src == 3 else 0.03
        start_driver(network, byzantine, transport=transport)
        honest = members[:3]
        for member in honest:
            start_driver(network, member)
        batches = intkey_batches(4)
        submit(members, batches)
        await wait_until(all_committed(honest, batches))
        await wait_until(lambda: all(m.driver is not None and m.driver.evidence for m in honest))
        stop_driver(byzantine)
        reports = [
            report
            for member in honest
            for report in (member.driver.evidence if member.driver else ())
        ]
        assert reports and {r.member for r in reports} == {member_id(byzantine.signer.public_key)}
        assert all(
            isinstance(r.first, VoteMessage) and r.first.block_id != r.second.block_id  # type: ignore[union-attr]
            for r in reports
        )
        for member in honest:
            stop_driver(member)
        check_no_fork_and_certified(members)

    run(scenario)


def test_a_restarted_member_resumes_without_double_signing() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        live = members[:3]  # member 3 stays silent, so every decision needs member 1
        for member in live:
            start_driver(network, member)
        restarted = members[1]
        for delay_s in (0.0, 0.03, 0.08, 0.15):  # crash at different points of a height
            batches = intkey_batches(2)
            submit(live, batches)
            await asyncio.sleep(delay_s)
            stop_driver(restarted)  # a crash: the store, pool and persisted state remain
            start_driver(network, restarted)
            await wait_until(all_committed(live, batches), timeout_s=15)
        assert restarted.persisted and restarted.driver is not None
        assert restarted.driver.signing_refusals == 0
        for member in live:
            stop_driver(member)
        check_no_fork_and_certified(live)
        for member in live:
            check_no_double_signing(member)

    run(scenario)


def test_a_lost_and_delayed_network_still_agrees() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        rng = random.Random(6)
        network.drop = lambda _src, _dst: rng.random() < 0.2
        network.delay_s = lambda _src, _dst: rng.random() * 0.02
        for member in members:
            start_driver(network, member)
        batches = intkey_batches(4)
        submit(members, batches)
        await wait_until(all_committed(members, batches), timeout_s=15)
        for member in members:
            stop_driver(member)
        check_no_fork_and_certified(members)

    run(scenario)


def test_inbound_messages_that_do_not_authenticate_are_dropped() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        driver = start_driver(network, members[0])
        outsider = SoftwareSigner()
        height = driver.height
        digest = prevote_digest(CHAIN_ID, height, 0, None)
        from_outsider = VoteMessage(
            VoteKind.PREVOTE, height, 0, None, member_id(outsider.public_key),
            outsider.sign(digest, purpose="prevote").raw,
        )  # fmt: skip
        forged = VoteMessage(
            VoteKind.PREVOTE, height, 0, None, member_id(members[1].signer.public_key),
            outsider.sign(digest, purpose="prevote").raw,
        )  # fmt: skip
        behind: list[int] = []
        driver._on_behind = behind.append  # the catch-up hook
        ahead = VoteMessage(
            VoteKind.PREVOTE, height + 5, 0, None, member_id(members[1].signer.public_key),
            members[1].signer.sign(
                prevote_digest(CHAIN_ID, height + 5, 0, None), purpose="prevote"
            ).raw,
        )  # fmt: skip
        for message in (from_outsider, forged, ahead):
            driver.on_message(encode_vote(CHAIN_ID, message))
        driver.on_message(b"garbage")
        driver.on_message(encode_vote("other-chain", forged))
        assert behind == [height + 5]
        assert driver.round == 0
        stop_driver(members[0])

    run(scenario)


# --- the wire format --------------------------------------------------------------------------

members_ids = st.binary(min_size=32, max_size=32)
signatures = st.binary(min_size=64, max_size=64)
block_ids = st.binary(min_size=32, max_size=32).filter(any)
chain_ids = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True)


def block_frame(header: bytes, tail: bytes = b"") -> bytes:
    return BLOCK_MAGIC + u16(FORMAT_VERSION) + u32(len(header)) + header + tail


@given(
    chain_ids,
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.sampled_from([VoteKind.PREVOTE, VoteKind.PRECOMMIT]),
    st.one_of(st.none(), block_ids),
    members_ids,
    signatures,
)
def test_votes_round_trip(
    chain_id: str,
    height: int,
    consensus_round: int,
    kind: VoteKind,
    block_id: bytes | None,
    voter: bytes,
    signature: bytes,
) -> None:
    vote = VoteMessage(kind, height, consensus_round, block_id, voter, signature)
    data = encode_vote(chain_id, vote)
    assert decode_message(data) == WireVote(chain_id, vote)


@given(
    chain_ids,
    st.integers(0, 2**64 - 1),
    st.integers(1, 2**32 - 1),
    st.data(),
    members_ids,
    signatures,
    st.binary(min_size=1, max_size=512),
    st.binary(max_size=300),
)
def test_proposals_round_trip(
    chain_id: str,
    height: int,
    consensus_round: int,
    data: st.DataObject,
    proposer: bytes,
    signature: bytes,
    header: bytes,
    tail: bytes,
) -> None:
    valid_round = data.draw(st.integers(-1, consensus_round - 1))
    block = block_frame(header, tail)
    proposal = Proposal(height, consensus_round, sha256(header), valid_round, proposer, signature)
    encoded = encode_proposal(chain_id, proposal, block)
    assert decode_message(encoded) == WireProposal(chain_id, proposal, block)


def sample_encodings() -> list[bytes]:
    block = block_frame(b"header", b"body")
    proposal = Proposal(9, 3, sha256(b"header"), 1, bytes(range(32)), bytes(64))
    nil = VoteMessage(VoteKind.PREVOTE, 9, 3, None, bytes(range(32)), bytes(64))
    vote = VoteMessage(VoteKind.PRECOMMIT, 9, 3, sha256(b"x"), bytes(range(32)), bytes(64))
    return [
        encode_proposal(CHAIN_ID, proposal, block),
        encode_vote(CHAIN_ID, nil),
        encode_vote(CHAIN_ID, vote),
    ]


@pytest.mark.parametrize("encoded", sample_encodings())
def test_every_truncation_and_extension_is_refused(encoded: bytes) -> None:
    decode_message(encoded)
    for size in range(len(encoded)):
        with pytest.raises(MalformedConsensusMessage):
            decode_message(encoded[:size])
    for extra in (b"\x00", b"\xff", b"\x00" * 100):
        with pytest.raises(MalformedConsensusMessage, match="trailing"):
            decode_message(encoded + extra)


def test_bad_fields_are_named() -> None:
    proposal_bytes, nil_bytes, _ = sample_encodings()
    cases = {
        b"XXXX" + nil_bytes[4:]: "magic",
        nil_bytes[:4] + u16(2) + nil_bytes[6:]: "version",
        nil_bytes[:6] + b"\x07" + nil_bytes[7:]: "kind",
        nil_bytes[:7] + b"\x03ABC" + nil_bytes[7 + 1 + len(CHAIN_ID) :]: "chain_id",
    }
    # valid_round not below round: the field after kind, chain id, height, round, ids.
    offset = 7 + 1 + len(CHAIN_ID) + 8 + 4 + 32 + 64
    cases[proposal_bytes[:offset] + u32(3) + proposal_bytes[offset + 4 :]] = "valid_round"
    cases[proposal_bytes[: offset + 4] + u32(10**6) + proposal_bytes[offset + 8 :]] = "block"
    for data, field_name in cases.items():
        with pytest.raises(MalformedConsensusMessage, match=field_name):
            decode_message(data)


def test_block_bound_and_block_frame_are_enforced() -> None:
    proposal_bytes, _, _ = sample_encodings()
    with pytest.raises(MalformedConsensusMessage):
        decode_message(proposal_bytes, block_bytes_max=8)
    with pytest.raises(MalformedConsensusMessage, match=r"block\.magic"):
        block_id_of(b"NOPE" + block_frame(b"h")[4:])
    proposal = Proposal(1, 1, sha256(b"other"), -1, bytes(32), bytes(64))
    with pytest.raises(InvalidInput, match="not the block"):
        encode_proposal(CHAIN_ID, proposal, block_frame(b"header"))
    with pytest.raises(InvalidInput):
        encode_vote(CHAIN_ID, VoteMessage(VoteKind.PREVOTE, 1, 0, bytes(32), bytes(32), bytes(64)))
