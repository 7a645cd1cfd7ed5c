"""The consortium node: members file, catch-up wire, and four members over real connections.

The four members run in one process on one asyncio loop, each with its own ChainStore on a
MemoryDatabase (one genesis), a ``SoftwareSigner`` and real ``network`` connections on
loopback: servers bind port 0 first, then the members list is written with the bound ports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.unit.api.support import ADMIN, body_of
from tests.unit.chain.support import SoftwareSigner
from tests.unit.node.support import intkey_batches, member_chains
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    Block,
    BlockPublisher,
    BlockValidator,
    ChainStore,
    PublisherLimits,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.consensus import PersistentState, TimeoutConfig
from trusted_ledger.consensus.types import Step
from trusted_ledger.custody import Position, SigningGuard
from trusted_ledger.custody.guard import ROUND_MAX, STEP_MAX
from trusted_ledger.errors import ConfigurationError, MalformedCatchUpMessage
from trusted_ledger.network import MessageType, PeerServer, connect
from trusted_ledger.node.catchup import (
    BlockResponse,
    ConsensusStateFile,
    decode_block_request,
    decode_block_response,
    encode_block_request,
    encode_block_response,
)
from trusted_ledger.node.consortium import (
    Consortium,
    ConsortiumSettings,
    listen,
    peer_settings,
)
from trusted_ledger.node.guard_check import GuardCheck, GuardedKey
from trusted_ledger.node.members import Member, load_members, render_members, write_members
from trusted_ledger.processing.families import IdentitySubmissionPolicy, builtin_registry
from trusted_ledger.processing.families import identity as ident
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import Batch

CHAIN_ID = "consortium-test"
SETTINGS = ConsortiumSettings(
    timeouts=TimeoutConfig(
        propose_ms=150,
        propose_delta_ms=30,
        prevote_ms=80,
        prevote_delta_ms=20,
        precommit_ms=80,
        precommit_delta_ms=20,
    ),
    resend_interval_ms=100,
    idle_poll_ms=20,
    reconnect_initial_ms=50,
    reconnect_max_ms=400,
    head_probe_interval_ms=300,
    block_response_timeout_ms=1000,
)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# --- members file ----------------------------------------------------------------------------


def _members(count: int = 3) -> list[Member]:
    return [
        Member(f"bank-{i}", SoftwareSigner().public_key, f"127.0.0.1:{7000 + i}")
        for i in range(count)
    ]


def test_members_file_round_trip(tmp_path: Path) -> None:
    members = _members()
    path = tmp_path / "members.toml"
    write_members(path, members)
    assert load_members(path) == members  # same order: the proposer rotation


def _entry(member: Member) -> str:
    return (
        f'[[member]]\nname = "{member.name}"\n'
        f'public_key = "{member.public_key.spki_der.hex()}"\naddress = "{member.address}"\n'
    )


_A, _B = _members(2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no [[member]] entry"),
        ("x = 1\n", "unknown key 'x'"),
        ("member = 3\n", "no [[member]] entry"),
        (_entry(_A).replace("address", "adress"), "member 0 ('bank-0'): unknown key 'adress'"),
        (_entry(_A).replace('name = "bank-0"', "name = 7"), "member 0: name must be a string"),
        (_entry(_A).replace("bank-0", "-bad"), "name must be 1..64 characters"),
        (_entry(_A).replace(_A.public_key.spki_der.hex(), "zz"), "public_key is not hex"),
        (_entry(_A).replace(_A.public_key.spki_der.hex(), "00ff"), "not a usable key"),
        (_entry(_A).replace(_A.public_key.spki_der.hex(), "ab" * 600), "at most 1024"),
        (_entry(_A).replace("127.0.0.1:7000", "localhost"), "address must be HOST:PORT"),
        (_entry(_A).replace("127.0.0.1:7000", "h:0"), "address must be HOST:PORT"),
        (_entry(_A) + _entry(_A), "member 1 ('bank-0') has the same name as member 0"),
        (
            _entry(_A)
            + _entry(_B).replace(_B.public_key.spki_der.hex(), _A.public_key.spki_der.hex()),
            "member 1 ('bank-1') has the same public_key as member 0",
        ),
        (
            _entry(_A) + _entry(_B).replace("7001", "7000"),
            "member 1 ('bank-1') has the same address as member 0",
        ),
        ("[[member]\n", "is not valid TOML"),
    ],
)
def test_members_file_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "members.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_members(path)
    assert message in str(caught.value)


def test_members_file_missing_and_too_many(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_members(tmp_path / "nope.toml")
    member = _A
    many = "".join(_entry(Member(f"m{i}", member.public_key, f"h:{i + 1}")) for i in range(257))
    (tmp_path / "many.toml").write_text(many)
    with pytest.raises(ConfigurationError, match="257 members, at most 256"):
        load_members(tmp_path / "many.toml")


def test_render_refuses_an_empty_list() -> None:
    with pytest.raises(Exception, match="at least one member"):
        render_members([])


# --- catch-up wire and the state file ---------------------------------------------------


def test_block_request_and_response_round_trip_and_refusals() -> None:
    assert decode_block_request(encode_block_request(5, 16), 16) == (5, 16)
    for bad in (encode_block_request(5, 17), encode_block_request(5, 1)[:-1], b"XXXX" + bytes(12)):
        with pytest.raises(MalformedCatchUpMessage):
            decode_block_request(bad, 16)
    response = BlockResponse(9, 7, b"block-bytes", b"certificate")
    data = encode_block_response(response)
    assert decode_block_response(data) == response
    empty = BlockResponse(3, 4, b"", b"")
    assert decode_block_response(encode_block_response(empty)) == empty
    for bad in (data[:-1], data + b"\0", data[:4] + b"\0\2" + data[6:], data[:30]):
        with pytest.raises(MalformedCatchUpMessage):
            decode_block_response(bad)
    with pytest.raises(MalformedCatchUpMessage, match="above the responder's head"):
        encode_block_response(BlockResponse(6, 7, b"b", b"c"))
    with pytest.raises(MalformedCatchUpMessage, match="comes with its certificate"):
        encode_block_response(BlockResponse(9, 7, b"b", b""))


def test_consensus_state_file_round_trip(tmp_path: Path) -> None:
    state_file = ConsensusStateFile(tmp_path / "consensus" / "state.json")
    assert state_file.load() is None
    state = PersistentState(4, 2, Step.PRECOMMIT, 1, b"\1" * 32, 1, None)
    state_file.save(state)
    assert state_file.load() == state
    state_file.path.write_text("{")
    with pytest.raises(ConfigurationError, match="unreadable"):
        state_file.load()


# --- four members over real connections -----------------------------------------------------


@dataclass
class Node:
    index: int
    signer: SoftwareSigner
    store: ChainStore
    pool: BatchPool
    publisher: BlockPublisher
    validator: BlockValidator
    server: PeerServer | None = None
    consortium: Consortium | None = None
    persisted: list[PersistentState] = field(default_factory=list)
    committed: list[Block] = field(default_factory=list)

    @property
    def head(self) -> int:
        head = self.store.head
        assert head is not None
        return head.number


def make_nodes(size: int = 4) -> list[Node]:
    return [
        Node(index, c.signer, c.store, c.pool, c.publisher, c.validator)
        for index, c in enumerate(member_chains(size, CHAIN_ID))
    ]


async def bind(nodes: Sequence[Node]) -> list[Member]:
    """Listen on free ports, then the members list with those ports (file order = index)."""
    provisional = [Member(f"bank-{n.index}", n.signer.public_key, "127.0.0.1:1") for n in nodes]
    for node in nodes:
        node.server = await listen("127.0.0.1:0", peer_settings(CHAIN_ID, node.signer, provisional))
    return [
        Member(f"bank-{n.index}", n.signer.public_key, f"127.0.0.1:{n.server.port}")  # type: ignore[union-attr]
        for n in nodes
    ]


async def start(
    node: Node, members: Sequence[Member], guard_check: GuardCheck | None = None
) -> Consortium:
    if node.server is None or node.server.closing:
        port = next(m.port for m in members if m.fingerprint == node.signer.public_key.fingerprint)
        node.server = await listen(
            f"127.0.0.1:{port}", peer_settings(CHAIN_ID, node.signer, members)
        )
    consortium = Consortium(
        store=node.store,
        pool=node.pool,
        publisher=node.publisher,
        validator=node.validator,
        signer=node.signer,
        members=members,
        persist=node.persisted.append,
        restored=node.persisted[-1] if node.persisted else None,
        clock_ms=wall_ms,
        settings=SETTINGS,
        on_commit=node.committed.append,
        guard_check=guard_check,
    )
    node.consortium = consortium
    consortium.start(node.server)
    return consortium


async def stop(node: Node) -> None:
    assert node.consortium is not None
    await node.consortium.stop()
    node.consortium = None


def submit(node: Node, items: Sequence[Batch]) -> None:
    """What the API does on acceptance: into this node's pool, then gossip."""
    node.pool.add_many(items, wall_ms())
    assert node.consortium is not None
    node.consortium.gossip(body_of(*items))


def describe(nodes: Sequence[Node]) -> str:
    return "; ".join(
        f"n{n.index}: head {n.head}, pool {len(n.pool)}, "
        + (
            f"h{n.consortium.height} r{n.consortium.round} peers {n.consortium.peers_connected}"
            if n.consortium
            else "stopped"
        )
        for n in nodes
    )


async def wait_until(
    nodes: Sequence[Node], condition: Callable[[], bool], timeout_s: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time; {describe(nodes)}")
        await asyncio.sleep(0.02)


def committed_on(nodes: Sequence[Node], items: Sequence[Batch]) -> Callable[[], bool]:
    ids = {b.header_signature for b in items}
    return lambda: all(set(n.store.batches_committed_among(ids)) == ids for n in nodes)


def check_same_chain(nodes: Sequence[Node]) -> None:
    """Identical blocks at every height all hold, each with a certificate that verifies."""
    membership = nodes[0].validator.membership
    top = min(n.head for n in nodes)
    for number in range(1, top + 1):
        ids = {n.store.block_id_at(number) for n in nodes}
        assert len(ids) == 1, f"fork at height {number}"
        for node in nodes:
            block = node.store.block_at(number)
            assert block is not None
            certificate = node.store.certificate(block.id)
            assert certificate is not None
            certificate.verify(membership, block)


async def fully_connected(nodes: Sequence[Node]) -> None:
    await wait_until(
        nodes,
        lambda: all(n.consortium and n.consortium.peers_connected == len(nodes) - 1 for n in nodes),
    )


def test_batches_gossiped_from_one_node_commit_on_all() -> None:
    async def scenario() -> None:
        nodes = make_nodes()
        members = await bind(nodes)
        for node in nodes:
            await start(node, members)
        try:
            await fully_connected(nodes)
            for round_number in range(3):
                items = intkey_batches(3)
                submit(nodes[round_number], items)  # one pool; the others get it by gossip
                await wait_until(nodes, committed_on(nodes, items))
            await wait_until(nodes, lambda: len({n.head for n in nodes}) == 1)
            check_same_chain(nodes)
            assert {n.store.head for n in nodes} == {nodes[0].store.head}
            assert all(len(n.pool) == 0 for n in nodes)
        finally:
            for node in nodes:
                await stop(node)

    asyncio.run(scenario())


def test_a_member_away_for_some_heights_catches_up_and_takes_part_again() -> None:
    async def scenario() -> None:
        nodes = make_nodes()
        members = await bind(nodes)
        late = nodes[3]
        live = nodes[:3]
        # Not listening while away (else the others' connections, and their consensus
        # messages of heights 1..4, would wait in its accept backlog).
        assert late.server is not None
        await late.server.close()
        for node in live:
            await start(node, members)
        try:
            for _ in range(4):  # one block each: heights 1..4 without the late member
                items = intkey_batches(1)
                submit(live[0], items)
                await wait_until(live, committed_on(live, items))
            assert late.head == 0
            await start(late, members)
            await wait_until(nodes, lambda: late.head >= 4)
            assert late.consortium is not None and late.consortium.caught_up_blocks == 4
            # Now progress needs the late member: stop another one (3 of 4 is a quorum).
            await stop(nodes[1])
            rest = [nodes[0], nodes[2], late]
            items = intkey_batches(2)
            submit(late, items)
            await wait_until(rest, committed_on(rest, items), timeout_s=15)
            check_same_chain(rest)
            # Node 1 was stopped and its connections closed; it comes back and catches up.
            await start(nodes[1], members)
            await wait_until(nodes, lambda: nodes[1].head == late.head)
            check_same_chain(nodes)
        finally:
            for node in nodes:
                if node.consortium is not None:
                    await stop(node)

    asyncio.run(scenario())


def test_a_peer_sending_garbage_is_disconnected_and_the_rest_continue() -> None:
    async def scenario() -> None:
        nodes = make_nodes()
        members = await bind(nodes)
        for node in nodes:
            await start(node, members)
        try:
            await fully_connected(nodes)
            # A connection under the key with the smallest fingerprint (the one that dials
            # everybody) to another member: it replaces the real one, then sends garbage.
            ordered = sorted(nodes, key=lambda n: n.signer.public_key.fingerprint)
            liar, target = ordered[0], ordered[1]
            target_member = next(
                m for m in members if m.fingerprint == target.signer.public_key.fingerprint
            )
            settings = peer_settings(CHAIN_ID, liar.signer, members)
            rogue = await connect(
                target_member.host,
                target_member.port,
                settings,
                expected_peer=target_member.public_key,
            )
            rogue.send(MessageType.CONSENSUS, b"TLCM garbage")
            await asyncio.wait_for(rogue.wait_closed(), 5)
            assert rogue.closed
            # The rest continue, and the liar's real node reconnects.
            items = intkey_batches(2)
            submit(nodes[2], items)
            await wait_until(nodes, committed_on(nodes, items))
            await fully_connected(nodes)
            # Garbage of the other kinds is refused the same way.
            for message_type, payload in (
                (MessageType.BATCHES, b"\xff\xff not a batch list"),
                (MessageType.BLOCK_REQUEST, b"short"),
                (MessageType.BLOCK_RESPONSE, b"TLBS nonsense"),
            ):
                rogue = await connect(
                    target_member.host,
                    target_member.port,
                    settings,
                    expected_peer=target_member.public_key,
                )
                rogue.send(message_type, payload)
                await asyncio.wait_for(rogue.wait_closed(), 5)
            items = intkey_batches(2)
            submit(nodes[3], items)
            await wait_until(nodes, committed_on(nodes, items))
            check_same_chain(nodes)
        finally:
            for node in nodes:
                await stop(node)

    asyncio.run(scenario())


def _restored_from_genesis(node: Node) -> None:
    """The member's chain as an old snapshot of it would be: genesis only (same genesis,
    same key), its pool empty."""
    genesis = node.store.block_at(0)
    assert genesis is not None
    certificate = node.store.certificate(genesis.id)
    assert certificate is not None
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    update = genesis_update(store.state, ident.identity_genesis_changes([ADMIN.public_key_hex]))
    store.commit(genesis, certificate, update, {})
    executor = ProcessingBlockExecutor(
        builtin_registry(), store.state, policy_factory=IdentitySubmissionPolicy
    )
    node.store, node.pool = store, BatchPool()
    node.publisher = BlockPublisher(store, node.pool, executor, node.signer, PublisherLimits())
    node.validator = BlockValidator(store, executor, node.validator.membership)


def test_a_member_restored_from_an_old_snapshot_raises_its_guard_while_catching_up(
    tmp_path: Path,
) -> None:
    """A member whose chain and guard are put back to an old copy (as by reverting a VM
    snapshot) catches up; every caught-up block whose certificate holds its own vote raises
    its guard (node/guard_check.py), before it signs at any height again."""

    async def scenario() -> None:
        nodes = make_nodes()
        members = await bind(nodes)
        restored = nodes[3]
        mine = restored.signer.public_key.fingerprint
        for node in nodes:
            await start(node, members)
        try:
            voted: list[int] = []
            for _ in range(8):  # until a certificate carries the member's own vote
                items = intkey_batches(1)
                submit(nodes[0], items)
                await wait_until(nodes, committed_on(nodes, items))
                block = nodes[0].store.block_at(nodes[0].head)
                assert block is not None
                certificate = nodes[0].store.certificate(block.id)
                assert certificate is not None
                if any(v.member_fingerprint.hex() == mine for v in certificate.votes):
                    voted.append(block.number)
                if len(voted) >= 2:
                    break
            assert voted, "no certificate carried the member's vote in 8 heights"
            await stop(restored)
            _restored_from_genesis(restored)
            guard = SigningGuard.create(tmp_path / "guard", mine)  # the old guard: no position
            items = intkey_batches(1)  # a height decided without it
            submit(nodes[0], items)
            await wait_until(nodes[:3], committed_on(nodes[:3], items))
            await start(restored, members, GuardCheck([GuardedKey(mine, guard)]))
            await wait_until(nodes, lambda: restored.head == nodes[0].head)
            assert restored.consortium is not None
            assert restored.consortium.caught_up_blocks == nodes[0].head
            # Sealed at the newest height whose certificate holds its vote: every position
            # up to it is refused from now on; nothing above it was touched.
            assert guard.watermark is not None
            assert guard.watermark.position == Position(max(voted), ROUND_MAX, STEP_MAX)
            check_same_chain(nodes)
        finally:
            for node in nodes:
                if node.consortium is not None:
                    await stop(node)

    asyncio.run(scenario())
