"""The context a handler sees: Sawtooth's get/set/delete_state, receipt data and events.

A thin layer over ``state.TransactionContext``, which enforces the declared inputs and
outputs; this layer adds the receipt and event channels with their bounds. An external
processor (issue 5) is served from the same object: each TP_STATE_GET / SET / DELETE /
RECEIPT_ADD_DATA / EVENT_ADD request maps onto one method here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from trusted_ledger.errors import HandlerLimitExceeded, InvalidTransaction
from trusted_ledger.processing.receipts import Event, StateChange
from trusted_ledger.state import TransactionContext

# Bounds on what one transaction may attach to its receipt; they keep receipts (stored with
# every block and served by the api) small, whatever a handler does.
events_per_transaction_max = 64
event_type_chars_max = 128
event_attributes_max = 32
event_attribute_chars_max = 256  # each key and each value
event_data_bytes_max = 64 * 1024
receipt_data_entries_max = 16
receipt_data_bytes_max = 64 * 1024  # each entry
addresses_per_state_call_max = 256  # one get/set/delete_state call, as txn limits each header


class HandlerContext:
    """Handed to ``TransactionHandler.apply``; valid for that one call only."""

    def __init__(self, state: TransactionContext) -> None:
        self._state = state
        self._events: list[Event] = []
        self._data: list[bytes] = []

    # --- state (Sawtooth: Context.get_state / set_state / delete_state) ---------------------

    def get_state(self, addresses: Sequence[str]) -> dict[str, bytes]:
        """Values of those ``addresses`` that hold one; absent addresses are left out."""
        _check_count(addresses, "get_state")
        return self._state.get_many(addresses)

    def set_state(self, entries: Mapping[str, bytes]) -> list[str]:
        """Set each address to its value; returns the addresses set."""
        _check_count(entries, "set_state")
        for address, value in entries.items():
            self._state.set(address, value)
        return list(entries)

    def delete_state(self, addresses: Sequence[str]) -> list[str]:
        """Delete each address (a no-op where nothing is stored); returns the addresses."""
        _check_count(addresses, "delete_state")
        for address in addresses:
            self._state.delete(address)
        return list(addresses)

    # --- receipt ----------------------------------------------------------------------------

    def add_receipt_data(self, data: bytes) -> None:
        """Attach opaque bytes to the transaction's receipt."""
        if not isinstance(data, bytes):
            raise InvalidTransaction(f"receipt data is bytes, not {type(data).__name__}")
        if len(self._data) >= receipt_data_entries_max:
            raise HandlerLimitExceeded(
                f"more than receipt_data_entries_max={receipt_data_entries_max} receipt entries"
            )
        if len(data) > receipt_data_bytes_max:
            raise HandlerLimitExceeded(
                f"receipt data of {len(data)} bytes exceeds "
                f"receipt_data_bytes_max={receipt_data_bytes_max}"
            )
        self._data.append(data)

    def add_event(
        self,
        event_type: str,
        attributes: Iterable[tuple[str, str]] = (),
        data: bytes = b"",
    ) -> None:
        """Emit an event; subscribers see it only if the transaction's batch commits."""
        pairs = check_event(event_type, attributes, data, emitted=len(self._events))
        self._events.append(Event(event_type, pairs, data))

    # --- read by the executor after ``apply`` returns ----------------------------------------

    @property
    def writes(self) -> Mapping[str, bytes | None]:
        return self._state.writes

    def state_changes(self) -> tuple[StateChange, ...]:
        writes = self._state.writes
        return tuple(StateChange(address, writes[address]) for address in sorted(writes))

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(self._events)

    @property
    def receipt_data(self) -> tuple[bytes, ...]:
        return tuple(self._data)


def check_event(
    event_type: str, attributes: Iterable[tuple[str, str]], data: bytes, *, emitted: int
) -> tuple[tuple[str, str], ...]:
    """The bounds of one more event after ``emitted`` ones; its attributes as a tuple. One
    rule for every context (in process, or an external processor's), so that a handler's
    verdict does not depend on where it runs."""
    if emitted >= events_per_transaction_max:
        raise HandlerLimitExceeded(
            f"more than events_per_transaction_max={events_per_transaction_max} events"
        )
    _check_text(event_type, "event type", event_type_chars_max)
    pairs = tuple(attributes)
    if len(pairs) > event_attributes_max:
        raise HandlerLimitExceeded(
            f"{len(pairs)} event attributes exceed event_attributes_max={event_attributes_max}"
        )
    for key, value in pairs:
        _check_text(key, "event attribute key", event_attribute_chars_max)
        _check_text(value, "event attribute value", event_attribute_chars_max, empty_ok=True)
    if not isinstance(data, bytes) or len(data) > event_data_bytes_max:
        raise HandlerLimitExceeded(
            f"event data must be bytes of at most event_data_bytes_max={event_data_bytes_max}"
        )
    return pairs


def _check_count(items: Sequence[str] | Mapping[str, bytes], call: str) -> None:
    if isinstance(items, str):
        raise InvalidTransaction(f"{call} takes a list of addresses, not one string")
    if len(items) > addresses_per_state_call_max:
        raise HandlerLimitExceeded(
            f"{call} with {len(items)} addresses exceeds "
            f"addresses_per_state_call_max={addresses_per_state_call_max}"
        )


def _check_text(text: object, what: str, chars_max: int, *, empty_ok: bool = False) -> None:
    chars_min = 0 if empty_ok else 1
    if not isinstance(text, str) or not chars_min <= len(text) <= chars_max:
        raise HandlerLimitExceeded(
            f"{what} must be a string of {chars_min}..{chars_max} characters"
        )
