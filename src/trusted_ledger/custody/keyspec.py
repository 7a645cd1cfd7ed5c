"""Signature algorithms custody supports, and the encodings of their keys and signatures.

Nothing here touches a token: these are the pure functions shared by the signer (to turn
what the HSM returns into standard encodings) and by offline verifiers (audit export,
peers). ECDSA signatures are normalised to low-S for every curve, because the same digest
must not have two valid encodings in our formats (SoftHSM returns high-S half the time).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from trusted_ledger.errors import InvalidInput, SignatureInvalid

DIGEST_BYTES = 32


class KeyAlgorithm(enum.Enum):
    """A key type custody can generate and use; the value is the name used in profiles/CLI."""

    EC_P256 = "ec-p256"
    EC_SECP256K1 = "ec-secp256k1"
    ED25519 = "ed25519"

    @property
    def is_ecdsa(self) -> bool:
        return self is not KeyAlgorithm.ED25519

    @property
    def curve_name(self) -> str:
        """The curve's name as python-pkcs11 and OpenSSL know it."""
        return _CURVE_NAMES[self]

    @property
    def curve_order(self) -> int:
        return _CURVE_ORDERS[self]

    @classmethod
    def parse(cls, name: str) -> KeyAlgorithm:
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(a.value for a in cls)
            raise InvalidInput(
                f"unknown key algorithm {name!r}", hint=f"use one of: {known}"
            ) from None


_CURVE_NAMES = {
    KeyAlgorithm.EC_P256: "secp256r1",
    KeyAlgorithm.EC_SECP256K1: "secp256k1",
    KeyAlgorithm.ED25519: "1.3.101.112",  # id-Ed25519 (RFC 8410)
}
_CURVE_ORDERS = {
    KeyAlgorithm.EC_P256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    KeyAlgorithm.EC_SECP256K1: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    KeyAlgorithm.ED25519: 2**252 + 27742317777372353535851937790883648493,
}
_SCALAR_BYTES = 32


@dataclass(frozen=True)
class Signature:
    """A signature: ``raw`` is r||s for ECDSA (low-S) and R||S for Ed25519."""

    algorithm: KeyAlgorithm
    raw: bytes

    @property
    def der(self) -> bytes:
        """X9.62 ECDSA-Sig-Value; empty for Ed25519, which has no DER form. Computed on
        demand: most callers ship the raw form, and encoding costs microseconds."""
        if not self.algorithm.is_ecdsa:
            return b""
        return utils.encode_dss_signature(
            int.from_bytes(self.raw[:_SCALAR_BYTES], "big"),
            int.from_bytes(self.raw[_SCALAR_BYTES:], "big"),
        )


def normalise_ecdsa(algorithm: KeyAlgorithm, raw: bytes) -> Signature:
    """Turn an HSM's signature into a ``Signature``, low-S for ECDSA."""
    if len(raw) != 2 * _SCALAR_BYTES:
        raise InvalidInput(f"{algorithm.value} signature must be 64 bytes, got {len(raw)}")
    if not algorithm.is_ecdsa:
        return Signature(algorithm, raw)
    s = int.from_bytes(raw[_SCALAR_BYTES:], "big")
    order = algorithm.curve_order
    # s and n-s both verify; the low one is the canonical choice (BIP 62, Sawtooth, Ethereum).
    if s <= order >> 1:
        return Signature(algorithm, raw)
    return Signature(algorithm, raw[:_SCALAR_BYTES] + (order - s).to_bytes(_SCALAR_BYTES, "big"))


@dataclass(frozen=True)
class PublicKey:
    """A public key with its standard encodings and fingerprint."""

    algorithm: KeyAlgorithm
    spki_der: bytes

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex."""
        return hashlib.sha256(self.spki_der).hexdigest()

    @property
    def pem(self) -> str:
        return (
            self._loaded()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    @property
    def sec1(self) -> bytes:
        """Uncompressed SEC1 point for ECDSA keys; the 32-byte key for Ed25519."""
        key = self._loaded()
        if isinstance(key, ec.EllipticCurvePublicKey):
            return key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def _loaded(self) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
        key = serialization.load_der_public_key(self.spki_der)
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise InvalidInput("public key is neither EC nor Ed25519")
        return key

    @classmethod
    def from_spki(cls, spki_der: bytes) -> PublicKey:
        try:
            key = serialization.load_der_public_key(spki_der)
        except UnsupportedAlgorithm as exc:
            # An SPKI whose algorithm OID or curve OpenSSL does not know: as unusable as
            # malformed bytes, so callers see one error type for "not a key we accept".
            raise InvalidInput(f"unsupported public key algorithm in SPKI: {exc}") from exc
        except ValueError as exc:
            raise InvalidInput(f"not a DER SubjectPublicKeyInfo: {exc}") from exc
        return cls(_algorithm_of(key), spki_der)

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except UnsupportedAlgorithm as exc:
            raise InvalidInput(f"unsupported public key algorithm in PEM: {exc}") from exc
        except ValueError as exc:
            raise InvalidInput(f"not a PEM public key: {exc}") from exc
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(_algorithm_of(key), der)

    @classmethod
    def from_ec_point(cls, algorithm: KeyAlgorithm, point: bytes) -> PublicKey:
        """Build from the bare point a token reports (CKA_EC_POINT without its DER wrapper)."""
        if algorithm is KeyAlgorithm.ED25519:
            key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey = (
                ed25519.Ed25519PublicKey.from_public_bytes(point)
            )
        else:
            curve = ec.SECP256R1() if algorithm is KeyAlgorithm.EC_P256 else ec.SECP256K1()
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(algorithm, der)

    def verify(self, digest: bytes, signature_raw: bytes) -> None:
        """Check a signature over a 32-byte digest; raise ``SignatureInvalid`` if it fails,
        and for an ECDSA signature with a high S (only the low-S encoding is valid).

        ECDSA signs the digest as a prehashed SHA-256 value (CKM_ECDSA); Ed25519 signs the
        32 digest bytes as its message (CKM_EDDSA, pure Ed25519).
        """
        if len(digest) != DIGEST_BYTES:
            raise InvalidInput(f"digest must be {DIGEST_BYTES} bytes, got {len(digest)}")
        key = self._loaded()
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature_raw, digest)
                return
            if len(signature_raw) != 2 * _SCALAR_BYTES:
                raise SignatureInvalid("ECDSA signature must be 64 bytes (r||s)")
            if (
                int.from_bytes(signature_raw[_SCALAR_BYTES:], "big")
                > self.algorithm.curve_order >> 1
            ):
                # Its low-S twin is the one encoding our formats allow (docs/formats.md §6.1).
                raise SignatureInvalid("ECDSA signature has a high S value (s > n/2)")
            der = utils.encode_dss_signature(
                int.from_bytes(signature_raw[:_SCALAR_BYTES], "big"),
                int.from_bytes(signature_raw[_SCALAR_BYTES:], "big"),
            )
            key.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature as exc:
            raise SignatureInvalid(
                f"signature does not verify under key {self.fingerprint[:16]}"
            ) from exc


def _algorithm_of(key: object) -> KeyAlgorithm:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return KeyAlgorithm.EC_P256
        if isinstance(key.curve, ec.SECP256K1):
            return KeyAlgorithm.EC_SECP256K1
    raise InvalidInput("unsupported public key type (want P-256, secp256k1 or Ed25519)")
