"""Byzantine members: what up to f members may do to try to break the honest ones.

A Byzantine node runs the ordinary machine (so that it takes part and its lies are mixed with
truth, which is harder on honest nodes than silence), signs with no guard, and then bends
what it sends:

- ``equivocate``: as proposer, two different valid blocks in one round, one to each half of
  the peers, each with its body;
- ``double-vote``: every prevote and precommit also signed for a different block (or nil),
  the two sent to different halves, sometimes both to everyone;
- ``unknown-block``: votes for, and proposals of, block ids no one has a body for;
- ``bad-signature``: every message with random signature bytes, plus votes forged in the
  names of honest members;
- ``spam``: many validly signed messages for far-future heights and rounds, garbage bytes,
  lies about its committed height, forged catch-up responses with junk certificates.

Every behaviour draws only from the node's own random stream, so the seed fixes the attack.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from trusted_ledger.chain.certificate import CommitCertificate, Vote
from trusted_ledger.consensus.types import Message, Proposal, VoteKind, VoteMessage
from trusted_ledger.errors import SimulationConfigInvalid
from trusted_ledger.testing.sim.app import CommittedBlock, SimBlock
from trusted_ledger.testing.sim.messages import (
    Garbage,
    ProposalGossip,
    Status,
    SyncRequest,
    SyncResponse,
)
from trusted_ledger.testing.sim.node import SimNode

spam_messages_per_tick = 24
"""Messages a spammer sends to each peer per gossip tick: far above honest traffic, low
enough that a run still takes a fraction of a second."""
SIGNATURE_BYTES = 64


class Behaviour(Protocol):
    name: str

    def outgoing(self, node: SimNode, message: Message) -> None:
        """Sign and send ``message`` (which the node's machine asked for), however bent."""
        ...

    def tick(self, node: SimNode) -> None:
        """Called on every gossip tick: unsolicited mischief."""
        ...


def _random_block_id(node: SimNode) -> bytes:
    # Never the all-zero id: that one means nil and the driver rejects it outright.
    return b"\x01" + node.rng.randbytes(31)


def _halves(node: SimNode) -> tuple[list[int], list[int]]:
    peers = [p for p in range(len(node.members)) if p != node.index]
    node.rng.shuffle(peers)
    middle = len(peers) // 2
    return peers[:middle], peers[middle:]


def _send_honestly(node: SimNode, message: Message) -> None:
    signed = node.sign_raw(message)
    node.broadcast(node.gossip_payload(signed))
    node.deliver_back(signed)


class Equivocate:
    name = "equivocate"

    def outgoing(self, node: SimNode, message: Message) -> None:
        if not isinstance(message, Proposal):
            _send_honestly(node, message)
            return
        other = node.make_block(message.height, message.round, node.rng.randbytes(17))
        first = node.sign_raw(message)
        second = node.sign_raw(
            dataclasses.replace(message, block_id=other.block_id, valid_round=-1)
        )
        left, right = _halves(node)
        for peer in left:
            node.send_to(peer, node.gossip_payload(first))
        for peer in right:
            node.send_to(peer, ProposalGossip(second, other))
        node.deliver_back(first)

    def tick(self, node: SimNode) -> None:
        return


class DoubleVote:
    name = "double-vote"

    def outgoing(self, node: SimNode, message: Message) -> None:
        if not isinstance(message, VoteMessage):
            _send_honestly(node, message)
            return
        known = sorted(b for b, body in node.bodies.items() if body.height == message.height)
        alternatives = [b for b in known if b != message.block_id]
        if message.block_id is not None and node.rng.random() < 0.5:
            other_id: bytes | None = None
        elif alternatives:
            other_id = node.rng.choice(alternatives)
        else:
            other_id = _random_block_id(node)
        first = node.sign_raw(message)
        second = node.sign_raw(dataclasses.replace(message, block_id=other_id))
        left, right = _halves(node)
        both_to_all = node.rng.random() < 0.3
        for peer in left:
            node.send_to(peer, first)
            if both_to_all:
                node.send_to(peer, second)
        for peer in right:
            node.send_to(peer, second)
            if both_to_all:
                node.send_to(peer, first)
        node.deliver_back(first)

    def tick(self, node: SimNode) -> None:
        return


class UnknownBlock:
    name = "unknown-block"

    def outgoing(self, node: SimNode, message: Message) -> None:
        bent: Message = dataclasses.replace(message, block_id=_random_block_id(node))
        if isinstance(bent, Proposal):
            bent = dataclasses.replace(bent, valid_round=-1)
            node.broadcast(ProposalGossip(node.sign_raw(bent), None))
        else:
            node.broadcast(node.sign_raw(bent))
        node.deliver_back(node.sign_raw(message))

    def tick(self, node: SimNode) -> None:
        return


class BadSignature:
    name = "bad-signature"

    def outgoing(self, node: SimNode, message: Message) -> None:
        forged = dataclasses.replace(message, signature=node.rng.randbytes(SIGNATURE_BYTES))
        node.broadcast(node.gossip_payload(forged))
        node.deliver_back(node.sign_raw(message))

    def tick(self, node: SimNode) -> None:
        """Votes in honest members' names for a block no one proposed: if any driver fed
        them to its machine unverified, they could make a quorum."""
        if node.machine is None:
            return
        block_id = _random_block_id(node)
        for kind in (VoteKind.PREVOTE, VoteKind.PRECOMMIT):
            for voter in node.member_ids:
                vote = VoteMessage(
                    kind,
                    node.machine.height,
                    node.machine.round,
                    block_id,
                    voter,
                    node.rng.randbytes(SIGNATURE_BYTES),
                )
                node.broadcast(vote)


class Spam:
    name = "spam"

    def outgoing(self, node: SimNode, message: Message) -> None:
        _send_honestly(node, message)

    def tick(self, node: SimNode) -> None:
        if node.machine is None:
            return
        rng = node.rng
        height = node.machine.height
        for _ in range(spam_messages_per_tick):
            choice = rng.randrange(6)
            far_height = height + rng.choice((1, 2, 10, 1_000, 2**40))
            far_round = rng.choice((1, 9, 100, 2**31, 2**32 - 1))
            if choice == 0:
                kind = rng.choice((VoteKind.PREVOTE, VoteKind.PRECOMMIT))
                vote = VoteMessage(
                    kind, far_height, far_round, _random_block_id(node), node.key.fingerprint
                )
                node.broadcast(node.sign_raw(vote))
            elif choice == 1:
                kind = rng.choice((VoteKind.PREVOTE, VoteKind.PRECOMMIT))
                vote = VoteMessage(kind, height, far_round, None, node.key.fingerprint)
                node.broadcast(node.sign_raw(vote))
            elif choice == 2:
                block = SimBlock(
                    node.chain_id, far_height, far_round, rng.randbytes(32),
                    node.key.fingerprint, rng.randbytes(200),
                )  # fmt: skip
                proposal = Proposal(
                    far_height,
                    far_round,
                    block.block_id,
                    rng.randrange(-1, 3),
                    node.key.fingerprint,
                )
                node.broadcast(ProposalGossip(node.sign_raw(proposal), block))
            elif choice == 3:
                node.broadcast(Garbage(rng.randbytes(rng.randrange(0, 512))))
            elif choice == 4:
                node.broadcast(Status(height + rng.randrange(1, 10**6)))
                node.broadcast(SyncRequest(rng.randrange(-5, height + 5)))
            else:
                node.broadcast(SyncResponse((_forged_commit(node, height),)))


def _forged_commit(node: SimNode, height: int) -> CommittedBlock:
    """A block at ``height`` that extends nothing real, with a certificate of junk votes by
    every member: a laggard that trusted catch-up responses would fork on it."""
    rng = node.rng
    block = SimBlock(
        node.chain_id, height, 0, node.disk.head_id, node.key.fingerprint, rng.randbytes(8)
    )
    votes = [Vote(member, rng.randbytes(SIGNATURE_BYTES)) for member in node.member_ids]
    certificate = CommitCertificate.from_votes(node.chain_id, height, 0, block.block_id, votes)
    return CommittedBlock(block, certificate, rng.randbytes(32))


BEHAVIOURS: dict[str, type[Equivocate | DoubleVote | UnknownBlock | BadSignature | Spam]] = {
    cls.name: cls for cls in (Equivocate, DoubleVote, UnknownBlock, BadSignature, Spam)
}


def behaviour_named(name: str) -> Behaviour:
    try:
        return BEHAVIOURS[name]()
    except KeyError:
        raise SimulationConfigInvalid(
            f"unknown Byzantine behaviour {name!r}", hint=f"one of {', '.join(sorted(BEHAVIOURS))}"
        ) from None
