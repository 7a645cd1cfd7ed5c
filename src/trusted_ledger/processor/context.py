"""``RemoteContext``: processing's ``HandlerContext`` API, served by the node over the socket.

A handler written for the built-in pipeline calls ``get_state``, ``set_state``,
``delete_state``, ``add_receipt_data`` and ``add_event`` on whatever context it is handed;
here each call is one request to the node (TP_STATE_GET / SET / DELETE, TP_RECEIPT_ADD_DATA,
TP_EVENT_ADD) under the transaction's ``context_id``, answered before the call returns.

The checks the node's ``HandlerContext`` would apply are applied here first, with the same
bounds and the same messages: an out-of-bounds call then fails without a round trip, and
its verdict reads exactly as it would in process (the differential tests compare them).
The node still enforces them all; its refusals become the same typed errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from google.protobuf.message import Message as ProtoMessage

from trusted_ledger.errors import (
    HandlerLimitExceeded,
    InternalError,
    InvalidInput,
    InvalidTransaction,
    UndeclaredInput,
    UndeclaredOutput,
)
from trusted_ledger.processing.context import (
    addresses_per_state_call_max,
    check_event,
    receipt_data_bytes_max,
    receipt_data_entries_max,
)
from trusted_ledger.processor._connection import Response, ValidatorConnection
from trusted_ledger.state import check_input, check_output, value_bytes_max
from trusted_ledger.txn import TransactionHeader
from trusted_ledger.txn.protos import events_pb2, state_context_pb2, validator_pb2

_Message = validator_pb2.Message
_MessageType: TypeAlias = validator_pb2.Message.MessageType.ValueType


class RemoteContext:
    """Handed to ``TransactionHandler.apply`` by the kit; valid for that one call only."""

    def __init__(
        self, connection: ValidatorConnection, context_id: str, header: TransactionHeader
    ) -> None:
        self._connection = connection
        self._context_id = context_id
        self._inputs = header.inputs
        self._outputs = header.outputs
        self._events = 0
        self._data = 0

    # --- state ----------------------------------------------------------------------------

    def get_state(self, addresses: Sequence[str]) -> dict[str, bytes]:
        """Values of those ``addresses`` that hold one; absent addresses are left out."""
        _check_count(addresses, "get_state")
        for address in addresses:
            self._check_input(address)
        request = state_context_pb2.TpStateGetRequest(
            context_id=self._context_id, addresses=list(addresses)
        )
        response = state_context_pb2.TpStateGetResponse()
        response.ParseFromString(self._ask(_Message.TP_STATE_GET_REQUEST, request))
        if response.status == state_context_pb2.TpStateGetResponse.AUTHORIZATION_ERROR:
            raise UndeclaredInput(
                f"the node refused to read {list(addresses)}: outside the declared inputs"
            )
        _check_ok(response.status, "TP_STATE_GET")
        # The node sends absent addresses with empty data (Sawtooth never stores b"").
        return {entry.address: entry.data for entry in response.entries if entry.data}

    def set_state(self, entries: Mapping[str, bytes]) -> list[str]:
        """Set each address to its value; returns the addresses set."""
        _check_count(entries, "set_state")
        for address, value in entries.items():
            self._check_output(address)
            if not isinstance(value, bytes):
                raise InvalidInput(f"state values are bytes, not {type(value).__name__}")
            if len(value) > value_bytes_max:
                raise InvalidInput(
                    f"value of {len(value)} bytes exceeds value_bytes_max={value_bytes_max}"
                )
        request = state_context_pb2.TpStateSetRequest(
            context_id=self._context_id,
            entries=[
                state_context_pb2.TpStateEntry(address=address, data=value)
                for address, value in entries.items()
            ],
        )
        response = state_context_pb2.TpStateSetResponse()
        response.ParseFromString(self._ask(_Message.TP_STATE_SET_REQUEST, request))
        if response.status == state_context_pb2.TpStateSetResponse.AUTHORIZATION_ERROR:
            raise UndeclaredOutput(
                f"the node refused to write {list(entries)}: outside the declared outputs"
            )
        _check_ok(response.status, "TP_STATE_SET")
        return list(response.addresses)

    def delete_state(self, addresses: Sequence[str]) -> list[str]:
        """Delete each address (a no-op where nothing is stored); returns the addresses."""
        _check_count(addresses, "delete_state")
        for address in addresses:
            self._check_output(address)
        request = state_context_pb2.TpStateDeleteRequest(
            context_id=self._context_id, addresses=list(addresses)
        )
        response = state_context_pb2.TpStateDeleteResponse()
        response.ParseFromString(self._ask(_Message.TP_STATE_DELETE_REQUEST, request))
        if response.status == state_context_pb2.TpStateDeleteResponse.AUTHORIZATION_ERROR:
            raise UndeclaredOutput(
                f"the node refused to delete {list(addresses)}: outside the declared outputs"
            )
        _check_ok(response.status, "TP_STATE_DELETE")
        return list(response.addresses)

    # --- receipt --------------------------------------------------------------------------

    def add_receipt_data(self, data: bytes) -> None:
        """Attach opaque bytes to the transaction's receipt."""
        if not isinstance(data, bytes):
            raise InvalidTransaction(f"receipt data is bytes, not {type(data).__name__}")
        if self._data >= receipt_data_entries_max:
            raise HandlerLimitExceeded(
                f"more than receipt_data_entries_max={receipt_data_entries_max} receipt entries"
            )
        if len(data) > receipt_data_bytes_max:
            raise HandlerLimitExceeded(
                f"receipt data of {len(data)} bytes exceeds "
                f"receipt_data_bytes_max={receipt_data_bytes_max}"
            )
        request = state_context_pb2.TpReceiptAddDataRequest(context_id=self._context_id, data=data)
        response = state_context_pb2.TpReceiptAddDataResponse()
        response.ParseFromString(self._ask(_Message.TP_RECEIPT_ADD_DATA_REQUEST, request))
        if response.status != state_context_pb2.TpReceiptAddDataResponse.OK:
            raise HandlerLimitExceeded("the node refused the receipt data")
        self._data += 1

    def add_event(
        self,
        event_type: str,
        attributes: Iterable[tuple[str, str]] = (),
        data: bytes = b"",
    ) -> None:
        """Emit an event; subscribers see it only if the transaction's batch commits."""
        pairs = check_event(event_type, attributes, data, emitted=self._events)
        event = events_pb2.Event(
            event_type=event_type,
            attributes=[events_pb2.Event.Attribute(key=k, value=v) for k, v in pairs],
            data=data,
        )
        request = state_context_pb2.TpEventAddRequest(context_id=self._context_id, event=event)
        response = state_context_pb2.TpEventAddResponse()
        response.ParseFromString(self._ask(_Message.TP_EVENT_ADD_REQUEST, request))
        if response.status != state_context_pb2.TpEventAddResponse.OK:
            raise HandlerLimitExceeded(f"the node refused the event {event_type!r}")
        self._events += 1

    # --- plumbing -------------------------------------------------------------------------

    def _ask(self, message_type: _MessageType, request: ProtoMessage) -> bytes:
        response: Response = self._connection.request(message_type, request.SerializeToString())
        expected = message_type + 1  # every TP_* response type follows its request's number
        if response.message_type != expected:
            raise InternalError(
                f"the node answered {validator_pb2.Message.MessageType.Name(message_type)} "
                f"with message type {response.message_type}"
            )
        return response.content

    def _check_input(self, address: str) -> None:
        check_input(address, self._inputs)

    def _check_output(self, address: str) -> None:
        check_output(address, self._outputs)


def _check_ok(status: int, what: str) -> None:
    if status != 1:  # OK is 1 in every TpState*Response.Status
        raise InternalError(f"the node answered {what} with status {status}")


def _check_count(items: Sequence[str] | Mapping[str, bytes], call: str) -> None:
    if isinstance(items, str):
        raise InvalidTransaction(f"{call} takes a list of addresses, not one string")
    if len(items) > addresses_per_state_call_max:
        raise HandlerLimitExceeded(
            f"{call} with {len(items)} addresses exceeds "
            f"addresses_per_state_call_max={addresses_per_state_call_max}"
        )
