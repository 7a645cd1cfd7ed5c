"""What travels on the simulated network, and what waits in the event queue.

Payloads are Python objects, not bytes: the simulation tests consensus and its driver, not a
wire codec (that has its own known-answer vectors). The link a payload arrives on names its
sender, as an authenticated peer channel would, so no payload carries a claimed sender
except the signed consensus messages themselves (whose claimed signer is checked).
``Garbage`` stands for bytes that do not decode: a node must drop them and go on.
"""

from __future__ import annotations

from dataclasses import dataclass

from trusted_ledger.consensus.types import Proposal, TimeoutKind, VoteMessage
from trusted_ledger.testing.sim.app import CommittedBlock, SimBlock


@dataclass(frozen=True, slots=True)
class ProposalGossip:
    """A signed proposal with the block body it names, when the sender has it."""

    proposal: Proposal
    block: SimBlock | None


@dataclass(frozen=True, slots=True)
class Status:
    """The sender's committed height, gossiped periodically so laggards learn to catch up."""

    committed_height: int


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Send me your committed blocks with certificates from ``from_height`` on."""

    from_height: int


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """Committed blocks with their certificates; the receiver trusts none of it until each
    certificate verifies against the membership (the sender's state roots are ignored: the
    receiver re-executes)."""

    entries: tuple[CommittedBlock, ...]


@dataclass(frozen=True, slots=True)
class Garbage:
    data: bytes


Payload = ProposalGossip | VoteMessage | Status | SyncRequest | SyncResponse | Garbage


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deliver:
    destination: int
    source: int
    payload: Payload


@dataclass(frozen=True, slots=True)
class TimerFired:
    node: int
    incarnation: int
    kind: TimeoutKind
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class ValueBuilt:
    node: int
    incarnation: int
    height: int
    round: int
    block: SimBlock


@dataclass(frozen=True, slots=True)
class BlockChecked:
    """The application finished re-executing ``block_id`` (after a simulated delay)."""

    node: int
    incarnation: int
    height: int
    block_id: bytes


@dataclass(frozen=True, slots=True)
class GossipTick:
    node: int
    incarnation: int


@dataclass(frozen=True, slots=True)
class Crash:
    node: int


@dataclass(frozen=True, slots=True)
class Restart:
    node: int


@dataclass(frozen=True, slots=True)
class LivenessMark:
    """Start (``deadline`` False) or end of the liveness window."""

    deadline: bool


Event = (
    Deliver | TimerFired | ValueBuilt | BlockChecked | GossipTick | Crash | Restart | LivenessMark
)
