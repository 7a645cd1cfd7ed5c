"""Writes tests/vectors/network/network_vectors.json: known-answer peer handshakes and frames.

Every byte is laid out here with ``struct``, ``hashlib`` and ``cryptography`` primitives
straight from docs/network.md, never by ``trusted_ledger.network``, so the vectors check the
implementation independently (tests/unit/network/test_vectors.py). Identity keys, ephemeral
keys and nonces are fixed and derived from labels; Ed25519 signs deterministically and the
P-256 case uses RFC 6979 deterministic ECDSA (low-S), so regeneration reproduces the file
(``--check``). In operation the identity signatures come from custody and every ephemeral
key and nonce is fresh.
Run from the repository root: python tests/vectors/network/generate_network_vectors.py [--check]
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "network_vectors.json"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CHAIN_ID = b"consortium-test.1"
MAGIC = b"TLP2"
RESPONDER_DOMAIN = b"trusted-ledger/p2p-handshake/responder/v1"
INITIATOR_DOMAIN = b"trusted-ledger/p2p-handshake/initiator/v1"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def identity_key(algorithm: str, label: str) -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed(label))
    scalar = int.from_bytes(seed(label), "big") % P256_ORDER
    return ec.derive_private_key(scalar, ec.SECP256R1())


def spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(key: PrivateKey, digest: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(digest)  # pure Ed25519 over the 32 digest bytes
    der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    s = min(s, P256_ORDER - s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def tagged(domain: bytes, data: bytes) -> bytes:
    return hashlib.sha256(bytes([len(domain)]) + domain + data).digest()


def th(items: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(struct.pack(">I", len(i)) + i for i in items)).digest()


def hkdf(secret: bytes, salt: bytes, info: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=info).derive(secret)
    return okm[:32], okm[32:]


def raw_public(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def identity(key_spki: bytes, signature: bytes) -> bytes:
    return struct.pack(">H", len(key_spki)) + key_spki + bytes([len(signature)]) + signature


def frame(key: bytes, counter: int, envelope: bytes) -> bytes:
    header = struct.pack(">I", len(envelope) + 16)
    nonce = bytes(4) + struct.pack(">Q", counter)
    return header + ChaCha20Poly1305(key).encrypt(nonce, envelope, header)


def case(algorithm: str) -> dict[str, object]:
    initiator = identity_key(algorithm, f"trusted-ledger network vector initiator {algorithm}")
    responder = identity_key(algorithm, f"trusted-ledger network vector responder {algorithm}")
    e_i = x25519.X25519PrivateKey.from_private_bytes(seed(f"vector eI {algorithm}"))
    e_r = x25519.X25519PrivateKey.from_private_bytes(seed(f"vector eR {algorithm}"))
    n_i, n_r = seed(f"vector nI {algorithm}"), seed(f"vector nR {algorithm}")
    zero_nonce = bytes(12)

    msg1 = MAGIC + bytes([1]) + struct.pack(">H", 1) + bytes([len(CHAIN_ID)]) + CHAIN_ID
    msg1 += raw_public(e_i) + n_i
    msg2_clear = MAGIC + bytes([2]) + raw_public(e_r) + n_r
    transcript = [msg1, msg2_clear]
    h2 = th(transcript)
    shared = e_r.exchange(x25519.X25519PublicKey.from_public_bytes(raw_public(e_i)))
    hs_i2r, hs_r2i = hkdf(shared, h2, b"trusted-ledger/p2p-handshake/v1")
    transcript.append(spki(responder))
    responder_digest = tagged(RESPONDER_DOMAIN, th(transcript))
    sig_r = sign(responder, responder_digest)
    transcript.append(sig_r)
    ct2 = ChaCha20Poly1305(hs_r2i).encrypt(zero_nonce, identity(spki(responder), sig_r), h2)
    msg2 = msg2_clear + struct.pack(">H", len(ct2)) + ct2

    h3 = th(transcript)
    transcript.append(spki(initiator))
    initiator_digest = tagged(INITIATOR_DOMAIN, th(transcript))
    sig_i = sign(initiator, initiator_digest)
    transcript.append(sig_i)
    ct3 = ChaCha20Poly1305(hs_i2r).encrypt(zero_nonce, identity(spki(initiator), sig_i), h3)
    msg3 = MAGIC + bytes([3]) + struct.pack(">H", len(ct3)) + ct3

    final = th(transcript)
    k_i2r, k_r2i = hkdf(shared, final, b"trusted-ledger/p2p/v1")
    ping = bytes([5]) + b"vector ping"
    consensus = bytes([1]) + b"vector consensus payload"
    return {
        "name": f"handshake_{algorithm}",
        "key_algorithm": algorithm,
        "chain_id": CHAIN_ID.decode(),
        "initiator_spki_der": spki(initiator).hex(),
        "responder_spki_der": spki(responder).hex(),
        "initiator_ephemeral_private": seed(f"vector eI {algorithm}").hex(),
        "responder_ephemeral_private": seed(f"vector eR {algorithm}").hex(),
        "initiator_nonce": n_i.hex(),
        "responder_nonce": n_r.hex(),
        "msg1": msg1.hex(),
        "msg2": msg2.hex(),
        "msg3": msg3.hex(),
        "responder_signed_digest": responder_digest.hex(),
        "initiator_signed_digest": initiator_digest.hex(),
        "shared_secret": shared.hex(),
        "handshake_key_i2r": hs_i2r.hex(),
        "handshake_key_r2i": hs_r2i.hex(),
        "transcript_hash": final.hex(),
        "session_key_i2r": k_i2r.hex(),
        "session_key_r2i": k_r2i.hex(),
        "frames": [
            {"direction": "i2r", "counter": 0, "envelope": ping.hex(),
             "frame": frame(k_i2r, 0, ping).hex()},
            {"direction": "i2r", "counter": 1, "envelope": consensus.hex(),
             "frame": frame(k_i2r, 1, consensus).hex()},
            {"direction": "r2i", "counter": 0, "envelope": (bytes([6]) + ping[1:]).hex(),
             "frame": frame(k_r2i, 0, bytes([6]) + ping[1:]).hex()},
        ],
    }  # fmt: skip


def build() -> dict[str, object]:
    return {
        "comment": "generated by tests/vectors/network/generate_network_vectors.py",
        "format": "docs/network.md",
        "cases": [case("ed25519"), case("ec-p256")],
    }


def main() -> int:
    text = json.dumps(build(), indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv[1:]:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} differs from what the generator produces", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
