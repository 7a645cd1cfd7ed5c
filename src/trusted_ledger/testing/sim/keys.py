"""Member identities of a simulated consortium: Ed25519 keys derived from the seed.

A member id is what custody calls a key's fingerprint, SHA-256 of the DER
SubjectPublicKeyInfo, so simulated certificates have exactly the shape of real ones and
``chain.CommitCertificate`` verifies them unchanged. Ed25519 signatures are deterministic,
which keeps a seeded run reproducible down to the signature bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


@dataclass(frozen=True, slots=True)
class MemberKey:
    """A member's identity: its Ed25519 key pair, fingerprint (member id) and public key."""

    index: int
    private: ed25519.Ed25519PrivateKey
    public_raw: bytes
    fingerprint: bytes

    @classmethod
    def from_secret(cls, index: int, secret: bytes) -> MemberKey:
        private = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
        public = private.public_key()
        # The member id is custody's fingerprint: SHA-256 of the SPKI DER.
        spki = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return cls(
            index,
            private,
            public.public_bytes(Encoding.Raw, PublicFormat.Raw),
            hashlib.sha256(spki).digest(),
        )
