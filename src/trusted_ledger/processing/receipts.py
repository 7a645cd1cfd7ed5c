"""What executing a transaction produced: state changes, events and opaque receipt data.

Shapes follow Sawtooth's ``TransactionReceipt`` (state_changes, events, data) so that the
api layer can serve them in Sawtooth's format. Every field is immutable and compared by
value: the differential test checks that both schedulers produce equal receipts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StateChange:
    """One address set to ``value``, or deleted (``value`` is None)."""

    address: str
    value: bytes | None

    @property
    def is_delete(self) -> bool:
        return self.value is None


@dataclass(frozen=True, slots=True)
class Event:
    """An event a handler emits; delivered to subscribers only if its batch commits."""

    event_type: str
    attributes: tuple[tuple[str, str], ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class TransactionReceipt:
    """The effects of one valid transaction of a valid batch."""

    transaction_id: str
    family_name: str
    # Sorted by address: the order a handler happened to write in carries no meaning, and
    # a sorted list is the same on every node whatever the handler's language.
    state_changes: tuple[StateChange, ...]
    events: tuple[Event, ...]
    data: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Whether a batch is valid; if not, which transaction failed first and why."""

    batch_id: str
    valid: bool
    invalid_transaction_id: str | None = None
    reason: str | None = None
