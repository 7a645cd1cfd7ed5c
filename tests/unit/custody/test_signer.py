"""CustodySigner's public key, with a software key standing in for the token (the HSM path
is covered in tests/hsm)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from trusted_ledger.chain import CustodyChainSigner
from trusted_ledger.custody import CustodySigner, SigningGuard
from trusted_ledger.custody.inventory import KeyInfo
from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey
from trusted_ledger.errors import InvalidInput

LABEL = "node-key"


class CountingPool:
    """The two TokenPool calls CustodySigner makes, each counted (each is a PKCS#11 call)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.public = PublicKey.from_spki(
            self.private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.calls: list[str] = []

    def key_info(self, label: str) -> KeyInfo:
        self.calls.append("key_info")
        return KeyInfo(label, "01", KeyAlgorithm.EC_P256, self.public)

    def sign(self, label: str, digest: bytes) -> tuple[KeyAlgorithm, bytes]:
        self.calls.append("sign")
        der = self.private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        r, s = utils.decode_dss_signature(der)
        return KeyAlgorithm.EC_P256, r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _signer(pool: CountingPool, **kwargs: Any) -> CustodySigner:
    return CustodySigner(cast(Any, pool), LABEL, **kwargs)


def test_public_key_is_read_once_at_construction() -> None:
    pool = CountingPool()
    signer = _signer(pool)
    assert pool.calls == ["key_info"]
    digest = hashlib.sha256(b"block 1").digest()
    signer.public_key.verify(digest, signer.sign(digest, purpose="block").raw)
    assert signer.public_key == pool.public
    assert signer.public_key.fingerprint == signer.fingerprint
    assert pool.calls == ["key_info", "sign"]


def test_chain_adapter_forwards_public_key_and_refuses_a_signer_without_guard(
    tmp_path: Path,
) -> None:
    pool = CountingPool()
    with pytest.raises(InvalidInput, match="SigningGuard"):
        CustodyChainSigner(_signer(pool))
    guard = SigningGuard.create(tmp_path / "guard", pool.public.fingerprint)
    chain_signer = CustodyChainSigner(_signer(pool, guard=guard))
    assert chain_signer.public_key == pool.public
