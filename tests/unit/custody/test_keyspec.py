"""Signature and public key encodings, checked against `cryptography` software keys."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey, normalise_ecdsa
from trusted_ledger.errors import InvalidInput, SignatureInvalid

DIGEST = hashlib.sha256(b"block 7").digest()


def _raw(der: bytes) -> bytes:
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize(
    ("algorithm", "curve"),
    [(KeyAlgorithm.EC_P256, ec.SECP256R1()), (KeyAlgorithm.EC_SECP256K1, ec.SECP256K1())],
)
def test_high_s_is_normalised_and_still_verifies(algorithm, curve) -> None:
    private = ec.generate_private_key(curve)
    der = private.sign(DIGEST, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    r, s = utils.decode_dss_signature(der)
    order = algorithm.curve_order
    high = r.to_bytes(32, "big") + (max(s, order - s)).to_bytes(32, "big")
    signature = normalise_ecdsa(algorithm, high)
    low_s = int.from_bytes(signature.raw[32:], "big")
    assert low_s == min(s, order - s) and low_s <= order // 2
    assert utils.decode_dss_signature(signature.der) == (r, low_s)
    public = PublicKey.from_spki(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert public.algorithm is algorithm
    public.verify(DIGEST, signature.raw)
    with pytest.raises(SignatureInvalid):
        public.verify(hashlib.sha256(b"other").digest(), signature.raw)
    # The high-S twin is the same signature mathematically, and refused: one encoding only.
    twin = high  # max(s, n - s): never the normalised one
    assert twin != signature.raw
    with pytest.raises(SignatureInvalid, match="high S"):
        public.verify(DIGEST, twin)


def test_encodings_and_fingerprint() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = PublicKey.from_spki(spki)
    assert public.fingerprint == hashlib.sha256(spki).hexdigest()
    assert PublicKey.from_pem(public.pem.encode()).spki_der == spki
    assert public.sec1[0] == 4 and len(public.sec1) == 65
    assert PublicKey.from_ec_point(KeyAlgorithm.EC_P256, public.sec1).spki_der == spki


def test_ed25519_verify_raises_on_flipped_bit() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public = PublicKey.from_ec_point(KeyAlgorithm.ED25519, raw)
    signature = normalise_ecdsa(KeyAlgorithm.ED25519, private.sign(DIGEST))
    public.verify(DIGEST, signature.raw)
    bad = bytearray(signature.raw)
    bad[5] ^= 1
    with pytest.raises(SignatureInvalid):
        public.verify(DIGEST, bytes(bad))


def test_wrong_lengths_are_rejected() -> None:
    with pytest.raises(InvalidInput):
        normalise_ecdsa(KeyAlgorithm.EC_P256, b"\x01" * 63)
    with pytest.raises(InvalidInput):
        KeyAlgorithm.parse("rsa-2048")


def _p256_spki() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


ID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
UNKNOWN_KEY_OID = bytes.fromhex("2a8648ce3d0209")  # 1.2.840.10045.2.9, same length
SECP256R1_OID = bytes.fromhex("2a8648ce3d030107")  # 1.2.840.10045.3.1.7
SECP192R1_OID = bytes.fromhex("2a8648ce3d030101")  # 1.2.840.10045.3.1.1, point no longer fits


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (ID_EC_PUBLIC_KEY, UNKNOWN_KEY_OID, "unsupported public key algorithm"),
        (SECP256R1_OID, SECP192R1_OID, "not a DER SubjectPublicKeyInfo"),
    ],
)
def test_from_spki_raises_invalid_input_for_unknown_or_malformed_keys(
    old: bytes, new: bytes, message: str
) -> None:
    spki = _p256_spki()
    assert old in spki
    with pytest.raises(InvalidInput, match=message):
        PublicKey.from_spki(spki.replace(old, new))


def test_from_pem_raises_invalid_input_for_unknown_key_algorithm() -> None:
    spki = _p256_spki().replace(ID_EC_PUBLIC_KEY, UNKNOWN_KEY_OID)
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(spki) + b"-----END PUBLIC KEY-----\n"
    with pytest.raises(InvalidInput, match="unsupported public key algorithm"):
        PublicKey.from_pem(pem)
