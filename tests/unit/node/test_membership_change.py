"""Membership on chain, changed by admin vote, effective at the next height (issue #6).

Five nodes run the BFT driver in one process over an in-memory broadcast: bank-a..bank-d
found the chain (their membership is ``tl.consensus.members`` in genesis); bank-d holds a
second key for a rotation; bank-e starts as a non-member. The admin then rotates bank-d's
key, adds bank-e and removes bank-c, one approved proposal at a time, and the tests check
that each change decides exactly from the block after its approval, and that a node
re-executing the chain (catch-up) verifies every certificate against the membership of its
own height, refusing one signed by the old membership after a change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from tests.unit.chain.support import SoftwareSigner
from tests.unit.node.membership_support import NodeChain, membership_batch, node_chains
from tests.unit.node.support import intkey_batches
from trusted_ledger.chain import CommitCertificate, sign_commit_vote
from trusted_ledger.chain.membership import ChainMember
from trusted_ledger.consensus import PersistentState, TimeoutConfig
from trusted_ledger.errors import CertificateInvalid, InvalidInput
from trusted_ledger.node.bft import BftDriver, member_id
from trusted_ledger.txn import Batch

CHAIN_ID = "membership-test"
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


@dataclass
class Node:
    chain: NodeChain
    persisted: list[PersistentState] = field(default_factory=list)
    driver: BftDriver | None = None

    @property
    def head(self) -> int:
        head = self.chain.store.head
        assert head is not None
        return head.number


class Broadcast:
    """Every broadcast reaches every other running node (next loop turn), except that a
    muted node neither sends nor receives (its messages are lost, as in a partition)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.muted: set[int] = set()

    def transport(self, sender: Node) -> _Transport:
        return _Transport(self, sender)


@dataclass
class _Transport:
    network: Broadcast
    sender: Node

    def broadcast(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        muted = {id(self.network.nodes[i]) for i in self.network.muted}
        if id(self.sender) in muted:
            return
        for node in self.network.nodes:
            if node is not self.sender and node.driver is not None and id(node) not in muted:
                loop.call_soon(node.driver.on_message, data)


def start(network: Broadcast, node: Node) -> None:
    chain = node.chain
    node.driver = BftDriver(
        store=chain.store,
        pool=chain.pool,
        publisher=chain.publisher,
        validator=chain.validator,
        signer=chain.ring,
        transport=network.transport(node),
        persist=node.persisted.append,
        restored=node.persisted[-1] if node.persisted else None,
        timeouts=TIMEOUTS,
        clock_ms=wall_ms,
        resend_interval_ms=100,
        idle_poll_ms=20,
    )
    node.driver.start()


def stop_all(nodes: Sequence[Node]) -> None:
    for node in nodes:
        if node.driver is not None:
            node.driver.stop()
            node.driver = None


async def wait_until(nodes: Sequence[Node], condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            state = "; ".join(
                f"{n.chain.name}: head {n.head} "
                + (f"h{n.driver.height} r{n.driver.round}" if n.driver else "stopped")
                for n in nodes
            )
            raise AssertionError(f"not reached in time; {state}")
        await asyncio.sleep(0.01)


async def commit(
    nodes: Sequence[Node], batches: Sequence[Batch], *, waiting_for: Sequence[Node] = ()
) -> int:
    """Put ``batches`` in every pool, wait until all nodes (or those ``waiting_for``)
    committed them; their height."""
    for node in nodes:
        node.chain.pool.add_many(batches, wall_ms())
    ids = {b.header_signature for b in batches}

    def done() -> bool:
        return all(
            set(n.chain.store.batches_committed_among(ids)) == ids for n in waiting_for or nodes
        )

    await wait_until(nodes, done)
    block_id = nodes[0].chain.store.block_id_of_batch(batches[0].header_signature)
    assert block_id is not None
    block = nodes[0].chain.store.block(block_id)
    assert block is not None
    return block.number


def signed_heights(signer: SoftwareSigner, purpose: str | None = None) -> set[int]:
    return {
        position.height
        for used, position, _digest in signer.signed
        if position is not None and (purpose is None or used == purpose)
    }


async def without(
    network: Broadcast, muted: int, nodes: Sequence[Node], batches: Sequence[Batch]
) -> None:
    """Commit ``batches`` while node ``muted`` is cut off, then reconnect it and wait until
    it has them too (relayed the decision when it re-sends a vote of that height)."""
    network.muted.add(muted)
    try:
        await commit(nodes, batches, waiting_for=[n for i, n in enumerate(nodes) if i != muted])
    finally:
        network.muted.discard(muted)
    await commit(nodes, batches)


@dataclass
class Phases:
    """The heights at which each change was approved, and the nodes."""

    nodes: list[Node]
    rotated: int
    added: int
    removed: int
    founders: list[ChainMember]
    after_rotation: list[ChainMember]
    after_addition: list[ChainMember]
    after_removal: list[ChainMember]


def _consortium() -> tuple[Broadcast, list[Node], SoftwareSigner]:
    keys = {name: [SoftwareSigner()] for name in ("bank-a", "bank-b", "bank-c", "bank-e")}
    d_new = SoftwareSigner()
    keys["bank-d"] = [SoftwareSigner(), d_new]
    order = ["bank-a", "bank-b", "bank-c", "bank-d", "bank-e"]
    chains = node_chains(CHAIN_ID, [(n, keys[n]) for n in order], founders=[0, 1, 2, 3])
    network = Broadcast()
    network.nodes = [Node(chain) for chain in chains]
    return network, network.nodes, d_new


async def _run_changes() -> Phases:
    network, nodes, d_new = _consortium()
    a, b, c, d, e = nodes
    for node in nodes:
        start(network, node)
    try:
        founders = [ChainMember(n.chain.name, n.chain.keys[0].public_key) for n in (a, b, c, d)]
        await commit(nodes, intkey_batches(1))
        after_rotation = [*founders[:3], ChainMember("bank-d", d_new.public_key)]
        rotated = await commit(nodes, [membership_batch(after_rotation, "rotate")])
        # With bank-c cut off for the next height, bank-d's vote under its new key is one
        # of the three a quorum of the four needs: that height cannot decide without it.
        # (Blocks are made only for pending batches, so nothing moves before this one.)
        await without(network, 2, nodes, intkey_batches(1))
        await commit(nodes, intkey_batches(1))
        after_addition = [*after_rotation, ChainMember("bank-e", e.chain.keys[0].public_key)]
        added = await commit(nodes, [membership_batch(after_addition, "add")])
        await without(network, 2, nodes, intkey_batches(1))  # bank-e's vote: needed
        await commit(nodes, intkey_batches(1))
        after_removal = [m for m in after_addition if m.name != "bank-c"]
        removed = await commit(nodes, [membership_batch(after_removal, "remove")])
        await commit(nodes, intkey_batches(1))
        await commit(nodes, intkey_batches(1))
        await wait_until(nodes, lambda: len({n.head for n in nodes}) == 1)
    finally:
        stop_all(nodes)
    return Phases(
        nodes, rotated, added, removed, founders, after_rotation, after_addition, after_removal
    )


@pytest.fixture(scope="module")
def phases() -> Phases:
    return asyncio.run(_run_changes())


def _expected(phases: Phases, height: int) -> list[ChainMember]:
    if height <= phases.rotated:
        return phases.founders
    if height <= phases.added:
        return phases.after_rotation
    if height <= phases.removed:
        return phases.after_addition
    return phases.after_removal


def test_each_change_decides_from_the_block_after_its_approval(phases: Phases) -> None:
    assert phases.rotated < phases.added < phases.removed < phases.nodes[0].head
    for node in phases.nodes:
        store, validator = node.chain.store, node.chain.validator
        for height in range(1, node.head + 1):
            members = validator.memberships.at(height)
            assert list(members.members) == _expected(phases, height), height
            assert members.on_chain
            block = store.block_at(height)
            assert block is not None
            assert block.header.proposer in members  # proposer of THAT height's membership
            certificate = store.certificate(block.id)
            assert certificate is not None
            certificate.verify(members.membership, block)
        # The same ids at every height on every node (no fork).
        assert [store.block_id_at(h) for h in range(node.head + 1)] == [
            phases.nodes[0].chain.store.block_id_at(h) for h in range(node.head + 1)
        ]


def test_the_rotated_member_signs_with_its_new_key_from_the_next_height(phases: Phases) -> None:
    d = phases.nodes[3].chain
    old, new = d.keys
    assert max(signed_heights(old)) <= phases.rotated
    assert min(signed_heights(new)) == phases.rotated + 1
    # Its precommit under the new key is in that height's certificate (the quorum needed it).
    height = phases.rotated + 1
    block = d.store.block_at(height)
    assert block is not None
    certificate = d.store.certificate(block.id)
    assert certificate is not None
    assert member_id(new.public_key) in {vote.member_fingerprint for vote in certificate.votes}
    assert d.ring.public_key == new.public_key


def test_the_added_member_signs_only_after_its_addition(phases: Phases) -> None:
    e = phases.nodes[4].chain.keys[0]
    assert signed_heights(e)
    assert min(signed_heights(e)) == phases.added + 1
    block = phases.nodes[4].chain.store.block_at(phases.added + 1)
    assert block is not None
    certificate = phases.nodes[4].chain.store.certificate(block.id)
    assert certificate is not None
    assert member_id(e.public_key) in {vote.member_fingerprint for vote in certificate.votes}
    # Before that it followed the chain as an observer: its store holds every block.
    assert phases.nodes[4].head == phases.nodes[0].head


def test_the_removed_member_stops_signing_and_its_votes_no_longer_count(phases: Phases) -> None:
    c = phases.nodes[2].chain
    assert max(signed_heights(c.keys[0])) <= phases.removed
    assert phases.nodes[2].head == phases.nodes[0].head  # it still follows the chain
    # A quorum-sized certificate that leans on the removed member is refused after removal.
    a, b, e = phases.nodes[0].chain, phases.nodes[1].chain, phases.nodes[4].chain
    height = phases.removed + 1
    block = a.store.block_at(height)
    assert block is not None
    keys = (a.keys[0], b.keys[0], c.keys[0], e.keys[0])
    signers = [SoftwareSigner(k._key) for k in keys]
    votes = [sign_commit_vote(s, CHAIN_ID, height, 7, block.id) for s in signers]
    forged = CommitCertificate.from_votes(CHAIN_ID, height, 7, block.id, votes)
    forged.verify(a.validator.memberships.at(phases.removed).membership, block)  # old: fine
    with pytest.raises(CertificateInvalid, match="not a member"):
        forged.verify(a.validator.membership_at(height), block)


def test_catch_up_verifies_each_certificate_against_its_own_heights_membership(
    phases: Phases,
) -> None:
    source = phases.nodes[0].chain
    fresh = _fresh_like(phases)
    top = source.store.head
    assert top is not None
    for height in range(1, top.number + 1):
        block = source.store.block_at(height)
        certificate = source.store.certificate(block.id)  # type: ignore[union-attr]
        assert block is not None and certificate is not None
        if height == phases.rotated + 1:
            # The same block certified by the OLD membership (bank-d's old key among the
            # votes): a quorum there, not here.
            old_signers = [SoftwareSigner(n.chain.keys[0]._key) for n in phases.nodes[:4]]
            votes = [
                sign_commit_vote(s, CHAIN_ID, height, certificate.consensus_round, block.id)
                for s in old_signers
            ]
            stale = CommitCertificate.from_votes(
                CHAIN_ID, height, certificate.consensus_round, block.id, votes
            )
            stale.verify(fresh.validator.memberships.at(phases.rotated).membership, block)
            with pytest.raises(CertificateInvalid, match="not a member"):
                fresh.validator.commit(block, stale)
            assert fresh.store.head is not None and fresh.store.head.number == height - 1
        fresh.validator.commit(block, certificate)
    assert fresh.store.head == source.store.head
    # The membership of a height beyond head + 1 is not known yet: never guessed.
    with pytest.raises(InvalidInput, match="not known yet"):
        fresh.validator.membership_at(top.number + 2)


def _fresh_like(phases: Phases) -> NodeChain:
    """A new node of the same chain (same genesis: the founders' keys) that has nothing
    but genesis, as a node that was away for every height."""
    founders = [(n.chain.name, n.chain.keys[:1]) for n in phases.nodes[:4]]
    chains = node_chains(CHAIN_ID, [*founders, ("late", [SoftwareSigner()])], [0, 1, 2, 3])
    return chains[-1]
