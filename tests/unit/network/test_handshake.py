"""The handshake state machine, pure: both roles, every refusal, malformed input, replay."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.network.support import CHAIN_ID, KeySigner, Members
from trusted_ledger.custody import KeyAlgorithm
from trusted_ledger.errors import (
    HandshakeRefused,
    InternalError,
    InvalidInput,
    PeerFault,
    PeerProtocolError,
)
from trusted_ledger.hashing import tagged_digest
from trusted_ledger.network import InitiatorHandshake, ResponderHandshake
from trusted_ledger.network.handshake import (
    INITIATOR_DOMAIN,
    RESPONDER_DOMAIN,
    HandshakeReason,
    encode_hello,
    transcript_hash,
)


def _pair(
    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
) -> tuple[KeySigner, KeySigner, Members]:
    initiator, responder = KeySigner.generate(algorithm), KeySigner.generate(algorithm)
    return initiator, responder, Members(initiator.public_key, responder.public_key)


def _through_response(
    initiator: KeySigner, responder: KeySigner, members: Members, **kw: object
) -> tuple[InitiatorHandshake, ResponderHandshake, bytes]:
    i = InitiatorHandshake(CHAIN_ID, initiator, members, **kw)  # type: ignore[arg-type]
    r = ResponderHandshake(CHAIN_ID, responder, members)
    r.read_hello(i.hello())
    return i, r, r.response()


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm), ids=lambda a: a.value)
def test_both_roles_agree_on_keys_and_identify_each_other(algorithm: KeyAlgorithm) -> None:
    initiator, responder, members = _pair(algorithm)
    i, r, msg2 = _through_response(initiator, responder, members)
    assert i.read_response(msg2) == responder.public_key
    result = r.read_finish(i.finish())
    assert result.peer == initiator.public_key and i.result.peer == responder.public_key
    assert i.result.send_key == result.receive_key and i.result.receive_key == result.send_key
    assert i.result.send_key != i.result.receive_key
    assert i.result.transcript_hash == result.transcript_hash
    assert i.result.initiator and not result.initiator
    # One unguarded custody signature each, under the role's own domain.
    assert [(p, pos) for p, pos, _ in initiator.signed] == [("handshake", None)]
    assert [(p, pos) for p, pos, _ in responder.signed] == [("handshake", None)]
    assert result.send_key.hex() not in repr(result)  # keys never reach a log line


def test_every_handshake_has_fresh_keys_and_transcript() -> None:
    initiator, responder, members = _pair()
    results = []
    for _ in range(2):
        i, r, msg2 = _through_response(initiator, responder, members)
        i.read_response(msg2)
        results.append(r.read_finish(i.finish()))
    assert results[0].transcript_hash != results[1].transcript_hash
    assert results[0].send_key != results[1].send_key


def test_signed_digests_are_domain_tagged_transcript_hashes() -> None:
    """The responder's signature covers msg1, msg2's clear part and its own SPKI, under its
    role's tag: recomputed here from the bytes on the wire."""
    initiator, responder, members = _pair()
    i, r, msg2 = _through_response(initiator, responder, members)
    msg1 = r._transcript[0]
    clear = msg2[: 4 + 1 + 64]
    expected = tagged_digest(
        RESPONDER_DOMAIN, transcript_hash([msg1, clear, responder.public_key.spki_der])
    )
    assert responder.signed[0][2] == expected
    i.read_response(msg2)
    i.finish()
    assert initiator.signed[0][2] != expected
    assert initiator.signed[0][2] == tagged_digest(
        INITIATOR_DOMAIN, transcript_hash(i._transcript[:5])
    )


def test_responder_refuses_a_non_member_initiator() -> None:
    initiator, responder, both = _pair()
    members = Members(responder.public_key)
    i = InitiatorHandshake(CHAIN_ID, initiator, both)
    r = ResponderHandshake(CHAIN_ID, responder, members)
    r.read_hello(i.hello())
    i.read_response(r.response())
    with pytest.raises(HandshakeRefused) as refused:
        r.read_finish(i.finish())
    assert refused.value.reason == HandshakeReason.NOT_ADMITTED
    assert members.asked == [initiator.public_key.fingerprint]


def test_initiator_refuses_a_non_member_responder_without_revealing_itself() -> None:
    initiator, responder, _ = _pair()
    i, _, msg2 = _through_response(initiator, responder, Members(initiator.public_key))
    with pytest.raises(HandshakeRefused) as refused:
        i.read_response(msg2)
    assert refused.value.reason == HandshakeReason.NOT_ADMITTED
    assert initiator.signed == []  # its identity never left: msg3 was not produced
    with pytest.raises(InternalError):
        i.finish()


def test_initiator_refuses_a_member_other_than_the_one_it_dialled() -> None:
    initiator, responder, members = _pair()
    other = KeySigner.generate()
    i, _, msg2 = _through_response(initiator, responder, members, expected_peer=other.public_key)
    with pytest.raises(HandshakeRefused) as refused:
        i.read_response(msg2)
    assert refused.value.reason == HandshakeReason.UNEXPECTED_PEER


def test_a_node_talking_to_itself_is_refused() -> None:
    signer = KeySigner.generate()
    members = Members(signer.public_key)
    i, _, msg2 = _through_response(signer, signer, members)
    with pytest.raises(HandshakeRefused) as refused:
        i.read_response(msg2)
    assert refused.value.reason == HandshakeReason.SELF


def test_wrong_chain_id_and_version_are_refused_before_signing() -> None:
    initiator, responder, members = _pair()
    r = ResponderHandshake(CHAIN_ID, responder, members)
    with pytest.raises(HandshakeRefused) as refused:
        r.read_hello(InitiatorHandshake("other-chain", initiator, members).hello())
    assert refused.value.reason == HandshakeReason.CHAIN_ID
    hello = bytearray(InitiatorHandshake(CHAIN_ID, initiator, members).hello())
    hello[5:7] = struct.pack(">H", 2)
    r = ResponderHandshake(CHAIN_ID, responder, members)
    with pytest.raises(HandshakeRefused) as refused:
        r.read_hello(bytes(hello))
    assert refused.value.reason == HandshakeReason.VERSION
    assert responder.signed == []


@pytest.mark.parametrize("offset", [5, 40, 70, 71, 100, -1])
def test_any_flipped_byte_in_the_response_fails_the_initiator(offset: int) -> None:
    initiator, responder, members = _pair()
    i, _, msg2 = _through_response(initiator, responder, members)
    tampered = bytearray(msg2)
    tampered[offset] ^= 0x01
    with pytest.raises(PeerFault) as failed:
        i.read_response(bytes(tampered))
    # eR, nR (aad) or the ciphertext: never decrypts; the length field: malformed.
    assert failed.value.reason in (HandshakeReason.DECRYPT, HandshakeReason.MALFORMED)


def test_a_flipped_byte_in_the_finish_fails_the_responder() -> None:
    initiator, responder, members = _pair()
    i, r, msg2 = _through_response(initiator, responder, members)
    i.read_response(msg2)
    tampered = bytearray(i.finish())
    tampered[-3] ^= 0x80
    with pytest.raises(HandshakeRefused) as refused:
        r.read_finish(bytes(tampered))
    assert refused.value.reason == HandshakeReason.DECRYPT


def test_a_response_replayed_into_another_handshake_does_not_decrypt() -> None:
    """A recorded msg2 is bound to the hello it answered (eI, nI): useless later."""
    initiator, responder, members = _pair()
    _, _, recorded = _through_response(initiator, responder, members)
    fresh = InitiatorHandshake(CHAIN_ID, initiator, members)
    fresh.hello()
    with pytest.raises(HandshakeRefused) as refused:
        fresh.read_response(recorded)
    assert refused.value.reason == HandshakeReason.DECRYPT


def test_a_low_order_ephemeral_key_is_refused() -> None:
    _, responder, members = _pair()
    r = ResponderHandshake(CHAIN_ID, responder, members)
    r.read_hello(encode_hello(CHAIN_ID.encode(), bytes(32), bytes(32)))
    with pytest.raises(HandshakeRefused) as refused:
        r.response()
    assert refused.value.reason == HandshakeReason.BAD_EPHEMERAL
    assert responder.signed == []  # refused before the HSM is asked


def test_steps_out_of_order_are_a_bug() -> None:
    initiator, responder, members = _pair()
    with pytest.raises(InternalError):
        ResponderHandshake(CHAIN_ID, responder, members).response()
    i = InitiatorHandshake(CHAIN_ID, initiator, members)
    with pytest.raises(InternalError):
        i.finish()
    with pytest.raises(InternalError):
        _ = i.result
    with pytest.raises(InvalidInput):
        InitiatorHandshake("Bad Chain!", initiator, members)
    with pytest.raises(InvalidInput):
        InitiatorHandshake(CHAIN_ID, initiator, members, nonce=b"short")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m[:-1],  # truncated nonce
        lambda m: m + b"\x00",  # trailing byte
        lambda m: b"TLP3" + m[4:],  # wrong magic
        lambda m: m[:4] + b"\x02" + m[5:],  # wrong message type
        lambda m: m[:7] + b"\xff" + m[8:],  # chain id length beyond the message
        lambda m: b"",
    ],
)
def test_malformed_hellos_are_protocol_errors(mutate: object) -> None:
    initiator, responder, members = _pair()
    hello = InitiatorHandshake(CHAIN_ID, initiator, members).hello()
    with pytest.raises(PeerProtocolError) as malformed:
        ResponderHandshake(CHAIN_ID, responder, members).read_hello(mutate(hello))  # type: ignore[operator]
    assert malformed.value.reason == HandshakeReason.MALFORMED


_SIGNER = KeySigner.generate()
_MEMBERS = Members(_SIGNER.public_key)


@given(st.binary(max_size=300))
def test_random_bytes_never_get_past_the_checks(data: bytes) -> None:
    """Garbage raises the transport's own errors (so peer.py closes), never anything else."""
    with pytest.raises((PeerProtocolError, HandshakeRefused)):
        ResponderHandshake(CHAIN_ID, _SIGNER, _MEMBERS).read_hello(data)
    i = InitiatorHandshake(CHAIN_ID, _SIGNER, _MEMBERS)
    i.hello()
    with pytest.raises((PeerProtocolError, HandshakeRefused)):
        i.read_response(b"TLP2\x02" + data)


def test_fixed_ephemeral_gives_fixed_public_part() -> None:
    initiator, _, members = _pair()
    key = x25519.X25519PrivateKey.generate()
    a = InitiatorHandshake(CHAIN_ID, initiator, members, ephemeral=key, nonce=bytes(32)).hello()
    b = InitiatorHandshake(CHAIN_ID, initiator, members, ephemeral=key, nonce=bytes(32)).hello()
    assert a == b
