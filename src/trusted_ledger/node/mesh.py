"""The peer mesh of a consortium node: one connection to every other member, following the
membership on chain.

``PeerMesh`` is the ``Transport`` the BFT driver asks for, over ``network``: it serves the
node's peer address and dials every other member, keeping at most one connection per pair.
Rule: **the member with the smaller name dials** (names survive key rotations); the other
only accepts. A dialler that lost its connection redials with capped exponential backoff;
an acceptor that receives a new connection from a member it already has one with keeps the
*new* one (the dialler restarted or saw the old one die first, so the old one is dead or
about to be). With one dialling side per pair there is never a race of two simultaneous
connections, and a restarted member is back as soon as its first dial succeeds.

Who is a member is the chain's answer for the height being decided (chain/membership.py);
the members file is the *address book* (name -> address) used to dial them. On a membership
change (``set_members``) the mesh dials added members (found in the address book by name; a
member missing from it is not dialled but may dial in), drops connections of keys no longer
admitted, and admits a peer only if its key is a member's now or was before the last change
(so a member one change behind can still connect and catch up). docs/consortium.md is the
reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine, Sequence

from trusted_ledger.chain.block import block_bytes_max as format_block_bytes_max
from trusted_ledger.chain.membership import ChainMember
from trusted_ledger.chain.signing import ChainSigner
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import PeerFault, TemporarilyUnavailable
from trusted_ledger.network import (
    MessageLimits,
    MessageType,
    PeerConnection,
    PeerMessage,
    PeerServer,
    PeerSettings,
    connect,
    frame_bytes_max_default,
    serve,
)
from trusted_ledger.node.bft_wire import proposal_message_bytes_max
from trusted_ledger.node.catchup import response_bytes_max
from trusted_ledger.node.members import Member
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    CONSORTIUM_PEER_FAULTS_TOTAL,
    CONSORTIUM_PEERS_CONNECTED,
)

log = get_logger("node.consortium")


def message_limits(block_bytes_max: int = format_block_bytes_max) -> MessageLimits:
    """Frame and payload bounds that fit a proposal and a catch-up response carrying a block
    of ``block_bytes_max`` bytes (the network's default frame is smaller than the chain's
    largest block)."""
    largest = max(proposal_message_bytes_max(block_bytes_max), response_bytes_max(block_bytes_max))
    return MessageLimits(
        frame_bytes_max=max(frame_bytes_max_default, largest + 1),
        consensus_bytes_max=proposal_message_bytes_max(block_bytes_max),
    )


def peer_settings(
    chain_id: str,
    signer: ChainSigner,
    members: Sequence[Member] | Callable[[PublicKey], bool],
    block_bytes_max: int = format_block_bytes_max,
) -> PeerSettings:
    """The network settings of a consortium node: admits exactly the listed members, or the
    keys ``members`` (a predicate, asked at each handshake) accepts."""
    if callable(members):
        admit = members
    else:
        fingerprints = frozenset(member.fingerprint for member in members)

        def admit(key: PublicKey) -> bool:
            return key.fingerprint in fingerprints

    return PeerSettings(chain_id, signer, admit, limits=message_limits(block_bytes_max))


async def listen(bind: str, settings: PeerSettings) -> PeerServer:
    """Accept members on ``bind`` (``HOST:PORT``; port 0 picks a free one)."""
    host, _, port = bind.rpartition(":")
    return await serve(host.strip("[]"), int(port), settings)


class PeerMesh:
    """One connection to every other member; ``broadcast`` sends CONSENSUS to each.

    Peers are *names* (a member keeps its name when its key rotates): connections are kept
    one per name, and **the member with the smaller name dials**, so a rotation never changes
    who dials whom. A name's admitted keys are its keys in the current membership and in the
    one before the last change, so a member that is one change behind (still signing with its
    old key, or not yet knowing it was added) can connect and catch up.

    ``deliver(connection, message)`` is awaited for each inbound message in that
    connection's reader task (so one peer's messages are handled in order, and a slow
    handler pushes back on that peer only). ``on_connected`` runs for each new connection.
    """

    def __init__(
        self,
        *,
        settings: PeerSettings,
        address_book: Sequence[Member],
        members: Sequence[ChainMember],
        deliver: Callable[[PeerConnection, PeerMessage], asyncio.Future[None] | None],
        on_connected: Callable[[PeerConnection], None],
        reconnect_initial_ms: int = 100,
        reconnect_max_ms: int = 5000,
    ) -> None:
        self._settings = settings
        self._address_book = {m.name: m for m in address_book}
        self._address_by_key = {m.fingerprint: m for m in address_book}
        self._name_by_key: dict[str, str] = {}
        self._keys_by_name: dict[str, list[ChainMember]] = {}
        self._dialling: dict[str, asyncio.Task[None]] = {}
        self._deliver = deliver
        self._on_connected = on_connected
        self._backoff_initial_s = reconnect_initial_ms / 1000
        self._backoff_max_s = reconnect_max_ms / 1000
        self._connections: dict[str, PeerConnection] = {}
        """By peer name."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: PeerServer | None = None
        self._closing = False
        self._take(members, ())

    @property
    def connected(self) -> list[PeerConnection]:
        return [c for c in self._connections.values() if not c.closed]

    @property
    def me(self) -> str | None:
        """This node's member name: the name any of its keys has (None: not a member)."""
        signer = self._settings.signer
        keys = getattr(signer, "public_keys", None) or (signer.public_key,)
        return next(
            (self._name_by_key[k.fingerprint] for k in keys if k.fingerprint in self._name_by_key),
            None,
        )

    def admits(self, key: PublicKey) -> bool:
        """A peer key is admitted while it is a key of another member (current membership,
        or the one before the last change)."""
        name = self._name_by_key.get(key.fingerprint)
        return name is not None and name != self.me

    def start(self, server: PeerServer) -> None:
        """Accept on ``server`` and dial the members this node dials (call on the loop)."""
        self._server = server
        self._spawn(self._accept_loop(server))
        self._reconcile()

    def set_members(
        self, members: Sequence[ChainMember], previous: Sequence[ChainMember] = ()
    ) -> None:
        """The membership changed (or this node's key did): dial added members, stop
        dialling and drop removed ones (call on the loop). ``previous`` is the membership
        before the last change, whose keys stay admitted until the next one."""
        self._take(members, previous)
        if self._server is not None and not self._closing:
            self._reconcile()

    def _take(self, members: Sequence[ChainMember], previous: Sequence[ChainMember]) -> None:
        self._name_by_key = {m.fingerprint: m.name for m in (*previous, *members)}
        by_name: dict[str, list[ChainMember]] = {}
        for member in (*members, *previous):  # the current key first
            keys = by_name.setdefault(member.name, [])
            if member not in keys:
                keys.append(member)
        self._keys_by_name = by_name

    def _reconcile(self) -> None:
        for name, connection in list(self._connections.items()):
            if self._name_by_key.get(connection.fingerprint) != name and not connection.closed:
                self.drop(connection, "not_member", "no longer in the membership")
        me = self.me
        wanted: dict[str, str] = {}
        for name, keys in self._keys_by_name.items():
            if me is None or not me < name:
                continue  # not a member (it may be dialled), or the other side dials
            # The address book says where (by name; a membership of bare keys by key); the
            # chain says which keys may answer there.
            entry = self._address_book.get(name) or next(
                (
                    self._address_by_key[k.fingerprint]
                    for k in keys
                    if k.fingerprint in self._address_by_key
                ),
                None,
            )
            if entry is None:
                log.info("consortium.member_without_address", member=name)
                continue
            wanted[name] = entry.address
        for name, task in list(self._dialling.items()):
            if name not in wanted:
                task.cancel()
                del self._dialling[name]
        for name, address in wanted.items():
            running = self._dialling.get(name)
            if running is None or running.done():
                self._dialling[name] = self._spawn(self._dial_loop(name, address))

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            await self._server.close()
        for connection in list(self._connections.values()):
            connection.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.wait_closed(), 1.0)
        self._connections.clear()
        CONSORTIUM_PEERS_CONNECTED.set(0)

    def broadcast(self, data: bytes) -> None:
        """Send a consensus message to every connected member; never waits (a peer whose
        queue is full is dropped by the network and redialled)."""
        self.send_all(MessageType.CONSENSUS, data)

    def send_all(self, message_type: MessageType, payload: bytes) -> int:
        sent = 0
        for connection in self.connected:
            with contextlib.suppress(PeerFault):
                connection.send(message_type, payload)
                sent += 1
        return sent

    def drop(self, connection: PeerConnection, reason: str, detail: str) -> None:
        """Disconnect a peer for what it sent (logged, counted; it may reconnect)."""
        CONSORTIUM_PEER_FAULTS_TOTAL.labels(reason=reason).inc()
        log.warning(
            "consortium.peer_dropped",
            peer=connection.fingerprint[:16],
            address=connection.remote_address,
            reason=reason,
            detail=detail[:200],
        )
        connection.close()

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept_loop(self, server: PeerServer) -> None:
        async for connection in server:
            if self._closing:
                connection.close()
                continue
            name = self._name_by_key.get(connection.fingerprint)
            if name is None:
                # The server's own admission may be a static list (tests) or lag a change.
                self.drop(connection, "not_member", "not in the membership")
                continue
            me = self.me
            if me is not None and name > me:
                # That member is the acceptor of this pair: it never dials us, so this is a
                # misconfigured or misbehaving peer. Refusing keeps one connection per pair.
                self.drop(connection, "wrong_direction", "the member with the larger name dialled")
                continue
            self._spawn(self._serve(connection))

    async def _dial_loop(self, name: str, address: str) -> None:
        host, _, port = address.rpartition(":")
        backoff_s = self._backoff_initial_s
        while not self._closing and name in self._keys_by_name:
            keys = self._keys_by_name[name]
            try:
                # One key expected when the name has one; during a rotation either of its
                # keys may answer (it may not have reached the change yet), checked below.
                connection = await connect(
                    host.strip("[]"),
                    int(port),
                    self._settings,
                    expected_peer=keys[0].public_key if len(keys) == 1 else None,
                )
            except (PeerFault, OSError, TemporarilyUnavailable) as exc:
                log.debug("consortium.dial_failed", member=name, error=str(exc))
                await asyncio.sleep(backoff_s * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                backoff_s = min(2 * backoff_s, self._backoff_max_s)
                continue
            if self._name_by_key.get(connection.fingerprint) != name:
                self.drop(connection, "unexpected_peer", f"{address} is not {name}")
                await asyncio.sleep(backoff_s * random.uniform(0.5, 1.0))  # noqa: S311
                backoff_s = min(2 * backoff_s, self._backoff_max_s)
                continue
            backoff_s = self._backoff_initial_s
            await self._serve(connection)
            if not self._closing:
                await asyncio.sleep(backoff_s * random.uniform(0.5, 1.0))  # noqa: S311

    async def _serve(self, connection: PeerConnection) -> None:
        """Register ``connection`` (replacing an older one with that member) and deliver its
        messages until it closes."""
        name = self._name_by_key.get(connection.fingerprint, connection.fingerprint)
        old = self._connections.get(name)
        if old is not None and old is not connection:
            old.close()
        self._connections[name] = connection
        CONSORTIUM_PEERS_CONNECTED.set(len(self.connected))
        try:
            self._on_connected(connection)
            async for message in connection:
                if connection.closed:
                    break
                pending = self._deliver(connection, message)
                if pending is not None:
                    await pending
        finally:
            connection.close()
            if self._connections.get(name) is connection:
                del self._connections[name]
            CONSORTIUM_PEERS_CONNECTED.set(len(self.connected))
