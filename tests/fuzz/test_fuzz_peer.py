"""Fuzz targets: what a peer sends. Consensus messages, catch-up request and response,
the frame envelope, the three handshake messages (and the identity a handshake carries
encrypted: a hostile peer holds the handshake key, so it can encrypt any bytes it likes)
and encrypted frames.

Documented error families: ``bft_wire.decode_message`` ``MalformedConsensusMessage``;
catch-up ``MalformedCatchUpMessage``; the envelope ``PeerProtocolError``; handshake
messages a ``PeerFault`` (``PeerProtocolError`` malformed, ``HandshakeRefused`` otherwise);
``SecureChannel.open`` a ``PeerFault`` (``PeerProtocolError`` or ``ChannelBroken``).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import seeds
from tests.fuzz.harness import fuzz_settings, inputs, run_decoder
from tests.unit.network.support import KeySigner, Members, key_from_label
from trusted_ledger.custody import KeyAlgorithm, PublicKey
from trusted_ledger.errors import (
    MalformedCatchUpMessage,
    MalformedConsensusMessage,
    PeerFault,
    PeerProtocolError,
)
from trusted_ledger.network import InitiatorHandshake, ResponderHandshake, SecureChannel
from trusted_ledger.network import handshake as hs
from trusted_ledger.network import messages as envelope
from trusted_ledger.node import bft_wire, catchup

REQUEST_COUNT_MAX = 64
LIMITS = envelope.MessageLimits(frame_bytes_max=1 << 16, consensus_bytes_max=1 << 12)


def test_seeds_round_trip() -> None:
    for data in seeds.consensus_messages():
        message = bft_wire.decode_message(data)
        assert _encode_consensus(message) == data
    for data in seeds.block_requests():
        assert catchup.encode_block_request(*catchup.decode_block_request(data, 2**16)) == data
    for data in seeds.block_responses():
        assert catchup.encode_block_response(catchup.decode_block_response(data)) == data


def _encode_consensus(message: bft_wire.WireMessage) -> bytes:
    if isinstance(message, bft_wire.WireProposal):
        return bft_wire.encode_proposal(message.chain_id, message.proposal, message.block_bytes)
    return bft_wire.encode_vote(message.chain_id, message.vote)


@fuzz_settings()
@given(inputs(seeds.consensus_messages()))
def test_decode_consensus_message(data: bytes) -> None:
    message = run_decoder(
        "node.bft_wire.decode_message",
        bft_wire.decode_message,
        data,
        (MalformedConsensusMessage,),
    )
    if message is not None:
        assert _encode_consensus(message) == data


@fuzz_settings()
@given(inputs(seeds.block_requests(), arbitrary_max=64))
def test_decode_block_request(data: bytes) -> None:
    request = run_decoder(
        "node.catchup.decode_block_request",
        lambda raw: catchup.decode_block_request(raw, REQUEST_COUNT_MAX),
        data,
        (MalformedCatchUpMessage,),
    )
    if request is not None:
        first, count = request
        assert first >= 1 and 1 <= count <= REQUEST_COUNT_MAX
        assert catchup.encode_block_request(first, count) == data


@fuzz_settings()
@given(inputs(seeds.block_responses()))
def test_decode_block_response(data: bytes) -> None:
    response = run_decoder(
        "node.catchup.decode_block_response",
        catchup.decode_block_response,
        data,
        (MalformedCatchUpMessage,),
    )
    if response is not None:
        assert catchup.encode_block_response(response) == data


@fuzz_settings()
@given(inputs([bytes([t]) + b"payload" for t in envelope.MessageType], arbitrary_max=512))
def test_decode_envelope(data: bytes) -> None:
    message = run_decoder(
        "network.messages.decode_message",
        lambda raw: envelope.decode_message(raw, LIMITS),
        data,
        (PeerProtocolError,),
    )
    if message is not None:
        assert envelope.encode_message(message.type, message.payload, LIMITS) == data


# --- handshake --------------------------------------------------------------------------


def _signers(case: dict[str, Any]) -> tuple[KeySigner, KeySigner, Members]:
    algorithm = KeyAlgorithm(case["key_algorithm"])
    initiator = KeySigner(
        key_from_label(algorithm, f"trusted-ledger network vector initiator {algorithm.value}"),
        deterministic=True,
    )
    responder = KeySigner(
        key_from_label(algorithm, f"trusted-ledger network vector responder {algorithm.value}"),
        deterministic=True,
    )
    return initiator, responder, Members(initiator.public_key, responder.public_key)


def _ephemeral(case: dict[str, Any], name: str) -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(case[name]))


def _initiator(case: dict[str, Any]) -> InitiatorHandshake:
    initiator, _, members = _signers(case)
    handshake = InitiatorHandshake(
        case["chain_id"],
        initiator,
        members,
        ephemeral=_ephemeral(case, "initiator_ephemeral_private"),
        nonce=bytes.fromhex(case["initiator_nonce"]),
    )
    handshake.hello()
    return handshake


def _responder(case: dict[str, Any], *, after_response: bool) -> ResponderHandshake:
    _, responder, members = _signers(case)
    handshake = ResponderHandshake(
        case["chain_id"],
        responder,
        members,
        ephemeral=_ephemeral(case, "responder_ephemeral_private"),
        nonce=bytes.fromhex(case["responder_nonce"]),
    )
    if after_response:
        handshake.read_hello(bytes.fromhex(case["msg1"]))
        handshake.response()
    return handshake


CASES = seeds.network_cases()
CASE_INDEX = st.integers(0, len(CASES) - 1)


@fuzz_settings()
@given(inputs([bytes.fromhex(c["msg1"]) for c in CASES], arbitrary_max=512))
def test_handshake_hello(data: bytes) -> None:
    run_decoder(
        "network.handshake.read_hello",
        lambda raw: _responder(CASES[0], after_response=False).read_hello(raw),
        data,
        (PeerFault,),
    )


@fuzz_settings()
@given(CASE_INDEX, st.data())
def test_handshake_response(index: int, draw: st.DataObject) -> None:
    case = CASES[index]
    data = draw.draw(inputs([bytes.fromhex(case["msg2"])], arbitrary_max=512))
    peer = run_decoder(
        "network.handshake.read_response",
        lambda raw: _initiator(case).read_response(raw),
        data,
        (PeerFault,),
    )
    if peer is not None:
        assert peer == PublicKey.from_spki(bytes.fromhex(case["responder_spki_der"]))


@fuzz_settings()
@given(CASE_INDEX, st.data())
def test_handshake_finish(index: int, draw: st.DataObject) -> None:
    case = CASES[index]
    data = draw.draw(inputs([bytes.fromhex(case["msg3"])], arbitrary_max=512))
    result = run_decoder(
        "network.handshake.read_finish",
        lambda raw: _responder(case, after_response=True).read_finish(raw),
        data,
        (PeerFault,),
    )
    if result is not None:
        assert result.transcript_hash.hex() == case["transcript_hash"]


def _identity(case: dict[str, Any]) -> bytes:
    spki = bytes.fromhex(case["responder_spki_der"])
    return hs._encode_identity(spki, bytes(64))


@fuzz_settings()
@given(inputs([_identity(c) for c in CASES], arbitrary_max=1024))
def test_handshake_identity_payload(data: bytes) -> None:
    """The decrypted identity (SPKI and signature) of message 2 or 3, then the key parse."""

    def decode(raw: bytes) -> PublicKey:
        spki, signature = hs._decode_identity(raw, "identity")
        assert 1 <= len(signature) <= hs.signature_bytes_max
        return hs._peer_key(spki)

    run_decoder("network.handshake.identity", decode, data, (PeerFault,))


# --- frames -----------------------------------------------------------------------------


def _frames(case: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(f["frame"]) for f in case["frames"] if f["counter"] == 0]


@fuzz_settings()
@given(CASE_INDEX, st.data())
def test_channel_open(index: int, draw: st.DataObject) -> None:
    """The first frame each way, mutated, into a fresh channel with the vector's keys."""
    case = CASES[index]
    data = draw.draw(inputs(_frames(case), arbitrary_max=512))
    i2r, r2i = (bytes.fromhex(case[name]) for name in ("session_key_i2r", "session_key_r2i"))
    direction = draw.draw(st.sampled_from(["i2r", "r2i"]))

    def decode(raw: bytes) -> bytes:
        # A fresh receiving channel each time (a channel is stateful: counter, broken flag).
        # The transport reads exactly 4 header bytes, checks them, then reads the body.
        send, receive = (r2i, i2r) if direction == "i2r" else (i2r, r2i)
        channel = SecureChannel(send, receive, frame_bytes_max=1 << 20)
        header = raw[:4].ljust(4, b"\x00")
        channel.check_header(header)
        return channel.open(header, raw[4:])

    plaintext = run_decoder("network.channel.open", decode, data, (PeerFault,))
    if plaintext is not None:
        expected = {bytes.fromhex(f["frame"]): bytes.fromhex(f["envelope"]) for f in case["frames"]}
        assert expected.get(data) == plaintext
