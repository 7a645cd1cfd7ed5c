"""Test doubles for the network: ``ChainSigner``s over software keys of every custody algorithm.

``KeySigner`` signs as custody does (ECDSA over the prehashed digest, low-S; pure Ed25519
over the 32 digest bytes) and records each (purpose, position, digest), so tests can check
that the handshake signs only with purpose "handshake" and no guard position. In operation
the signer is ``CustodySigner`` (tests/hsm/test_network_custody.py).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from trusted_ledger.custody import KeyAlgorithm, Position, PublicKey, Signature
from trusted_ledger.custody.keyspec import normalise_ecdsa

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
CHAIN_ID = "consortium-test.1"


def generate_key(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    curve = ec.SECP256R1() if algorithm is KeyAlgorithm.EC_P256 else ec.SECP256K1()
    return ec.generate_private_key(curve)


def key_from_label(algorithm: KeyAlgorithm, label: str) -> PrivateKey:
    """The generator's fixed keys (tests/vectors/network/generate_network_vectors.py)."""
    seed = hashlib.sha256(label.encode()).digest()
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    assert algorithm is KeyAlgorithm.EC_P256
    return ec.derive_private_key(
        int.from_bytes(seed, "big") % KeyAlgorithm.EC_P256.curve_order, ec.SECP256R1()
    )


class KeySigner:
    """A software key behind the ``ChainSigner`` protocol (no guard: handshakes have none)."""

    def __init__(self, key: PrivateKey, *, deterministic: bool = False) -> None:
        self._key = key
        self._deterministic = deterministic
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = PublicKey.from_spki(der)
        self.signed: list[tuple[str, Position | None, bytes]] = []

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> KeySigner:
        return cls(generate_key(algorithm))

    def sign(self, digest: bytes, *, purpose: str, position: Position | None = None) -> Signature:
        self.signed.append((purpose, position, digest))
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return Signature(KeyAlgorithm.ED25519, self._key.sign(digest))
        der = self._key.sign(
            digest,
            ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=self._deterministic),
        )
        r, s = utils.decode_dss_signature(der)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return normalise_ecdsa(self.public_key.algorithm, raw)


class Members:
    """A mutable membership: the ``admit`` callback of tests."""

    def __init__(self, *keys: PublicKey) -> None:
        self.fingerprints = {key.fingerprint for key in keys}
        self.asked: list[str] = []

    def add(self, key: PublicKey) -> None:
        self.fingerprints.add(key.fingerprint)

    def __call__(self, key: PublicKey) -> bool:
        self.asked.append(key.fingerprint)
        return key.fingerprint in self.fingerprints
