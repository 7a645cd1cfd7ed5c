"""Membership changes in consortium nodes over real loopback connections: the peer mesh
follows the on-chain membership (a rotated key re-authenticates, an added member is dialled
from the address book), and a member that was away catches up across the changes, checking
every certificate against the membership of its own height.

Five nodes: bank-a..bank-d found the chain, bank-d holds a second key, bank-e is in every
address book but not a member. With bank-e away, the admin rotates bank-d's key and adds
bank-e; then bank-e starts, catches up, and is needed for a quorum (bank-c stopped).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.unit.api.support import body_of
from tests.unit.chain.support import SoftwareSigner
from tests.unit.node.membership_support import NodeChain, membership_batch, node_chains
from tests.unit.node.support import intkey_batches
from tests.unit.node.test_consortium import SETTINGS, wall_ms
from trusted_ledger.chain import Block
from trusted_ledger.chain.membership import ChainMember
from trusted_ledger.consensus import PersistentState
from trusted_ledger.custody import PublicKey
from trusted_ledger.network import PeerServer
from trusted_ledger.node.consortium import Consortium, listen, peer_settings
from trusted_ledger.node.members import Member
from trusted_ledger.txn import Batch

CHAIN_ID = "membership-mesh"


@dataclass
class Node:
    chain: NodeChain
    server: PeerServer | None = None
    consortium: Consortium | None = None
    persisted: list[PersistentState] = field(default_factory=list)
    committed: list[Block] = field(default_factory=list)

    @property
    def head(self) -> int:
        head = self.chain.store.head
        assert head is not None
        return head.number


def _admit_any(_key: PublicKey) -> bool:
    return True  # the mesh itself refuses non-members (the server is bound before it exists)


async def bind(nodes: Sequence[Node]) -> list[Member]:
    for node in nodes:
        node.server = await listen(
            "127.0.0.1:0", peer_settings(CHAIN_ID, node.chain.ring, _admit_any)
        )
    return [
        Member(n.chain.name, n.chain.keys[0].public_key, f"127.0.0.1:{n.server.port}")  # type: ignore[union-attr]
        for n in nodes
    ]


def start(node: Node, book: Sequence[Member]) -> None:
    assert node.server is not None
    chain = node.chain
    node.consortium = Consortium(
        store=chain.store,
        pool=chain.pool,
        publisher=chain.publisher,
        validator=chain.validator,
        signer=chain.ring,
        members=book,
        persist=node.persisted.append,
        restored=node.persisted[-1] if node.persisted else None,
        clock_ms=wall_ms,
        settings=SETTINGS,
        on_commit=node.committed.append,
    )
    node.consortium.start(node.server)


async def stop(node: Node) -> None:
    if node.consortium is not None:
        await node.consortium.stop()
        node.consortium = None


async def wait_until(
    nodes: Sequence[Node], condition: Callable[[], bool], timeout_s: float = 20
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            state = "; ".join(
                f"{n.chain.name}: head {n.head}, "
                + (
                    f"h{n.consortium.height} peers {n.consortium.peers_connected}"
                    if n.consortium
                    else "stopped"
                )
                for n in nodes
            )
            raise AssertionError(f"not reached in time; {state}")
        await asyncio.sleep(0.02)


async def commit(via: Node, live: Sequence[Node], batches: Sequence[Batch]) -> int:
    """Submit to ``via`` (its pool, then gossip, as the API does); the height they landed at."""
    via.chain.pool.add_many(batches, wall_ms())
    assert via.consortium is not None
    via.consortium.gossip(body_of(*batches))
    ids = {b.header_signature for b in batches}
    await wait_until(
        live, lambda: all(set(n.chain.store.batches_committed_among(ids)) == ids for n in live)
    )
    block_id = via.chain.store.block_id_of_batch(batches[0].header_signature)
    block = None if block_id is None else via.chain.store.block(block_id)
    assert block is not None
    return block.number


def test_mesh_follows_the_membership_and_a_late_member_catches_up_across_changes() -> None:
    async def scenario() -> None:
        keys = {n: [SoftwareSigner()] for n in ("bank-a", "bank-b", "bank-c", "bank-e")}
        d_new = SoftwareSigner()
        keys["bank-d"] = [SoftwareSigner(), d_new]
        order = ["bank-a", "bank-b", "bank-c", "bank-d", "bank-e"]
        chains = node_chains(CHAIN_ID, [(n, keys[n]) for n in order], founders=[0, 1, 2, 3])
        nodes = [Node(chain) for chain in chains]
        a, b, c, d, e = nodes
        book = await bind(nodes)
        founders = [a, b, c, d]
        try:
            for node in founders:
                start(node, book)
            await wait_until(
                founders, lambda: all(n.consortium.peers_connected == 3 for n in founders)
            )  # type: ignore[union-attr]
            await commit(a, founders, intkey_batches(1))
            members = [ChainMember(n.chain.name, n.chain.keys[0].public_key) for n in founders]
            rotated_members = [*members[:3], ChainMember("bank-d", d_new.public_key)]
            rotated = await commit(a, founders, [membership_batch(rotated_members, "r")])
            # bank-d re-authenticates with its new key: the mesh is whole again, and blocks
            # after the change carry its new key's votes.
            await commit(b, founders, intkey_batches(1))
            await wait_until(
                founders, lambda: all(n.consortium.peers_connected == 3 for n in founders)
            )  # type: ignore[union-attr]
            with_e = [*rotated_members, ChainMember("bank-e", e.chain.keys[0].public_key)]
            added = await commit(c, founders, [membership_batch(with_e, "e")])
            for _ in range(2):  # 4 of 5 members: a quorum without bank-e
                await commit(d, founders, intkey_batches(1))
            top = a.head
            # bank-e arrives: catches up over the rotation and its own addition.
            start(e, book)
            await wait_until(nodes, lambda: e.head >= top)
            assert e.consortium is not None and e.consortium.caught_up_blocks >= top
            # ... and is needed now: with bank-c stopped, 4 of 5 is exactly a quorum.
            await stop(c)
            rest = [a, b, d, e]
            await wait_until(rest, lambda: all(n.consortium.peers_connected == 3 for n in rest))  # type: ignore[union-attr]
            last = await commit(e, rest, intkey_batches(2))
            assert last > top
            for node in rest:
                store, validator = node.chain.store, node.chain.validator
                for height in range(1, last + 1):
                    block = store.block_at(height)
                    assert block is not None
                    assert block.id == a.chain.store.block_id_at(height)
                    expected = (
                        members
                        if height <= rotated
                        else rotated_members
                        if height <= added
                        else with_e
                    )
                    assert list(validator.memberships.at(height).members) == expected
                    certificate = store.certificate(block.id)
                    assert certificate is not None
                    certificate.verify(validator.membership_at(height), block)
            # bank-e signed only as a member (it caught up over its addition first).
            heights = {p.height for _, p, _ in e.chain.keys[0].signed if p is not None}
            assert heights and min(heights) > added
        finally:
            for node in nodes:
                await stop(node)

    asyncio.run(scenario())


def test_a_member_away_during_its_own_rotation_catches_up_then_signs_with_the_new_key() -> None:
    """bank-d is stopped when the rotation of its key is approved. It comes back still
    presenting its old key (it has not seen the change): the others admit the keys of the
    membership before the last change, so it connects, catches up, and from the change on
    signs with its new key."""

    async def scenario() -> None:
        keys = {n: [SoftwareSigner()] for n in ("bank-a", "bank-b", "bank-c")}
        d_old, d_new = SoftwareSigner(), SoftwareSigner()
        keys["bank-d"] = [d_old, d_new]
        order = ["bank-a", "bank-b", "bank-c", "bank-d"]
        nodes = [
            Node(c) for c in node_chains(CHAIN_ID, [(n, keys[n]) for n in order], [0, 1, 2, 3])
        ]
        a, b, c, d = nodes
        book = await bind(nodes)
        try:
            for node in nodes:
                start(node, book)
            await commit(a, nodes, intkey_batches(1))
            await stop(d)
            live = [a, b, c]
            members = [ChainMember(n.chain.name, n.chain.keys[0].public_key) for n in nodes]
            rotated_members = [*members[:3], ChainMember("bank-d", d_new.public_key)]
            rotated = await commit(a, live, [membership_batch(rotated_members, "r")])
            await commit(b, live, intkey_batches(1))
            assert d.head < rotated and d.chain.ring.public_key == d_old.public_key
            port = next(m.port for m in book if m.name == "bank-d")
            d.server = await listen(
                f"127.0.0.1:{port}", peer_settings(CHAIN_ID, d.chain.ring, _admit_any)
            )
            start(d, book)
            await wait_until(nodes, lambda: d.head >= a.head)
            assert d.chain.ring.public_key == d_new.public_key
            # Needed now: with bank-c stopped, bank-d's new key makes the quorum of 3.
            await stop(c)
            rest = [a, b, d]
            last = await commit(d, rest, intkey_batches(1))
            assert max(p.height for _, p, _ in d_old.signed if p is not None) < rotated
            assert last in {p.height for _, p, _ in d_new.signed if p is not None}
            for node in rest:
                for height in range(1, last + 1):
                    block = node.chain.store.block_at(height)
                    certificate = None if block is None else node.chain.store.certificate(block.id)
                    assert block is not None and certificate is not None
                    certificate.verify(node.chain.validator.membership_at(height), block)
        finally:
            for node in nodes:
                await stop(node)

    asyncio.run(scenario())
