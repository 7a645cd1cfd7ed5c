"""What the chain needs from the processing layer: the ``BlockExecutor`` protocol.

The chain names the one call it makes and the shape of the answer, so that its publisher
and validator can be tested with any executor; ``chain.processing_executor`` implements it
over processing's serial or parallel scheduler. Receipts are opaque bytes here: their
encoding is processing's (docs/families.md), the chain stores and serves them by id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from trusted_ledger.state import StateUpdate
from trusted_ledger.txn import Batch


@dataclass(frozen=True)
class BatchResult:
    """The verdict on one batch: valid (applied) or invalid (no trace in state), and why."""

    batch_id: str
    valid: bool
    reason: str = ""
    invalid_transaction_id: str = ""
    """The batch's first invalid transaction, when execution names one."""


@dataclass(frozen=True)
class ExecutionOutcome:
    """The result of executing batches in order on top of a base state root.

    Contract the chain relies on (and the validator checks where it can): ``batch_results``
    has one entry per input batch, in input order; an invalid batch contributes nothing to
    ``state_update`` or ``receipts`` (batches are atomic, as in Sawtooth); ``state_root`` is
    ``state_update.root``; ``receipts`` has one entry per transaction of every valid batch.
    """

    state_root: bytes
    state_update: StateUpdate
    batch_results: tuple[BatchResult, ...]
    receipts: Mapping[str, bytes]

    @property
    def invalid(self) -> tuple[BatchResult, ...]:
        return tuple(result for result in self.batch_results if not result.valid)


class BlockExecutor(Protocol):
    """Executes batches against the state at a committed root, deterministically."""

    def execute(self, batches: Sequence[Batch], base_state_root: bytes) -> ExecutionOutcome:
        """Apply ``batches`` in order to the state at ``base_state_root``; never writes."""
        ...

    def waiting_reason(self, batch: Batch) -> str | None:
        """Why ``batch`` cannot be executed on this node yet (a family no handler serves,
        e.g. an external processor not connected), or None. Such a batch is neither valid
        nor invalid: it waits in the pool."""
        ...
