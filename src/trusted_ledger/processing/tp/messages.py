"""The ``Message`` envelope of Sawtooth's validator protocol, with the bounds we enforce.

Every frame a processor sends is checked here before anything else looks at it: its size
(before parsing, so a huge frame costs nothing), its protobuf encoding, its correlation id,
and its type, which must be one a processor may send to a validator. Anything else is a
``ProcessorProtocolError`` and the server drops the sender (docs/processors.md, "What we
refuse").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from trusted_ledger.errors import ProcessorProtocolError
from trusted_ledger.txn.protos import validator_pb2

MessageType = validator_pb2.Message.MessageType

message_bytes_max = 16 * 1024 * 1024
"""Largest frame either side may send (16 MiB): a TP_PROCESS_REQUEST carries one payload of at
most 1 MiB, a state call a few values of at most 1 MiB each; bigger writes take several calls.
Also set as the socket's ZMQ_MAXMSGSIZE, so libzmq refuses larger frames before we see them."""
correlation_id_chars_max = 128
"""Sawtooth's SDKs send 32 hex characters (a uuid4); 128 leaves room for other SDKs."""

# Types a processor may send us. Everything else (client, gossip, consensus types, a type
# number this build does not know) is refused: this socket serves processors only.
FROM_PROCESSOR: frozenset[int] = frozenset(
    {
        validator_pb2.Message.TP_REGISTER_REQUEST,
        validator_pb2.Message.TP_UNREGISTER_REQUEST,
        validator_pb2.Message.TP_PROCESS_RESPONSE,
        validator_pb2.Message.TP_STATE_GET_REQUEST,
        validator_pb2.Message.TP_STATE_SET_REQUEST,
        validator_pb2.Message.TP_STATE_DELETE_REQUEST,
        validator_pb2.Message.TP_RECEIPT_ADD_DATA_REQUEST,
        validator_pb2.Message.TP_EVENT_ADD_REQUEST,
        validator_pb2.Message.PING_REQUEST,
        validator_pb2.Message.PING_RESPONSE,
    }
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded ``Message``: its type, correlation id and still-encoded content."""

    message_type: int
    correlation_id: str
    content: bytes

    @property
    def type_name(self) -> str:
        return type_name(self.message_type)


def type_name(message_type: int) -> str:
    """The enum name of a message type, or its number when this build does not know it."""
    try:
        return validator_pb2.Message.MessageType.Name(message_type)  # type: ignore[arg-type]
    except ValueError:
        return str(message_type)


def encode_message(message_type: int, correlation_id: str, content: bytes) -> bytes:
    """One frame: the envelope around ``content`` (already-encoded inner message)."""
    message = validator_pb2.Message(
        message_type=message_type,  # type: ignore[arg-type]
        correlation_id=correlation_id,
        content=content,
    )
    frame = message.SerializeToString()
    if len(frame) > message_bytes_max:
        # Our own message: a payload or value that passed txn/state bounds cannot get here,
        # so this is a bug, not a processor's fault; still refuse rather than send it.
        raise ProcessorProtocolError(
            f"outgoing {type_name(message_type)} of {len(frame)} bytes exceeds "
            f"message_bytes_max={message_bytes_max}"
        )
    return frame


def decode_message(frame: bytes) -> Envelope:
    """The envelope in ``frame`` from a processor, or ``ProcessorProtocolError`` saying why."""
    if len(frame) > message_bytes_max:
        raise ProcessorProtocolError(
            f"frame of {len(frame)} bytes exceeds message_bytes_max={message_bytes_max}"
        )
    message = validator_pb2.Message()
    try:
        message.ParseFromString(frame)
    except DecodeError as exc:
        raise ProcessorProtocolError(f"frame is not a Message envelope: {exc}") from exc
    correlation_id = message.correlation_id
    if not 0 < len(correlation_id) <= correlation_id_chars_max or not correlation_id.isprintable():
        raise ProcessorProtocolError(
            f"correlation id must be 1..{correlation_id_chars_max} printable characters"
        )
    if message.message_type not in FROM_PROCESSOR:
        raise ProcessorProtocolError(
            f"message type {type_name(message.message_type)} is not one a processor sends"
        )
    return Envelope(int(message.message_type), correlation_id, message.content)


ContentT = TypeVar("ContentT", bound=ProtoMessage)


def parse_content(envelope: Envelope, message_class: type[ContentT]) -> ContentT:
    """The envelope's content parsed as ``message_class``; malformed bytes are refused."""
    content = message_class()
    try:
        content.ParseFromString(envelope.content)
    except DecodeError as exc:
        raise ProcessorProtocolError(
            f"{envelope.type_name} content is not a {message_class.__name__}: {exc}"
        ) from exc
    return content
