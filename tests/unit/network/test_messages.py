"""The application envelope: one type byte, a payload bounded by its type."""

from __future__ import annotations

import pytest

from trusted_ledger.errors import InvalidInput, PeerProtocolError
from trusted_ledger.network import MessageLimits, MessageType
from trusted_ledger.network.messages import decode_message, encode_message

LIMITS = MessageLimits(frame_bytes_max=2000, consensus_bytes_max=500)


@pytest.mark.parametrize("message_type", list(MessageType), ids=lambda t: t.name)
def test_every_type_round_trips(message_type: MessageType) -> None:
    payload = b"p" * min(10, LIMITS.payload_bytes_max(message_type))
    envelope = encode_message(message_type, payload, LIMITS)
    assert envelope[0] == message_type.value
    decoded = decode_message(envelope, LIMITS)
    assert decoded.type is message_type and decoded.payload == payload


@pytest.mark.parametrize("type_byte", [0, 7, 255])
def test_an_unknown_type_is_a_protocol_violation(type_byte: int) -> None:
    with pytest.raises(PeerProtocolError) as violation:
        decode_message(bytes([type_byte]) + b"x", LIMITS)
    assert violation.value.reason == "unknown_type"


def test_per_type_bounds_on_both_sides() -> None:
    assert decode_message(bytes([1]) + b"c" * 500, LIMITS).payload == b"c" * 500
    with pytest.raises(PeerProtocolError) as violation:
        decode_message(bytes([1]) + b"c" * 501, LIMITS)
    assert violation.value.reason == "oversized_message"
    with pytest.raises(PeerProtocolError):
        decode_message(bytes([MessageType.PING]) + b"p" * 65, LIMITS)
    with pytest.raises(InvalidInput):  # the sender's bug is caught before the wire
        encode_message(MessageType.BLOCK_REQUEST, b"r" * 1025, LIMITS)
    with pytest.raises(PeerProtocolError):
        decode_message(b"", LIMITS)


def test_limits_must_fit_a_frame() -> None:
    assert LIMITS.payload_bytes_max(MessageType.BATCHES) == 1999  # follows the frame bound
    with pytest.raises(InvalidInput, match="CONSENSUS"):
        MessageLimits(frame_bytes_max=1000)  # the 1 MiB consensus default no longer fits
