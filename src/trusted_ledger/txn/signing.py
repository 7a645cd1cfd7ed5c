"""secp256k1 signatures as Sawtooth makes them: compact (r || s), low-S, over SHA-256.

A header signature is the 64-byte compact ECDSA signature over SHA-256 of the serialized
header, written as 128 lowercase hex chars. Client keys are software keys held by clients
(node keys live in the HSM and are not handled here). libsecp256k1 (through coincurve) signs
deterministically (RFC 6979) and always emits low-S; verification rejects high-S, because
(r, n - s) verifies too and would give a third party a second id for the same transaction.
"""

from __future__ import annotations

from functools import lru_cache

import coincurve
from coincurve.ecdsa import cdata_to_der, der_to_cdata, deserialize_compact, serialize_compact

from trusted_ledger.errors import HighSSignature, InvalidField, InvalidInput, InvalidSignature
from trusted_ledger.hashing import sha256
from trusted_ledger.txn.fields import Where

# Order of the secp256k1 group; s must lie in [1, n/2] for a low-S signature.
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = SECP256K1_ORDER // 2
_SCALAR_BYTES = 32
PRIVATE_KEY_HEX_CHARS = 64
# Public keys repeat (one batcher signs many batches); parsing a point costs about as much
# as a tenth of a verification. Bounded so that a flood of fresh keys cannot grow memory.
_PUBLIC_KEY_CACHE_ENTRIES_MAX = 4096


class SigningKey:
    """A client's secp256k1 private key. Its ``repr`` never shows the secret."""

    __slots__ = ("_key", "public_key_hex")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != _SCALAR_BYTES:
            raise InvalidInput(f"a private key is {_SCALAR_BYTES} bytes, got {len(secret)}")
        if not 1 <= int.from_bytes(secret, "big") < SECP256K1_ORDER:
            raise InvalidInput("a private key must lie in [1, n-1] for secp256k1's order n")
        self._key = coincurve.PrivateKey(secret)
        self.public_key_hex: str = self._key.public_key.format(compressed=True).hex()

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's random source."""
        return cls(coincurve.PrivateKey().secret)

    @classmethod
    def from_hex(cls, secret_hex: str) -> SigningKey:
        """The key written as 64 hex chars, as Sawtooth's ``.priv`` files hold it."""
        text = secret_hex.strip()
        if len(text) != PRIVATE_KEY_HEX_CHARS:
            raise InvalidInput(f"a private key is {PRIVATE_KEY_HEX_CHARS} hex chars")
        try:
            secret = bytes.fromhex(text)
        except ValueError as exc:
            raise InvalidInput("a private key must be hex") from exc
        return cls(secret)

    def secret_hex(self) -> str:
        """The secret as hex, for writing a key file. Handle with care."""
        return bytes(self._key.secret).hex()

    def sign_digest(self, digest: bytes) -> str:
        """The compact signature over a 32-byte digest, as 128 lowercase hex chars."""
        der = self._key.sign(digest, hasher=None)
        return bytes(serialize_compact(der_to_cdata(der))).hex()

    def sign_header(self, header_bytes: bytes) -> str:
        """The header signature Sawtooth expects: over SHA-256 of the header bytes."""
        return self.sign_digest(sha256(header_bytes))

    def __repr__(self) -> str:
        return f"SigningKey(public_key_hex={self.public_key_hex!r})"


@lru_cache(maxsize=_PUBLIC_KEY_CACHE_ENTRIES_MAX)
def _parse_public_key(public_key_hex: str) -> coincurve.PublicKey:
    return coincurve.PublicKey(bytes.fromhex(public_key_hex))


def verify_header_signature(
    public_key_hex: str,
    signature_hex: str,
    digest: bytes,
    where: Where,
    field: str = "header_signature",
) -> None:
    """Check that ``signature_hex`` is the low-S signature by ``public_key_hex`` over
    ``digest`` (SHA-256 of the header). Raises; returns nothing on success.

    Both strings must already have passed the format checks in ``fields``.
    """
    try:
        public_key = _parse_public_key(public_key_hex)
    except ValueError as exc:
        raise where.error(
            InvalidField, field, "signer public key is not a point on secp256k1", hint=str(exc)
        ) from exc
    compact = bytes.fromhex(signature_hex)
    r = int.from_bytes(compact[:_SCALAR_BYTES], "big")
    s = int.from_bytes(compact[_SCALAR_BYTES:], "big")
    if not (1 <= r < SECP256K1_ORDER and 1 <= s < SECP256K1_ORDER):
        raise where.error(InvalidSignature, field, "signature scalars r and s must be in [1, n-1]")
    if s > _HALF_ORDER:
        raise where.error(
            HighSSignature,
            field,
            "signature has a high S value (s > n/2); only low-S signatures are accepted",
            hint="sign with libsecp256k1, or replace s by n - s before use",
        )
    der = cdata_to_der(deserialize_compact(compact))
    if not public_key.verify(der, digest, hasher=None):
        raise where.error(
            InvalidSignature, field, "signature does not verify against the signer public key"
        )
