"""The peer handshake as a pure state machine: message encodings, transcript, key schedule.

Three messages, shaped like Noise XX (``-> e``, ``<- e, ee, s``, ``-> s``) but with the
static keys authenticated by *signatures* made in custody, because a member's long-term key
is a signing key inside an HSM that never does Diffie-Hellman and never leaves the token:

1. I -> R  ``hello``:    version, chain id, eI (X25519, fresh), nI (32 random bytes)
2. R -> I  ``response``: eR, nR, then AEAD_hs_R(R's SPKI, sigR), sigR over the transcript
3. I -> R  ``finish``:   AEAD_hs_I(I's SPKI, sigI), sigI over the transcript incl. sigR

Each signature covers (through the transcript hash, as TLS 1.3's CertificateVerify does)
both ephemeral keys, both nonces, the chain id, the version and the signer's own SPKI, under
a domain tag per role, so a man in the middle cannot substitute an ephemeral key and a
signature made here can never be mistaken for a block or a vote. The identities travel
encrypted under keys derived from X25519(eI, eR): this is what binds *who signed* to *who
holds the session key* (a member relaying someone else's handshake cannot re-sign it as
itself, as in SIGMA), and it hides both identities from passive observers.

Nothing here touches a socket or a clock; ``peer`` drives it. The signing steps
(``ResponderHandshake.response``, ``InitiatorHandshake.finish``) are separate methods so that
the caller can run them off the event loop: an HSM signature may wait on the token's gate.
docs/network.md specifies every byte.
"""

from __future__ import annotations

import enum
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from trusted_ledger.chain.signing import ChainSigner
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import (
    HandshakeRefused,
    InternalError,
    InvalidInput,
    PeerProtocolError,
    SignatureInvalid,
)
from trusted_ledger.hashing import sha256, tagged_digest

PROTOCOL_VERSION = 1
"""The only version v1 speaks; a hello with another version is refused (no negotiation)."""
HANDSHAKE_MAGIC = b"TLP2"
"""First bytes of every handshake message: garbage and other protocols fail at byte 0."""
MSG_HELLO = 1
MSG_RESPONSE = 2
MSG_FINISH = 3

handshake_bytes_max = 4096
"""Largest handshake message body; checked on the length prefix before reading the body."""
spki_bytes_max = 512
"""Largest SubjectPublicKeyInfo accepted (P-256: 91, secp256k1: 88, Ed25519: 44 bytes)."""
signature_bytes_max = 128
"""Largest signature accepted (every supported algorithm gives 64 bytes, r||s or R||S)."""
chain_id_bytes_max = 64
"""Same bound and alphabet as the chain's ids (chain/wire.py), checked here independently."""

NONCE_BYTES = 32
X25519_BYTES = 32
KEY_BYTES = 32
AEAD_TAG_BYTES = 16

RESPONDER_DOMAIN = "trusted-ledger/p2p-handshake/responder/v1"
"""Tag of the digest the responder signs: never a block id, a vote or an audit checkpoint."""
INITIATOR_DOMAIN = "trusted-ledger/p2p-handshake/initiator/v1"
"""Tag of the digest the initiator signs; differs from the responder's so that a signature
can never be reflected back to its maker in the other role."""
HANDSHAKE_KEYS_INFO = b"trusted-ledger/p2p-handshake/v1"
SESSION_KEYS_INFO = b"trusted-ledger/p2p/v1"
PURPOSE_HANDSHAKE = "handshake"
"""Audit purpose of a handshake signature (custody records every one)."""

_ZERO_NONCE = bytes(12)  # each handshake key encrypts exactly one message
_CHAIN_ID = re.compile(rb"[a-z0-9][a-z0-9._-]*")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

Admit = Callable[[PublicKey], bool]
"""Asked with the peer's verified key: is it a current member? Called on the caller's thread."""


class HandshakeReason(enum.StrEnum):
    """Why a handshake failed: the closed set used as log field and metric label."""

    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    VERSION = "version"
    CHAIN_ID = "chain_id"
    BAD_EPHEMERAL = "bad_ephemeral"
    DECRYPT = "decrypt"
    BAD_KEY = "bad_key"
    BAD_SIGNATURE = "bad_signature"
    NOT_ADMITTED = "not_admitted"
    UNEXPECTED_PEER = "unexpected_peer"
    SELF = "self"


@dataclass(frozen=True)
class HandshakeResult:
    """What a completed handshake agreed: the peer's verified key and the session keys."""

    peer: PublicKey
    initiator: bool
    """True on the side that sent ``hello``."""
    send_key: bytes = field(repr=False)
    receive_key: bytes = field(repr=False)
    transcript_hash: bytes
    """H(whole transcript): unique per connection, a session id both sides share."""


def transcript_hash(items: list[bytes]) -> bytes:
    """SHA-256 over each item as u32 length || bytes: unambiguous whatever the items hold."""
    return sha256(b"".join(_U32.pack(len(item)) + item for item in items))


def derive_keys(shared_secret: bytes, salt: bytes, info: bytes) -> tuple[bytes, bytes]:
    """HKDF-SHA256 -> (initiator->responder key, responder->initiator key), 32 bytes each."""
    okm = HKDF(algorithm=hashes.SHA256(), length=2 * KEY_BYTES, salt=salt, info=info).derive(
        shared_secret
    )
    return okm[:KEY_BYTES], okm[KEY_BYTES:]


def check_chain_id(chain_id: str) -> bytes:
    raw = chain_id.encode("ascii", "replace")
    if not 1 <= len(raw) <= chain_id_bytes_max or not _CHAIN_ID.fullmatch(raw):
        raise InvalidInput(f"chain id {chain_id!r} is not 1..64 characters of [a-z0-9._-]")
    return raw


# --- encodings ---------------------------------------------------------------------------


class _Fields:
    """Reads fields in order from a handshake message; every read is bounds-checked."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._offset = 0
        self._what = what

    def take(self, size: int, name: str) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise _malformed(f"{self._what}: {name} needs {size} bytes, {self.remaining} left")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def u8(self, name: str) -> int:
        return self.take(1, name)[0]

    def u16(self, name: str) -> int:
        value: int = _U16.unpack(self.take(2, name))[0]
        return value

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def header(self, message_type: int) -> None:
        if self.take(4, "magic") != HANDSHAKE_MAGIC:
            raise _malformed(f"{self._what}: not a trusted-ledger handshake (bad magic)")
        found = self.u8("type")
        if found != message_type:
            raise _malformed(f"{self._what}: message type {found}, expected {message_type}")

    def end(self) -> None:
        if self.remaining:
            raise _malformed(f"{self._what}: {self.remaining} trailing bytes")


def _malformed(message: str) -> PeerProtocolError:
    return PeerProtocolError(message, reason=HandshakeReason.MALFORMED)


def _refused(message: str, reason: HandshakeReason) -> HandshakeRefused:
    return HandshakeRefused(message, reason=reason)


def encode_hello(chain_id: bytes, ephemeral: bytes, nonce: bytes) -> bytes:
    return b"".join((
        HANDSHAKE_MAGIC, bytes([MSG_HELLO]), _U16.pack(PROTOCOL_VERSION),
        bytes([len(chain_id)]), chain_id, ephemeral, nonce,
    ))  # fmt: skip


def _encode_identity(spki: bytes, signature: bytes) -> bytes:
    """The encrypted payload of messages 2 and 3: u16 len || SPKI, u8 len || signature."""
    return _U16.pack(len(spki)) + spki + bytes([len(signature)]) + signature


def _decode_identity(payload: bytes, what: str) -> tuple[bytes, bytes]:
    fields = _Fields(payload, what)
    spki_len = fields.u16("spki length")
    if not 1 <= spki_len <= spki_bytes_max:
        raise _malformed(f"{what}: SPKI of {spki_len} bytes (1..{spki_bytes_max})")
    spki = fields.take(spki_len, "spki")
    signature_len = fields.u8("signature length")
    if not 1 <= signature_len <= signature_bytes_max:
        raise _malformed(f"{what}: signature of {signature_len} bytes")
    signature = fields.take(signature_len, "signature")
    fields.end()
    return spki, signature


def _encrypted(fields: _Fields, what: str) -> bytes:
    size = fields.u16("ciphertext length")
    if size < AEAD_TAG_BYTES:
        raise _malformed(f"{what}: ciphertext of {size} bytes is shorter than its tag")
    ciphertext = fields.take(size, "ciphertext")
    fields.end()
    return ciphertext


def _peer_key(spki: bytes) -> PublicKey:
    try:
        return PublicKey.from_spki(spki)
    except InvalidInput as exc:
        raise _refused(f"peer key unusable: {exc}", HandshakeReason.BAD_KEY) from exc


def _verify(key: PublicKey, digest: bytes, signature: bytes, role: str) -> None:
    try:
        key.verify(digest, signature)
    except SignatureInvalid as exc:
        raise _refused(
            f"{role} signature over the transcript does not verify under {key.fingerprint[:16]}",
            HandshakeReason.BAD_SIGNATURE,
        ) from exc


def _admit(key: PublicKey, own: PublicKey, admit: Admit, expected: PublicKey | None) -> None:
    """The order matters only for the reason logged; every branch refuses the same way."""
    if key.spki_der == own.spki_der:
        raise _refused("peer presents this node's own key", HandshakeReason.SELF)
    if expected is not None and key.spki_der != expected.spki_der:
        raise _refused(
            f"peer is {key.fingerprint[:16]}, expected {expected.fingerprint[:16]}",
            HandshakeReason.UNEXPECTED_PEER,
        )
    if not admit(key):
        raise _refused(
            f"peer {key.fingerprint[:16]} is no current member", HandshakeReason.NOT_ADMITTED
        )


def _shared_secret(own: x25519.X25519PrivateKey, peer_public: bytes) -> bytes:
    try:
        return own.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:
        # A low-order point gives the all-zero secret: a key anyone could compute.
        raise _refused(
            "peer ephemeral key is a low-order point", HandshakeReason.BAD_EPHEMERAL
        ) from exc


def _ephemeral_public(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _fresh(nonce: bytes | None) -> bytes:
    if nonce is None:
        return os.urandom(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise InvalidInput(f"a handshake nonce is {NONCE_BYTES} bytes")
    return nonce


# --- the two roles -------------------------------------------------------------------------


class _Step(enum.Enum):
    START = "start"
    HELLO = "hello"
    RESPONSE = "response"
    DONE = "done"
    FAILED = "failed"


class _Role:
    """What both roles share: step order, the transcript, failure is final."""

    def __init__(
        self,
        chain_id: str,
        signer: ChainSigner,
        admit: Admit,
        ephemeral: x25519.X25519PrivateKey | None,
        nonce: bytes | None,
    ) -> None:
        self._chain_id = check_chain_id(chain_id)
        self._signer = signer
        self._admit = admit
        # The ephemeral private key lives only until the shared secret is computed; it is
        # never written anywhere (injectable only so that known-answer tests can fix it).
        self._ephemeral: x25519.X25519PrivateKey | None = (
            ephemeral or x25519.X25519PrivateKey.generate()
        )
        self._ephemeral_public = _ephemeral_public(self._ephemeral)
        self._nonce = _fresh(nonce)
        self._step = _Step.START
        self._transcript: list[bytes] = []
        self._secret = b""
        self._result: HandshakeResult | None = None

    def _expect(self, step: _Step, action: str) -> None:
        if self._step is not step:
            raise InternalError(f"handshake: {action} called in step {self._step.value}")

    def _agree(self, peer_ephemeral: bytes) -> tuple[bytes, bytes]:
        """Compute X25519, forget the ephemeral, return the handshake keys (i->r, r->i)."""
        assert self._ephemeral is not None
        self._secret = _shared_secret(self._ephemeral, peer_ephemeral)
        self._ephemeral = None
        return derive_keys(self._secret, transcript_hash(self._transcript), HANDSHAKE_KEYS_INFO)

    def _sign(self, domain: str) -> bytes:
        digest = tagged_digest(domain, transcript_hash(self._transcript))
        return self._signer.sign(digest, purpose=PURPOSE_HANDSHAKE).raw

    def _complete(self, peer: PublicKey, initiator: bool) -> HandshakeResult:
        th = transcript_hash(self._transcript)
        to_responder, to_initiator = derive_keys(self._secret, th, SESSION_KEYS_INFO)
        self._secret = b""
        self._step = _Step.DONE
        self._result = HandshakeResult(
            peer=peer,
            initiator=initiator,
            send_key=to_responder if initiator else to_initiator,
            receive_key=to_initiator if initiator else to_responder,
            transcript_hash=th,
        )
        return self._result

    @property
    def result(self) -> HandshakeResult:
        if self._result is None:
            raise InternalError("handshake not complete")
        return self._result


class InitiatorHandshake(_Role):
    """The side that dialled: ``hello()``, ``read_response(msg2)``, ``finish()``."""

    def __init__(
        self,
        chain_id: str,
        signer: ChainSigner,
        admit: Admit,
        *,
        expected_peer: PublicKey | None = None,
        ephemeral: x25519.X25519PrivateKey | None = None,
        nonce: bytes | None = None,
    ) -> None:
        super().__init__(chain_id, signer, admit, ephemeral, nonce)
        self._expected = expected_peer
        self._peer: PublicKey | None = None
        self._key_to_responder = b""

    def hello(self) -> bytes:
        self._expect(_Step.START, "hello")
        message = encode_hello(self._chain_id, self._ephemeral_public, self._nonce)
        self._transcript.append(message)
        self._step = _Step.HELLO
        return message

    def read_response(self, message: bytes) -> PublicKey:
        """Check message 2: decrypt, verify R's signature, admit R. Returns R's key."""
        self._expect(_Step.HELLO, "read_response")
        self._step = _Step.FAILED
        fields = _Fields(message, "response")
        fields.header(MSG_RESPONSE)
        responder_ephemeral = fields.take(X25519_BYTES, "ephemeral")
        fields.take(NONCE_BYTES, "nonce")
        ciphertext = _encrypted(fields, "response")
        self._transcript.append(message[: 5 + X25519_BYTES + NONCE_BYTES])
        aad = transcript_hash(self._transcript)
        self._key_to_responder, key_to_initiator = self._agree(responder_ephemeral)
        try:
            payload = ChaCha20Poly1305(key_to_initiator).decrypt(_ZERO_NONCE, ciphertext, aad)
        except InvalidTag as exc:
            raise _refused("response does not decrypt", HandshakeReason.DECRYPT) from exc
        spki, signature = _decode_identity(payload, "response identity")
        peer = _peer_key(spki)
        self._transcript.append(spki)
        _verify(
            peer,
            tagged_digest(RESPONDER_DOMAIN, transcript_hash(self._transcript)),
            signature,
            "responder",
        )
        self._transcript.append(signature)
        _admit(peer, self._signer.public_key, self._admit, self._expected)
        self._peer = peer
        self._step = _Step.RESPONSE
        return peer

    def finish(self) -> bytes:
        """Sign (custody; may block on the HSM) and return message 3; the handshake is done."""
        self._expect(_Step.RESPONSE, "finish")
        assert self._peer is not None
        self._step = _Step.FAILED
        aad = transcript_hash(self._transcript)
        spki = self._signer.public_key.spki_der
        self._transcript.append(spki)
        signature = self._sign(INITIATOR_DOMAIN)
        self._transcript.append(signature)
        ciphertext = ChaCha20Poly1305(self._key_to_responder).encrypt(
            _ZERO_NONCE, _encode_identity(spki, signature), aad
        )
        self._key_to_responder = b""
        self._complete(self._peer, initiator=True)
        return HANDSHAKE_MAGIC + bytes([MSG_FINISH]) + _U16.pack(len(ciphertext)) + ciphertext


class ResponderHandshake(_Role):
    """The side that accepted: ``read_hello(msg1)``, ``response()``, ``read_finish(msg3)``."""

    def __init__(
        self,
        chain_id: str,
        signer: ChainSigner,
        admit: Admit,
        *,
        ephemeral: x25519.X25519PrivateKey | None = None,
        nonce: bytes | None = None,
    ) -> None:
        super().__init__(chain_id, signer, admit, ephemeral, nonce)
        self._initiator_ephemeral = b""
        self._key_to_responder = b""

    def read_hello(self, message: bytes) -> None:
        """Check message 1: magic, version, chain id, field sizes. Nothing is signed yet."""
        self._expect(_Step.START, "read_hello")
        self._step = _Step.FAILED
        fields = _Fields(message, "hello")
        fields.header(MSG_HELLO)
        version = fields.u16("version")
        chain_id = fields.take(fields.u8("chain id length"), "chain id")
        ephemeral = fields.take(X25519_BYTES, "ephemeral")
        fields.take(NONCE_BYTES, "nonce")
        fields.end()
        if version != PROTOCOL_VERSION:
            raise _refused(
                f"version {version}, this node speaks {PROTOCOL_VERSION}", HandshakeReason.VERSION
            )
        if chain_id != self._chain_id:
            raise _refused(
                f"chain id {chain_id[:64]!r}, this node serves {self._chain_id.decode()!r}",
                HandshakeReason.CHAIN_ID,
            )
        self._transcript.append(message)
        self._initiator_ephemeral = ephemeral
        self._step = _Step.HELLO

    def response(self) -> bytes:
        """Sign (custody; may block on the HSM) and return message 2."""
        self._expect(_Step.HELLO, "response")
        self._step = _Step.FAILED
        clear = HANDSHAKE_MAGIC + bytes([MSG_RESPONSE]) + self._ephemeral_public + self._nonce
        self._transcript.append(clear)
        aad = transcript_hash(self._transcript)
        self._key_to_responder, key_to_initiator = self._agree(self._initiator_ephemeral)
        spki = self._signer.public_key.spki_der
        self._transcript.append(spki)
        signature = self._sign(RESPONDER_DOMAIN)
        self._transcript.append(signature)
        ciphertext = ChaCha20Poly1305(key_to_initiator).encrypt(
            _ZERO_NONCE, _encode_identity(spki, signature), aad
        )
        self._step = _Step.RESPONSE
        return clear + _U16.pack(len(ciphertext)) + ciphertext

    def read_finish(self, message: bytes) -> HandshakeResult:
        """Check message 3: decrypt, verify I's signature, admit I. Returns the session."""
        self._expect(_Step.RESPONSE, "read_finish")
        self._step = _Step.FAILED
        fields = _Fields(message, "finish")
        fields.header(MSG_FINISH)
        ciphertext = _encrypted(fields, "finish")
        aad = transcript_hash(self._transcript)
        try:
            payload = ChaCha20Poly1305(self._key_to_responder).decrypt(_ZERO_NONCE, ciphertext, aad)
        except InvalidTag as exc:
            raise _refused("finish does not decrypt", HandshakeReason.DECRYPT) from exc
        self._key_to_responder = b""
        spki, signature = _decode_identity(payload, "finish identity")
        peer = _peer_key(spki)
        self._transcript.append(spki)
        _verify(
            peer,
            tagged_digest(INITIATOR_DOMAIN, transcript_hash(self._transcript)),
            signature,
            "initiator",
        )
        self._transcript.append(signature)
        _admit(peer, self._signer.public_key, self._admit, None)
        return self._complete(peer, initiator=False)
