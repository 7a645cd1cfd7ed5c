"""The envelope codec refuses what a processor must not send, before anything else runs."""

from __future__ import annotations

import pytest

from trusted_ledger.errors import ProcessorProtocolError
from trusted_ledger.processing.tp.messages import (
    correlation_id_chars_max,
    decode_message,
    encode_message,
    message_bytes_max,
    parse_content,
)
from trusted_ledger.txn.protos import processor_pb2, validator_pb2

M = validator_pb2.Message


def test_round_trip_keeps_type_correlation_and_content() -> None:
    content = processor_pb2.TpProcessResponse(status=1, message="fine").SerializeToString()
    envelope = decode_message(encode_message(M.TP_PROCESS_RESPONSE, "c1", content))
    assert (envelope.message_type, envelope.correlation_id) == (M.TP_PROCESS_RESPONSE, "c1")
    assert parse_content(envelope, processor_pb2.TpProcessResponse).message == "fine"
    assert envelope.type_name == "TP_PROCESS_RESPONSE"


def test_oversized_frame_refused_before_parsing() -> None:
    with pytest.raises(ProcessorProtocolError, match="message_bytes_max"):
        decode_message(b"\x00" * (message_bytes_max + 1))


@pytest.mark.parametrize("frame", [b"\xff\xff\xff", b"\x0a\x05ab"])
def test_garbage_refused(frame: bytes) -> None:
    with pytest.raises(ProcessorProtocolError):
        decode_message(frame)


@pytest.mark.parametrize(
    "message_type",
    [M.CLIENT_BATCH_SUBMIT_REQUEST, M.TP_PROCESS_REQUEST, M.GOSSIP_MESSAGE, 4242, M.DEFAULT],
)
def test_types_a_processor_does_not_send_refused(message_type: int) -> None:
    frame = validator_pb2.Message(
        message_type=message_type,  # type: ignore[arg-type]
        correlation_id="c",
    ).SerializeToString()
    with pytest.raises(ProcessorProtocolError, match="not one a processor sends"):
        decode_message(frame)


@pytest.mark.parametrize("correlation_id", ["", "x" * (correlation_id_chars_max + 1), "a\nb"])
def test_bad_correlation_id_refused(correlation_id: str) -> None:
    frame = validator_pb2.Message(
        message_type=M.PING_RESPONSE, correlation_id=correlation_id
    ).SerializeToString()
    with pytest.raises(ProcessorProtocolError, match="correlation id"):
        decode_message(frame)


def test_content_of_the_wrong_shape_refused() -> None:
    envelope = decode_message(encode_message(M.TP_STATE_GET_REQUEST, "c", b"\xff\xff"))
    with pytest.raises(ProcessorProtocolError, match="TpRegisterRequest"):
        parse_content(envelope, processor_pb2.TpRegisterRequest)
