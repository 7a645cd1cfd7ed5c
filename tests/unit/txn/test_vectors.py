"""Known-answer tests: the committed vectors decode, regenerate identically, and verify with
an independent implementation (``cryptography``'s OpenSSL secp256k1, a hand-written protobuf
encoder, hashlib)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.unit.txn.conftest import VECTORS_DIR, len_field, load_vectors
from trusted_ledger.txn import SigningKey, decode_batch, decode_batch_list

VECTORS = load_vectors()


def _hand_encoded_header(public_key: str, case: dict[str, Any]) -> bytes:
    """TransactionHeader as any protobuf library writes it: fields in number order, empty
    strings omitted, repeated strings one entry each."""
    parts = [len_field(1, public_key.encode())]
    parts += [len_field(2, d.encode()) for d in case["dependencies"]]
    parts += [len_field(3, case["family_name"].encode())]
    parts += [len_field(4, case["family_version"].encode())]
    parts += [len_field(5, a.encode()) for a in case["inputs"]]
    parts += [len_field(6, case["nonce"].encode())]
    parts += [len_field(7, a.encode()) for a in case["outputs"]]
    parts += [len_field(9, case["payload_sha512"].encode())]
    parts += [len_field(10, public_key.encode())]
    return b"".join(parts)


def _openssl_verify(public_key_hex: str, signature_hex: str, message: bytes) -> None:
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256K1(), bytes.fromhex(public_key_hex)
    )
    compact = bytes.fromhex(signature_hex)
    der = encode_dss_signature(int.from_bytes(compact[:32]), int.from_bytes(compact[32:]))
    public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))


def test_regenerating_gives_the_committed_file() -> None:
    done = subprocess.run(
        [sys.executable, str(VECTORS_DIR / "generate_txn.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_key_pair_matches() -> None:
    key = SigningKey.from_hex(VECTORS["private_key_hex"])
    assert key.public_key_hex == VECTORS["public_key_hex"]
    # Independent derivation of the public key from the secret.
    private = ec.derive_private_key(int(VECTORS["private_key_hex"], 16), ec.SECP256K1())
    point = private.public_key().public_numbers()
    assert VECTORS["public_key_hex"] == f"{2 + point.y % 2:02x}{point.x:064x}"


@pytest.mark.parametrize("index", [0, 1])
def test_transaction_header_bytes_match_a_hand_encoding(index: int) -> None:
    case = VECTORS["transactions"][index]
    assert bytes.fromhex(case["header_hex"]) == _hand_encoded_header(
        VECTORS["public_key_hex"], case
    )


@pytest.mark.parametrize("index", [0, 1])
def test_transaction_signature_verifies_with_openssl(index: int) -> None:
    case = VECTORS["transactions"][index]
    header = bytes.fromhex(case["header_hex"])
    _openssl_verify(VECTORS["public_key_hex"], case["header_signature"], header)
    assert hashlib.sha512(bytes.fromhex(case["payload_hex"])).hexdigest() == case["payload_sha512"]
    with pytest.raises(CryptoInvalidSignature):
        _openssl_verify(VECTORS["public_key_hex"], case["header_signature"], header + b"\x00")


def test_batch_signature_verifies_with_openssl() -> None:
    batch = VECTORS["batch"]
    header = bytes.fromhex(batch["header_hex"])
    _openssl_verify(VECTORS["public_key_hex"], batch["header_signature"], header)
    ids = [t["header_signature"] for t in VECTORS["transactions"]]
    expected = len_field(1, VECTORS["public_key_hex"].encode()) + b"".join(
        len_field(2, i.encode()) for i in ids
    )
    assert header == expected


def test_signatures_are_low_s() -> None:
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    signatures = [t["header_signature"] for t in VECTORS["transactions"]]
    for signature in [*signatures, VECTORS["batch"]["header_signature"]]:
        assert int(signature[64:], 16) <= order // 2


def test_batch_list_decodes_to_the_vector_fields() -> None:
    batch_list = decode_batch_list(bytes.fromhex(VECTORS["batch_list_hex"]))
    (batch,) = batch_list.batches
    assert batch.id == VECTORS["batch"]["header_signature"]
    assert [t.id for t in batch.transactions] == [
        t["header_signature"] for t in VECTORS["transactions"]
    ]
    second = batch.transactions[1]
    assert second.header.dependencies == (VECTORS["transactions"][0]["header_signature"],)
    assert second.payload == bytes.fromhex(VECTORS["transactions"][1]["payload_hex"])
    assert batch_list.encode().hex() == VECTORS["batch_list_hex"]


def test_batch_decodes_alone() -> None:
    batch = decode_batch(bytes.fromhex(VECTORS["batch"]["encoded_hex"]))
    assert batch.encode().hex() == VECTORS["batch"]["encoded_hex"]
    assert batch.header.transaction_ids == tuple(
        t["header_signature"] for t in VECTORS["transactions"]
    )
