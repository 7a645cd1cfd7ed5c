"""A tiny in-test driver for consensus machines: signs through a software guard, routes
messages (to every node, the sender included), answers the application's requests, and
records timers, decisions and reports. Delivery order and loss are the test's to choose.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tests.unit.chain.support import SoftwareSigner
from trusted_ledger.consensus import (
    Action,
    Consensus,
    Decide,
    Message,
    PersistentState,
    Proposal,
    ReportMisbehaviour,
    RequestValue,
    ScheduleTimeout,
    SignAndBroadcast,
    TimeoutKind,
    ValidateBlock,
    VoteKind,
    VoteMessage,
    message_digest,
    signing_position,
)
from trusted_ledger.errors import SigningRefused

CHAIN_ID = "test-chain"


def block_id(height: int, consensus_round: int, proposer: bytes) -> bytes:
    """The block a proposer builds at (height, round): distinct per position."""
    return hashlib.sha256(b"block:%d:%d:" % (height, consensus_round) + proposer).digest()


def member_ids(n: int) -> list[bytes]:
    """Plain member ids for single-machine tests (no keys needed there)."""
    return [bytes([i + 1]) * 32 for i in range(n)]


def prevote(height: int, r: int, bid: bytes | None, voter: bytes) -> VoteMessage:
    return VoteMessage(VoteKind.PREVOTE, height, r, bid, voter, b"sig")


def precommit(height: int, r: int, bid: bytes | None, voter: bytes) -> VoteMessage:
    return VoteMessage(VoteKind.PRECOMMIT, height, r, bid, voter, b"sig")


def sent(actions: list[Action]) -> list[Message]:
    return [a.message for a in actions if isinstance(a, SignAndBroadcast)]


def feed(machine: Consensus, *messages: Message) -> list[Action]:
    """Deliver messages to one machine, echoing back what it signs (as a driver must)."""
    out: list[Action] = []
    queue: deque[Message] = deque(messages)
    while queue:
        message = queue.popleft()
        if isinstance(message, Proposal):
            actions = machine.on_proposal(message)
        else:
            actions = machine.on_vote(message)
        out += actions
        queue.extend(replace(m, signature=b"own") for m in sent(actions))
    return out


def echo(machine: Consensus, actions: list[Action]) -> list[Action]:
    """Deliver back the machine's own signed messages from ``actions``."""
    return feed(machine, *(replace(m, signature=b"own") for m in sent(actions)))


@dataclass
class Node:
    machine: Consensus
    signer: SoftwareSigner | None
    timers: list[ScheduleTimeout] = field(default_factory=list)
    decisions: list[Decide] = field(default_factory=list)
    reports: list[ReportMisbehaviour] = field(default_factory=list)
    signed: list[Message] = field(default_factory=list)
    refused: list[Message] = field(default_factory=list)
    persisted: PersistentState | None = None


class Router:
    """n members (real P-256 keys, guard rule) plus observers, one height at a time."""

    def __init__(self, n: int = 4, *, height: int = 1, observers: int = 0) -> None:
        signers = [SoftwareSigner() for _ in range(n)]
        self.members = [bytes.fromhex(s.public_key.fingerprint) for s in signers]
        self.keys = [s.public_key for s in signers]
        self.invalid: set[bytes] = set()
        self.nodes: dict[bytes, Node] = {
            mid: Node(Consensus(mid, height, self.members), signer)
            for mid, signer in zip(self.members, signers, strict=True)
        }
        for i in range(observers):
            oid = bytes([0xEE, i]) * 16
            self.nodes[oid] = Node(Consensus(oid, height, self.members), None)
        self.inflight: deque[tuple[bytes, Message]] = deque()
        self.events: deque[Callable[[], None]] = deque()

    def start(self) -> None:
        for nid, node in self.nodes.items():
            self.apply(nid, node.machine.start())

    def apply(self, nid: bytes, actions: list[Action]) -> None:
        node = self.nodes[nid]
        node.persisted = node.machine.persistent_state()  # before any signature
        for action in actions:
            if isinstance(action, SignAndBroadcast):
                self._sign_and_send(node, action.message)
            elif isinstance(action, RequestValue):
                h, r = action.height, action.round
                self.events.append(
                    lambda nid=nid, h=h, r=r: self.apply(
                        nid, self.nodes[nid].machine.on_value(h, r, block_id(h, r, nid))
                    )
                )
            elif isinstance(action, ValidateBlock):
                h, bid = action.height, action.block_id
                self.events.append(
                    lambda nid=nid, h=h, bid=bid: self.apply(
                        nid,
                        self.nodes[nid].machine.on_block_validated(h, bid, bid not in self.invalid),
                    )
                )
            elif isinstance(action, ScheduleTimeout):
                node.timers.append(action)
            elif isinstance(action, Decide):
                node.decisions.append(action)
            else:
                node.reports.append(action)

    def _sign_and_send(self, node: Node, message: Message) -> None:
        assert node.signer is not None, "an observer must never ask to sign"
        digest = message_digest(CHAIN_ID, message)
        try:
            signature = node.signer.sign(
                digest, purpose="consensus", position=signing_position(message)
            )
        except SigningRefused:
            node.refused.append(message)
            return
        signed = replace(message, signature=signature.raw)
        node.signed.append(signed)
        for dest in self.nodes:
            self.inflight.append((dest, signed))

    def deliver(self, dest: bytes, message: Message) -> None:
        machine = self.nodes[dest].machine
        if isinstance(message, Proposal):
            self.apply(dest, machine.on_proposal(message))
        else:
            self.apply(dest, machine.on_vote(message))

    def run(self, drop: Callable[[bytes, Message], bool] = lambda dest, msg: False) -> None:
        """Deliver everything in flight, FIFO, until quiet; ``drop`` loses messages."""
        while self.events or self.inflight:
            while self.events:
                self.events.popleft()()
            if self.inflight:
                dest, message = self.inflight.popleft()
                if not drop(dest, message):
                    self.deliver(dest, message)

    def fire(self, kind: TimeoutKind, nids: list[bytes] | None = None) -> None:
        """Expire the ``kind`` timer of each node's current round, where one is scheduled."""
        for nid in nids if nids is not None else list(self.nodes):
            node = self.nodes[nid]
            h, r = node.machine.height, node.machine.round
            if any((t.kind, t.height, t.round) == (kind, h, r) for t in node.timers):
                self.apply(nid, node.machine.on_timeout(kind, h, r))

    def decided(self, nids: list[bytes] | None = None) -> set[bytes]:
        return {
            d.block_id
            for nid in (nids if nids is not None else list(self.nodes))
            for d in self.nodes[nid].decisions
        }
