"""A simulated node's durable state: what a crash keeps, and nothing else.

The committed chain (blocks with their certificates and state roots), the signing guard's
watermark and the consensus machine's ``PersistentState``. Everything a node holds outside
its ``Disk`` is volatile and gone after ``SimNode.crash``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trusted_ledger.consensus.types import PersistentState
from trusted_ledger.custody.guard import Watermark
from trusted_ledger.testing.sim.app import GENESIS_ID, GENESIS_STATE_ROOT, CommittedBlock


@dataclass(slots=True)
class Disk:
    """What survives a crash: the committed chain, the guard watermark, the machine state."""

    chain: list[CommittedBlock] = field(default_factory=list)
    watermark: Watermark | None = None
    consensus_state: PersistentState | None = None

    @property
    def committed_height(self) -> int:
        return len(self.chain)

    @property
    def head_id(self) -> bytes:
        return self.chain[-1].block.block_id if self.chain else GENESIS_ID

    @property
    def head_state_root(self) -> bytes:
        return self.chain[-1].state_root if self.chain else GENESIS_STATE_ROOT
