"""Evidence of equivocation the BFT driver keeps: two signed messages of one member.

The machine reports a member that signed two different messages at one (height, round,
step) as ``ReportMisbehaviour`` (docs/consensus.md, "Counting, equivocation, bounds"). Both
messages carry that member's signature, so the pair proves the misbehaviour to anyone who
knows the member's key, without having to trust this node. The driver logs and counts every
report and keeps the latest ones in ``BftDriver.evidence`` for its owner to read; a bound
keeps a member that equivocates on purpose from filling this node's memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from trusted_ledger.consensus import Message, ReportMisbehaviour
from trusted_ledger.node.bft_signing import kind_name
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import CONSENSUS_MISBEHAVIOUR_TOTAL

log = get_logger("node.bft")

evidence_max = 1024
"""Misbehaviour reports kept in memory (all are logged and counted)."""


@dataclass(frozen=True)
class Misbehaviour:
    """Two different signed messages of ``member`` at one (height, round, step)."""

    member: bytes
    first: Message
    second: Message


def record_misbehaviour(evidence: deque[Misbehaviour], report: ReportMisbehaviour) -> None:
    """Keep ``report`` in ``evidence`` (oldest dropped beyond its bound), count and log it."""
    evidence.append(Misbehaviour(report.member, report.first, report.second))
    CONSENSUS_MISBEHAVIOUR_TOTAL.inc()
    log.warning(
        "bft.misbehaviour",
        member=report.member.hex()[:16],
        kind=kind_name(report.first),
        height=report.first.height,
        round=report.first.round,
    )
