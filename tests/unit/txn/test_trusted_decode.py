"""``decode_batch(verify_signatures=False)``: for bytes this node verified before storing.
It skips the secp256k1 checks and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from trusted_ledger.errors import InvalidSignature, PayloadHashMismatch
from trusted_ledger.txn import SigningKey, TransactionBuilder, build_batch, decode_batch


def _batch_bytes(tamper: str) -> bytes:
    key = SigningKey.generate()
    builder = TransactionBuilder(key, "intkey", "1.0")
    transaction = builder.build(b"\xa0", inputs=["1cf126"], outputs=["1cf126"])
    batch = build_batch(key, [transaction])
    if tamper == "batch signature":
        flipped = ("0" if batch.header_signature[0] != "0" else "1") + batch.header_signature[1:]
        batch = dataclasses.replace(batch, header_signature=flipped)
    if tamper == "payload":
        changed = dataclasses.replace(transaction, payload=b"\xa1\x01\x02")
        batch = dataclasses.replace(batch, transactions=(changed,))
    return batch.encode()


def test_trusted_decode_equals_checked_decode() -> None:
    data = _batch_bytes("nothing")
    assert decode_batch(data, verify_signatures=False) == decode_batch(data)


def test_trusted_decode_skips_only_signatures() -> None:
    data = _batch_bytes("batch signature")
    with pytest.raises(InvalidSignature):
        decode_batch(data)
    assert decode_batch(data, verify_signatures=False).encode() == data


def test_trusted_decode_still_checks_payload_hashes() -> None:
    with pytest.raises(PayloadHashMismatch):
        decode_batch(_batch_bytes("payload"), verify_signatures=False)
