"""Keys, builders and unchecked signing helpers for the txn tests.

The helpers here sign whatever they are given, bypassing the builders' checks, so that a test
can make a batch list that is correct in every way but the one under test.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from trusted_ledger.txn import (
    Batch,
    BatchHeader,
    BatchList,
    SigningKey,
    Transaction,
    TransactionBuilder,
    TransactionHeader,
)

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors" / "txn"
ADDRESS = "1cf126" + "ab" * 32


def varint(n: int) -> bytes:
    """A protobuf varint, written independently of the code under test."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def len_field(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(value)) + value


def load_vectors() -> dict[str, Any]:
    return json.loads((VECTORS_DIR / "txn_vectors.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def key() -> SigningKey:
    return SigningKey(hashlib.sha256(b"txn unit test key").digest())


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    return SigningKey(hashlib.sha256(b"txn unit test other key").digest())


def good_header(key: SigningKey, payload: bytes = b"payload", **changes: Any) -> TransactionHeader:
    header = TransactionHeader(
        batcher_public_key=key.public_key_hex,
        dependencies=(),
        family_name="intkey",
        family_version="1.0",
        inputs=(ADDRESS,),
        nonce="n1",
        outputs=(ADDRESS,),
        payload_sha512=hashlib.sha512(payload).hexdigest(),
        signer_public_key=key.public_key_hex,
    )
    return replace(header, **changes)


def sign_transaction(
    key: SigningKey,
    header: TransactionHeader,
    payload: bytes = b"payload",
    header_bytes: bytes | None = None,
) -> Transaction:
    """A transaction signed by ``key`` over ``header_bytes`` (default: the header's encoding)."""
    raw = header.encode() if header_bytes is None else header_bytes
    return Transaction(header, raw, key.sign_header(raw), payload)


def sign_batch(
    key: SigningKey,
    transactions: list[Transaction],
    ids: list[str] | None = None,
    header_bytes: bytes | None = None,
) -> Batch:
    """A batch signed by ``key`` listing ``ids`` (default: the transactions' ids, in order)."""
    header = BatchHeader(
        key.public_key_hex,
        tuple(t.header_signature for t in transactions) if ids is None else tuple(ids),
    )
    raw = header.encode() if header_bytes is None else header_bytes
    return Batch(header, raw, key.sign_header(raw), tuple(transactions))


def one_batch_list(key: SigningKey, count: int = 1) -> BatchList:
    builder = TransactionBuilder(key, "intkey", "1.0")
    transactions = [
        builder.build(b"p%d" % i, inputs=[ADDRESS], outputs=[ADDRESS], nonce=f"n{i}")
        for i in range(count)
    ]
    return BatchList((sign_batch(key, transactions),))
