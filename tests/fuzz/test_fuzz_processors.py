"""Fuzz targets: the TP protocol in both directions.

Node side (bytes from an external processor): the ``Message`` envelope
(``tp.messages.decode_message``), then the content of every type a processor may send,
handled as the server thread handles it (``ProcessorServer._answer`` with a real dispatcher
and registry; the state calls against a real ``AttemptBuffer`` over a real
``HandlerContext``). Documented: ``ProcessorProtocolError`` for a malformed frame or content
(the server drops the sender); a registration or a state call the rules refuse is an answer
(status ERROR / AUTHORIZATION_ERROR), not an exception.

Kit side (bytes from the node): a TP_PROCESS_REQUEST's content, through the kit's real
``TransactionProcessor._process``. Documented: exactly one TP_PROCESS_RESPONSE per request,
whatever the bytes, with status OK, INVALID_TRANSACTION or INTERNAL_ERROR; nothing raises.
"""

from __future__ import annotations

import queue

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.harness import fuzz_settings, inputs, mutated, run_decoder
from trusted_ledger.errors import (
    InvalidTransaction,
    ProcessorProtocolError,
    ProcessorRegistrationRefused,
)
from trusted_ledger.processing import HandlerRegistry, TransactionHandler
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.families import builtin_registry
from trusted_ledger.processing.families.intkey import intkey_address, intkey_payload
from trusted_ledger.processing.tp import messages as tp
from trusted_ledger.processing.tp.external import AttemptBuffer
from trusted_ledger.processing.tp.server import _STATE_CALLS, ProcessorServer
from trusted_ledger.processor import TransactionProcessor
from trusted_ledger.processor._connection import InboundRequest, Response
from trusted_ledger.processor.core import _check_registered
from trusted_ledger.state import EMPTY_ROOT, STATE_NODES_COLUMN_FAMILY, StateStore
from trusted_ledger.state import TransactionContext as StateContext
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import SigningKey, Transaction, TransactionBuilder
from trusted_ledger.txn.protos import (
    events_pb2,
    network_pb2,
    processor_pb2,
    state_context_pb2,
    validator_pb2,
)

M = validator_pb2.Message
KEY = SigningKey((77).to_bytes(32, "big"))
ADDRESS = intkey_address("fuzz")
CONTEXT_ID = "ctx-1"
IDENTITY = b"processor-1"


def _transaction(family: str = "intkey") -> Transaction:
    builder = TransactionBuilder(KEY, family, "1.0")
    return builder.build(
        intkey_payload("set", "fuzz", 1), inputs=[ADDRESS], outputs=[ADDRESS], nonce="aa"
    )


def _contents() -> dict[int, list[bytes]]:
    """A valid content of each type a processor sends."""
    entry = state_context_pb2.TpStateEntry(address=ADDRESS, data=b"\xa1\x61\x61\x01")
    event = events_pb2.Event(
        event_type="fuzz/event",
        attributes=[events_pb2.Event.Attribute(key="k", value="v")],
        data=b"d",
    )
    register = processor_pb2.TpRegisterRequest(
        family="fuzzfam", version="1.0", namespaces=["abcdef"], max_occupancy=2,
        protocol_version=1, request_header_style=processor_pb2.TpRegisterRequest.EXPANDED,
    )  # fmt: skip
    built = {
        M.TP_REGISTER_REQUEST: register,
        M.TP_UNREGISTER_REQUEST: processor_pb2.TpUnregisterRequest(),
        M.TP_PROCESS_RESPONSE: processor_pb2.TpProcessResponse(
            status=processor_pb2.TpProcessResponse.INVALID_TRANSACTION, message="no"
        ),
        M.TP_STATE_GET_REQUEST: state_context_pb2.TpStateGetRequest(
            context_id=CONTEXT_ID, addresses=[ADDRESS]
        ),
        M.TP_STATE_SET_REQUEST: state_context_pb2.TpStateSetRequest(
            context_id=CONTEXT_ID, entries=[entry]
        ),
        M.TP_STATE_DELETE_REQUEST: state_context_pb2.TpStateDeleteRequest(
            context_id=CONTEXT_ID, addresses=[ADDRESS]
        ),
        M.TP_RECEIPT_ADD_DATA_REQUEST: state_context_pb2.TpReceiptAddDataRequest(
            context_id=CONTEXT_ID, data=b"receipt"
        ),
        M.TP_EVENT_ADD_REQUEST: state_context_pb2.TpEventAddRequest(
            context_id=CONTEXT_ID, event=event
        ),
        M.PING_REQUEST: network_pb2.PingRequest(),
        M.PING_RESPONSE: network_pb2.PingResponse(),
    }
    return {kind: [message.SerializeToString()] for kind, message in built.items()}


CONTENTS = _contents()
FRAMES = [
    tp.encode_message(kind, f"corr-{kind}", content)
    for kind, contents in CONTENTS.items()
    for content in contents
]


@fuzz_settings()
@given(inputs(FRAMES))
def test_decode_envelope(data: bytes) -> None:
    envelope = run_decoder(
        "processing.tp.decode_message", tp.decode_message, data, (ProcessorProtocolError,)
    )
    if envelope is not None:
        assert envelope.message_type in tp.FROM_PROCESSOR
        assert 1 <= len(envelope.correlation_id) <= tp.correlation_id_chars_max


class _OneAttempt:
    """The dispatcher's one question of a state call, answered with one real open attempt
    (the context id the node gave the processor): ``buffer_for``."""

    def __init__(self) -> None:
        view = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY])).view(EMPTY_ROOT)
        context = HandlerContext(StateContext(view, [ADDRESS], [ADDRESS]))
        self.buffer = AttemptBuffer(_transaction(), context)

    def buffer_for(self, identity: bytes, context_id: str) -> AttemptBuffer | None:
        return self.buffer if (identity, context_id) == (IDENTITY, CONTEXT_ID) else None


SERVER = ProcessorServer(builtin_registry(), "tcp://127.0.0.1:0")


@fuzz_settings()
@given(st.sampled_from(sorted(CONTENTS)), st.data())
def test_processor_content(kind: int, draw: st.DataObject) -> None:
    """Each type's content, mutated, handled as the server thread handles it."""
    data = draw.draw(inputs(CONTENTS[kind], arbitrary_max=1024))
    envelope = tp.Envelope(kind, "corr-1", data)
    attempt = _OneAttempt()

    def handle(_: bytes) -> object:
        if kind == M.TP_PROCESS_RESPONSE:
            return tp.parse_content(envelope, processor_pb2.TpProcessResponse)
        if kind == M.PING_RESPONSE:
            return None  # the server reads nothing of it: hearing from the peer is the point
        if kind in _STATE_CALLS:
            return _STATE_CALLS[kind](attempt, IDENTITY, envelope)  # type: ignore[arg-type]
        return SERVER._answer(IDENTITY, envelope)

    run_decoder(f"processing.tp.content.{tp.type_name(kind)}", handle, data,
                (ProcessorProtocolError,))  # fmt: skip


# --- the kit ------------------------------------------------------------------------------


class _PayloadHandler(TransactionHandler):
    """Reads nothing from state: a verdict from the transaction alone (empty payload:
    invalid), so each request is answered without a round trip to a node."""

    @property
    def family_name(self) -> str:
        return "intkey"

    @property
    def family_versions(self) -> tuple[str, ...]:
        return ("1.0",)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (ADDRESS[:6],)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        if not transaction.payload:
            raise InvalidTransaction("empty payload")


KIT = TransactionProcessor("tcp://127.0.0.1:9")
KIT.add_handler(_PayloadHandler())
_txn = _transaction()
KIT_SEEDS = [
    processor_pb2.TpProcessRequest(
        header=_txn.header.to_proto(), payload=_txn.payload, signature=_txn.header_signature,
        context_id=CONTEXT_ID,
    ).SerializeToString(),
    processor_pb2.TpProcessRequest(
        header_bytes=_txn.header_bytes, payload=_txn.payload, signature=_txn.header_signature,
        context_id=CONTEXT_ID,
    ).SerializeToString(),
]  # fmt: skip
_STATUSES = {
    processor_pb2.TpProcessResponse.OK,
    processor_pb2.TpProcessResponse.INVALID_TRANSACTION,
    processor_pb2.TpProcessResponse.INTERNAL_ERROR,
}


@fuzz_settings()
@given(st.one_of(mutated(KIT_SEEDS), st.binary(max_size=1024), st.sampled_from(KIT_SEEDS)))
def test_kit_process_request(data: bytes) -> None:
    outbox = KIT._connection._outbox

    def process(raw: bytes) -> processor_pb2.TpProcessResponse:
        KIT._process(InboundRequest(M.TP_PROCESS_REQUEST, "corr-9", raw, 0))
        _, frame = outbox.get_nowait()
        message = M.FromString(frame)
        assert (message.message_type, message.correlation_id) == (M.TP_PROCESS_RESPONSE, "corr-9")
        return processor_pb2.TpProcessResponse.FromString(message.content)

    response = run_decoder(
        "processor.kit.process_request",
        process,
        data,
        (),
        classify=lambda r: processor_pb2.TpProcessResponse.Status.Name(r.status),
    )
    assert response is not None and response.status in _STATUSES
    try:
        outbox.get_nowait()
    except queue.Empty:
        pass
    else:
        raise AssertionError("more than one answer to one TP_PROCESS_REQUEST")
    if data in KIT_SEEDS:
        assert response.status == processor_pb2.TpProcessResponse.OK


def test_registry_is_real() -> None:
    assert isinstance(KIT._registry, HandlerRegistry)


REGISTER_SEEDS = [
    processor_pb2.TpRegisterResponse(
        status=processor_pb2.TpRegisterResponse.OK, protocol_version=1
    ).SerializeToString(),
    processor_pb2.TpRegisterResponse(
        status=processor_pb2.TpRegisterResponse.ERROR
    ).SerializeToString(),
]


@fuzz_settings()
@given(inputs(REGISTER_SEEDS, arbitrary_max=256))
def test_kit_register_response(data: bytes) -> None:
    """The node's answer to TP_REGISTER_REQUEST, as the kit's registration thread reads it:
    registered, or ``ProcessorRegistrationRefused`` (the processor stops with that error)."""
    run_decoder(
        "processor.kit.register_response",
        lambda raw: _check_registered(Response(M.TP_REGISTER_RESPONSE, raw), "intkey", "1.0"),
        data,
        (ProcessorRegistrationRefused,),
    )
