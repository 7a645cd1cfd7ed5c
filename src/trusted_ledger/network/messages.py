"""The application envelope carried in one frame: ``u8 type || payload``, bounded per type.

The transport knows only the type and the size of a payload: what a CONSENSUS or BATCHES
payload means is decided (and validated again) by the layer that consumes it. An unknown
type or a payload over its type's bound is a protocol violation that closes the
connection: a member running compatible software never sends one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trusted_ledger.errors import InvalidInput, PeerProtocolError
from trusted_ledger.network.channel import frame_bytes_max_default

REASON_UNKNOWN_TYPE = "unknown_type"
REASON_OVERSIZED_MESSAGE = "oversized_message"


class MessageType(enum.IntEnum):
    """What a frame carries; the value is the type byte on the wire."""

    CONSENSUS = 1
    """A signed proposal or vote, for the consensus state machine."""
    BATCHES = 2
    """Gossiped client batches (Sawtooth BatchList bytes), for the pending pool."""
    BLOCK_REQUEST = 3
    """Catch-up: ask for committed blocks from a height."""
    BLOCK_RESPONSE = 4
    """Catch-up: committed blocks with their commit certificates."""
    PING = 5
    """Liveness probe; the transport answers it with a PONG of the same payload."""
    PONG = 6
    """Answer to a PING; delivered to the consumer (round-trip measurement)."""


@dataclass(frozen=True)
class PeerMessage:
    """One received application message."""

    type: MessageType
    payload: bytes


@dataclass(frozen=True)
class MessageLimits:
    """Bounds of payload bytes per message type, and of one frame's plaintext.

    Defaults: a vote or proposal is under 1 KiB today (1 MiB leaves room for proposals
    that carry more); gossip and block responses may fill a frame (``None``: the frame's
    plaintext less the type byte, whatever ``frame_bytes_max`` is set to).
    """

    frame_bytes_max: int = frame_bytes_max_default
    consensus_bytes_max: int = 1024 * 1024
    batches_bytes_max: int | None = None
    block_request_bytes_max: int = 1024
    block_response_bytes_max: int | None = None
    ping_bytes_max: int = 64

    def __post_init__(self) -> None:
        for message_type in MessageType:
            bound = self.payload_bytes_max(message_type)
            if not 0 <= bound <= self.frame_bytes_max - 1:
                raise InvalidInput(
                    f"{message_type.name} bound {bound} does not fit a frame of "
                    f"{self.frame_bytes_max} bytes (type byte included)"
                )

    def payload_bytes_max(self, message_type: MessageType) -> int:
        match message_type:
            case MessageType.CONSENSUS:
                return self.consensus_bytes_max
            case MessageType.BATCHES:
                return self._or_frame(self.batches_bytes_max)
            case MessageType.BLOCK_REQUEST:
                return self.block_request_bytes_max
            case MessageType.BLOCK_RESPONSE:
                return self._or_frame(self.block_response_bytes_max)
            case MessageType.PING | MessageType.PONG:
                return self.ping_bytes_max

    def _or_frame(self, bound: int | None) -> int:
        return self.frame_bytes_max - 1 if bound is None else bound


def encode_message(message_type: MessageType, payload: bytes, limits: MessageLimits) -> bytes:
    """The envelope for ``payload``; ``InvalidInput`` if it exceeds its type's bound (a bug
    in the sender, caught before it could cost the connection)."""
    message_type = MessageType(message_type)
    bound = limits.payload_bytes_max(message_type)
    if len(payload) > bound:
        raise InvalidInput(f"{message_type.name} payload of {len(payload)} bytes exceeds {bound}")
    return bytes([message_type]) + payload


def decode_message(envelope: bytes, limits: MessageLimits) -> PeerMessage:
    """Parse a received envelope; ``PeerProtocolError`` for an unknown type or size."""
    if not envelope:
        raise PeerProtocolError("empty envelope", reason=REASON_UNKNOWN_TYPE)
    try:
        message_type = MessageType(envelope[0])
    except ValueError:
        raise PeerProtocolError(
            f"unknown message type {envelope[0]}", reason=REASON_UNKNOWN_TYPE
        ) from None
    payload = envelope[1:]
    bound = limits.payload_bytes_max(message_type)
    if len(payload) > bound:
        raise PeerProtocolError(
            f"{message_type.name} payload of {len(payload)} bytes exceeds {bound}",
            reason=REASON_OVERSIZED_MESSAGE,
        )
    return PeerMessage(message_type, payload)
