"""An external processor as a ``TransactionHandler``, and the buffer one attempt writes into.

``ExternalHandler`` is what the ``HandlerRegistry`` holds for a family version that external
processors serve: schedulers call its ``apply`` like any built-in handler's, and it forwards
the transaction to the least-loaded processor through the ``Dispatcher``.

``AttemptBuffer`` is why a processor that dies mid-transaction leaves nothing behind: the
writes, events and receipt data of one TP_PROCESS attempt collect here (reads see them over
the real context) and reach the ``HandlerContext`` only once that attempt's processor answered
OK. A re-dispatched attempt starts from an empty buffer over the same context.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from trusted_ledger.errors import (
    HandlerLimitExceeded,
    InvalidInput,
    ProcessorProtocolError,
)
from trusted_ledger.processing.context import (
    HandlerContext,
    addresses_per_state_call_max,
    event_attribute_chars_max,
    event_attributes_max,
    event_data_bytes_max,
    event_type_chars_max,
    events_per_transaction_max,
    receipt_data_bytes_max,
    receipt_data_entries_max,
)
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.processing.receipts import Event
from trusted_ledger.state import check_output, value_bytes_max
from trusted_ledger.txn import Transaction

if TYPE_CHECKING:
    from trusted_ledger.processing.tp.dispatch import Dispatcher


class ExternalHandler(TransactionHandler):
    """One family version served by external processors; ``apply`` blocks on a round trip.

    Namespaces are those of the first processor that registered the family version (later
    ones must declare the same): the runner confines a transaction's outputs to them.
    """

    def __init__(
        self, dispatcher: Dispatcher, family: str, version: str, namespaces: Sequence[str]
    ) -> None:
        self._dispatcher = dispatcher
        self._family = family
        self._version = version
        self._namespaces = tuple(namespaces)

    @property
    def family_name(self) -> str:
        return self._family

    @property
    def family_versions(self) -> tuple[str, ...]:
        return (self._version,)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return self._namespaces

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        """Have a processor apply ``transaction``; its effects land in ``context`` on OK.

        Raises ``ProcessorRejectedTransaction`` (invalid), ``ProcessorInternalError``
        (retry), ``ProcessorUnavailable`` or ``ProcessorBusy`` (retry, then wait).
        """
        self._dispatcher.process((self._family, self._version), transaction, context)


class AttemptBuffer:
    """What one TP_PROCESS attempt read through and wrote aside, until its verdict.

    Called from the server thread (the processor's requests) and, once, from the applying
    thread (``apply_to``); a lock and ``close`` keep a late request of an abandoned attempt
    from touching the context after the verdict. The first rule the processor broke (an
    undeclared address, a bound) is kept in ``violation``: whatever the processor answers
    afterwards, the transaction is then invalid with that reason, as it would be in process.
    """

    def __init__(self, transaction: Transaction, context: HandlerContext) -> None:
        self._context = context
        self._outputs = transaction.header.outputs
        self._lock = threading.Lock()
        self._closed = False
        self._writes: dict[str, bytes | None] = {}
        self._events: list[Event] = []
        self._data: list[bytes] = []
        self.violation: InvalidInput | None = None

    # --- the processor's requests (server thread) ---------------------------------------

    def get(self, addresses: Sequence[str]) -> list[tuple[str, bytes]]:
        """(address, value) of the asked addresses that hold a value, buffer first."""
        with self._guard():
            _check_count(len(addresses), "get_state")
            unbuffered = [address for address in addresses if address not in self._writes]
            found = self._context.get_state(unbuffered) if unbuffered else {}
            entries = []
            for address in addresses:
                value = self._writes[address] if address in self._writes else found.get(address)
                if value is not None:
                    entries.append((address, value))
            return entries

    def set(self, entries: Sequence[tuple[str, bytes]]) -> list[str]:
        with self._guard():
            _check_count(len(entries), "set_state")
            for address, value in entries:
                self._check_output(address)
                if len(value) > value_bytes_max:
                    raise InvalidInput(
                        f"value of {len(value)} bytes exceeds value_bytes_max={value_bytes_max}"
                    )
            for address, value in entries:
                self._writes[address] = value
            return [address for address, _ in entries]

    def delete(self, addresses: Sequence[str]) -> list[str]:
        with self._guard():
            _check_count(len(addresses), "delete_state")
            for address in addresses:
                self._check_output(address)
            for address in addresses:
                self._writes[address] = None
            return list(addresses)

    def add_receipt_data(self, data: bytes) -> None:
        with self._guard():
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
        self, event_type: str, attributes: Iterable[tuple[str, str]], data: bytes
    ) -> None:
        with self._guard():
            if len(self._events) >= events_per_transaction_max:
                raise HandlerLimitExceeded(
                    f"more than events_per_transaction_max={events_per_transaction_max} events"
                )
            self._events.append(_checked_event(event_type, tuple(attributes), data))

    # --- the verdict (applying thread) ----------------------------------------------------

    def close(self) -> None:
        """No request of this attempt touches the context any more (verdict or abandon)."""
        with self._lock:
            self._closed = True

    def apply_to(self, context: HandlerContext) -> None:
        """Replay the attempt's effects into ``context``, in the order they were made."""
        with self._lock:
            self._closed = True
            for address, value in self._writes.items():
                if value is None:
                    context.delete_state([address])
                else:
                    context.set_state({address: value})
            for event in self._events:
                context.add_event(event.event_type, event.attributes, event.data)
            for data in self._data:
                context.add_receipt_data(data)

    # --- helpers --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Hold the lock for one request; refuse an ended attempt; keep the first
        InvalidInput as the attempt's violation (it decides the verdict later)."""
        with self._lock:
            if self._closed:
                raise ProcessorProtocolError("request for a context whose attempt has ended")
            try:
                yield
            except InvalidInput as exc:
                if self.violation is None:
                    self.violation = exc
                raise

    def _check_output(self, address: str) -> None:
        # The same rule as state.TransactionContext applies on write: the buffer must refuse
        # at request time what the context would refuse at apply time.
        check_output(address, self._outputs)


def _check_count(count: int, call: str) -> None:
    if count > addresses_per_state_call_max:
        raise HandlerLimitExceeded(
            f"{call} with {count} addresses exceeds "
            f"addresses_per_state_call_max={addresses_per_state_call_max}"
        )


def _checked_event(event_type: str, attributes: tuple[tuple[str, str], ...], data: bytes) -> Event:
    """The event if it keeps HandlerContext.add_event's bounds (checked again on apply)."""
    if not 1 <= len(event_type) <= event_type_chars_max:
        raise HandlerLimitExceeded(f"event type must be 1..{event_type_chars_max} characters")
    if len(attributes) > event_attributes_max:
        raise HandlerLimitExceeded(
            f"{len(attributes)} event attributes exceed event_attributes_max={event_attributes_max}"
        )
    for key, value in attributes:
        if not 1 <= len(key) <= event_attribute_chars_max:
            raise HandlerLimitExceeded(
                f"event attribute key must be 1..{event_attribute_chars_max} characters"
            )
        if len(value) > event_attribute_chars_max:
            raise HandlerLimitExceeded(
                f"event attribute value must be 0..{event_attribute_chars_max} characters"
            )
    if len(data) > event_data_bytes_max:
        raise HandlerLimitExceeded(
            f"event data must be at most event_data_bytes_max={event_data_bytes_max} bytes"
        )
    return Event(event_type, attributes, data)
