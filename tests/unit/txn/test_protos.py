"""The generated protobuf modules: up to date, importable with the installed runtime, and
with Sawtooth 1.x's field numbers, types and names (typed in here from the specification,
independently of proto/)."""

from __future__ import annotations

import filecmp
import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from trusted_ledger.txn.protos import (
    batch_pb2,
    events_pb2,
    network_pb2,
    processor_pb2,
    state_context_pb2,
    transaction_pb2,
    transaction_receipt_pb2,
    validator_pb2,
)

ROOT = Path(__file__).resolve().parents[3]
GENERATED = ROOT / "src" / "trusted_ledger" / "txn" / "protos"

S, B, U32, BOOL, E, M = "string", "bytes", "uint32", "bool", "enum", "message"
_TYPE_NAMES = {
    FieldDescriptor.TYPE_STRING: S,
    FieldDescriptor.TYPE_BYTES: B,
    FieldDescriptor.TYPE_UINT32: U32,
    FieldDescriptor.TYPE_BOOL: BOOL,
    FieldDescriptor.TYPE_ENUM: E,
    FieldDescriptor.TYPE_MESSAGE: M,
}
# message -> {field name: (number, type, repeated)}
SPEC: dict[Descriptor, dict[str, tuple[int, str, bool]]] = {
    transaction_pb2.TransactionHeader.DESCRIPTOR: {
        "batcher_public_key": (1, S, False),
        "dependencies": (2, S, True),
        "family_name": (3, S, False),
        "family_version": (4, S, False),
        "inputs": (5, S, True),
        "nonce": (6, S, False),
        "outputs": (7, S, True),
        "payload_sha512": (9, S, False),
        "signer_public_key": (10, S, False),
    },
    transaction_pb2.Transaction.DESCRIPTOR: {
        "header": (1, B, False),
        "header_signature": (2, S, False),
        "payload": (3, B, False),
    },
    transaction_pb2.TransactionList.DESCRIPTOR: {"transactions": (1, M, True)},
    batch_pb2.BatchHeader.DESCRIPTOR: {
        "signer_public_key": (1, S, False),
        "transaction_ids": (2, S, True),
    },
    batch_pb2.Batch.DESCRIPTOR: {
        "header": (1, B, False),
        "header_signature": (2, S, False),
        "transactions": (3, M, True),
        "trace": (4, BOOL, False),
    },
    batch_pb2.BatchList.DESCRIPTOR: {"batches": (1, M, True)},
    validator_pb2.Message.DESCRIPTOR: {
        "message_type": (1, E, False),
        "correlation_id": (2, S, False),
        "content": (3, B, False),
    },
    validator_pb2.MessageList.DESCRIPTOR: {"messages": (1, M, True)},
    processor_pb2.TpRegisterRequest.DESCRIPTOR: {
        "family": (1, S, False),
        "version": (2, S, False),
        "namespaces": (4, S, True),
        "max_occupancy": (5, U32, False),
        "protocol_version": (6, U32, False),
        "request_header_style": (7, E, False),
    },
    processor_pb2.TpRegisterResponse.DESCRIPTOR: {
        "status": (1, E, False),
        "protocol_version": (2, U32, False),
    },
    processor_pb2.TpUnregisterRequest.DESCRIPTOR: {},
    processor_pb2.TpUnregisterResponse.DESCRIPTOR: {"status": (1, E, False)},
    processor_pb2.TpProcessRequest.DESCRIPTOR: {
        "header": (1, M, False),
        "payload": (2, B, False),
        "signature": (3, S, False),
        "context_id": (4, S, False),
        "header_bytes": (5, B, False),
    },
    processor_pb2.TpProcessResponse.DESCRIPTOR: {
        "status": (1, E, False),
        "message": (2, S, False),
        "extended_data": (3, B, False),
    },
    state_context_pb2.TpStateEntry.DESCRIPTOR: {"address": (1, S, False), "data": (2, B, False)},
    state_context_pb2.TpStateGetRequest.DESCRIPTOR: {
        "context_id": (1, S, False),
        "addresses": (2, S, True),
    },
    state_context_pb2.TpStateGetResponse.DESCRIPTOR: {
        "entries": (1, M, True),
        "status": (2, E, False),
    },
    state_context_pb2.TpStateSetRequest.DESCRIPTOR: {
        "context_id": (1, S, False),
        "entries": (2, M, True),
    },
    state_context_pb2.TpStateSetResponse.DESCRIPTOR: {
        "addresses": (1, S, True),
        "status": (2, E, False),
    },
    state_context_pb2.TpStateDeleteRequest.DESCRIPTOR: {
        "context_id": (1, S, False),
        "addresses": (2, S, True),
    },
    state_context_pb2.TpStateDeleteResponse.DESCRIPTOR: {
        "addresses": (1, S, True),
        "status": (2, E, False),
    },
    state_context_pb2.TpReceiptAddDataRequest.DESCRIPTOR: {
        "context_id": (1, S, False),
        "data": (3, B, False),
    },
    state_context_pb2.TpReceiptAddDataResponse.DESCRIPTOR: {"status": (2, E, False)},
    state_context_pb2.TpEventAddRequest.DESCRIPTOR: {
        "context_id": (1, S, False),
        "event": (2, M, False),
    },
    state_context_pb2.TpEventAddResponse.DESCRIPTOR: {"status": (2, E, False)},
    events_pb2.Event.DESCRIPTOR: {
        "event_type": (1, S, False),
        "attributes": (2, M, True),
        "data": (3, B, False),
    },
    events_pb2.Event.Attribute.DESCRIPTOR: {"key": (1, S, False), "value": (2, S, False)},
    events_pb2.EventList.DESCRIPTOR: {"events": (1, M, True)},
    events_pb2.EventFilter.DESCRIPTOR: {
        "key": (1, S, False),
        "match_string": (2, S, False),
        "filter_type": (3, E, False),
    },
    events_pb2.EventSubscription.DESCRIPTOR: {
        "event_type": (1, S, False),
        "filters": (2, M, True),
    },
    transaction_receipt_pb2.TransactionReceipt.DESCRIPTOR: {
        "state_changes": (1, M, True),
        "events": (2, M, True),
        "data": (3, B, True),
        "transaction_id": (4, S, False),
    },
    transaction_receipt_pb2.StateChange.DESCRIPTOR: {
        "address": (1, S, False),
        "value": (2, B, False),
        "type": (3, E, False),
    },
    network_pb2.PingRequest.DESCRIPTOR: {},
    network_pb2.PingResponse.DESCRIPTOR: {},
}


@pytest.mark.parametrize("descriptor", list(SPEC), ids=lambda d: d.full_name)
def test_fields_match_sawtooth(descriptor: Descriptor) -> None:
    actual = {f.name: (f.number, _TYPE_NAMES[f.type], f.is_repeated) for f in descriptor.fields}
    assert actual == SPEC[descriptor]
    # No package, as in Sawtooth: the full name is the bare (or nested) message name.
    assert not descriptor.file.package


def test_message_type_numbers() -> None:
    types = validator_pb2.Message.MessageType
    expected = {
        "DEFAULT": 0,
        "TP_REGISTER_REQUEST": 1,
        "TP_PROCESS_REQUEST": 5,
        "TP_PROCESS_RESPONSE": 6,
        "TP_STATE_GET_REQUEST": 7,
        "TP_STATE_DELETE_RESPONSE": 12,
        "TP_RECEIPT_ADD_DATA_REQUEST": 13,
        "TP_EVENT_ADD_RESPONSE": 16,
        "CLIENT_BATCH_SUBMIT_REQUEST": 100,
        "CLIENT_STATUS_GET_RESPONSE": 130,
        "GOSSIP_MESSAGE": 200,
        "GOSSIP_CONSENSUS_MESSAGE": 212,
        "NETWORK_ACK": 300,
        "CLIENT_EVENTS_SUBSCRIBE_REQUEST": 500,
        "CLIENT_EVENTS_GET_RESPONSE": 506,
        "AUTHORIZATION_CHALLENGE_RESULT": 607,
        "PING_REQUEST": 700,
        "PING_RESPONSE": 701,
        "CONSENSUS_SUMMARIZE_BLOCK_REQUEST": 828,
        "CONSENSUS_NOTIFY_ENGINE_DEACTIVATED": 908,
        "CONSENSUS_NOTIFY_ACK": 999,
    }
    assert {name: types.Value(name) for name in expected} == expected
    assert len(types.keys()) == 119
    assert len(set(types.values())) == 119


def test_status_enums() -> None:
    status = processor_pb2.TpProcessResponse.Status
    assert [status.Value(n) for n in ("OK", "INVALID_TRANSACTION", "INTERNAL_ERROR")] == [1, 2, 3]
    style = processor_pb2.TpRegisterRequest.TpProcessRequestHeaderStyle
    assert (style.Value("EXPANDED"), style.Value("RAW")) == (1, 2)
    get_status = state_context_pb2.TpStateGetResponse.Status
    assert get_status.Value("AUTHORIZATION_ERROR") == 2
    filter_type = events_pb2.EventFilter.FilterType
    assert filter_type.Value("REGEX_ALL") == 4


def test_nested_message_round_trips_with_type_names() -> None:
    message = validator_pb2.Message(
        message_type=validator_pb2.Message.TP_PROCESS_REQUEST,
        correlation_id="c1",
        content=processor_pb2.TpProcessRequest(signature="ab").SerializeToString(),
    )
    # Bytes checked by hand: field 1 varint 5, field 2 "c1", field 3 (field 3 "ab").
    assert message.SerializeToString() == b"\x08\x05\x12\x02c1\x1a\x04\x1a\x02ab"
    assert validator_pb2.Message.DESCRIPTOR.full_name == "Message"
    assert processor_pb2.TpProcessRequest.DESCRIPTOR.fields_by_name["header"].message_type is (
        transaction_pb2.TransactionHeader.DESCRIPTOR
    )


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None, reason="needs grpcio-tools (dev extra)"
)
def test_regenerating_gives_the_committed_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in GENERATED.iterdir() if "_pb2." in p.name)
    assert fresh == committed
    assert len(fresh) == 16
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, GENERATED, fresh, shallow=False)
    # Output depends on the generator versions; the committed files name theirs in headers.
    versions = {name: metadata.version(name) for name in ("grpcio-tools", "mypy-protobuf")}
    assert (mismatch, errors) == ([], []), f"stale or generated with other versions {versions}"
