"""Bad bytes: size bounds before parsing, malformed protobuf, unknown fields, non-canonical
signed headers. Inputs are assembled by hand so that each breaks exactly one rule."""

from __future__ import annotations

import pytest

from tests.unit.txn.conftest import (
    good_header,
    len_field,
    one_batch_list,
    sign_batch,
    sign_transaction,
    varint,
)
from trusted_ledger import errors
from trusted_ledger.txn import BatchList, SigningKey, TxnLimits, decode_batch, decode_batch_list


def test_total_size_is_checked_first() -> None:
    # Not even valid protobuf: the size check must come before any parsing.
    with pytest.raises(errors.SizeLimitExceeded, match="1001 bytes, at most 1000") as caught:
        decode_batch_list(b"\xff" * 1001, TxnLimits(batch_list_bytes_max=1000))
    assert caught.value.field == "batch_list"


def test_batch_count_is_bounded_while_scanning() -> None:
    # Three empty batches, then garbage: the count bound fires before the garbage is reached.
    data = len_field(1, b"") * 3 + b"\xff"
    with pytest.raises(errors.SizeLimitExceeded, match="more than 2 entries"):
        decode_batch_list(data, TxnLimits(batches_per_list_max=2))


def test_transactions_per_batch_bounded_while_scanning(key: SigningKey) -> None:
    batch = one_batch_list(key, 3).batches[0]
    with pytest.raises(errors.SizeLimitExceeded, match="more than 2 entries") as caught:
        decode_batch_list(BatchList((batch,)).encode(), TxnLimits(transactions_per_batch_max=2))
    assert caught.value.batch_index == 0


def test_transactions_per_list_bounded(key: SigningKey) -> None:
    batches = (one_batch_list(key, 2).batches[0], one_batch_list(key, 2).batches[0])
    limits = TxnLimits(transactions_per_list_max=3)
    # (The second batch repeats ids, but the count bound must fire before that is noticed.)
    with pytest.raises(errors.SizeLimitExceeded, match="over 3 in the list") as caught:
        decode_batch_list(BatchList(batches).encode(), limits)
    assert caught.value.batch_index == 1


def test_payload_and_header_bounds(key: SigningKey) -> None:
    payload = b"x" * 100
    transaction = sign_transaction(key, good_header(key, payload), payload)
    data = BatchList((sign_batch(key, [transaction]),)).encode()
    with pytest.raises(errors.SizeLimitExceeded, match="more than 99 bytes") as caught:
        decode_batch_list(data, TxnLimits(payload_bytes_max=99))
    assert caught.value.field == "payload"
    with pytest.raises(errors.SizeLimitExceeded, match="at most 100 allowed") as caught:
        decode_batch_list(data, TxnLimits(transaction_header_bytes_max=100))
    assert caught.value.field == "header"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (b"\x0a", "batch_list", "truncated varint"),
        (b"\x0a\x05ab", "batch_list", "claims 5 bytes, 2 remain"),
        (b"\x12\x00", "batch_list", "unknown field number 2"),
        (b"\x08\x01", "batch_list.batches", "wire type 0, expected 2"),
        (b"\x0b\x0c", "batch_list", "unsupported wire type 3"),
        (b"\x0a\x80\x00", "batch_list", "overlong varint"),
        (b"\x0a" + b"\xff" * 11, "batch_list", "longer than 10 bytes"),
        (b"\x00", "batch_list", "invalid field number 0"),
    ],
)
def test_malformed_batch_list(data: bytes, field: str, message: str) -> None:
    with pytest.raises(errors.MalformedEncoding, match=message) as caught:
        decode_batch_list(data)
    assert caught.value.field == field


def _batch_bytes(key: SigningKey) -> bytes:
    return one_batch_list(key).batches[0].encode()


def test_unknown_field_in_batch(key: SigningKey) -> None:
    data = len_field(1, _batch_bytes(key) + len_field(9, b"extra"))
    with pytest.raises(errors.MalformedEncoding, match="unknown field number 9") as caught:
        decode_batch_list(data)
    assert (caught.value.batch_index, caught.value.field) == (0, "batch")


def test_singular_field_twice_in_batch(key: SigningKey) -> None:
    batch = _batch_bytes(key)
    with pytest.raises(errors.MalformedEncoding, match="appears twice") as caught:
        decode_batch_list(len_field(1, batch + len_field(2, b"ab" * 64)))
    assert caught.value.field == "batch.header_signature"


@pytest.mark.parametrize("value", [2, 2**63])
def test_trace_must_be_a_bool(key: SigningKey, value: int) -> None:
    data = len_field(1, _batch_bytes(key) + b"\x20" + varint(value))
    with pytest.raises(errors.MalformedEncoding, match="0 or 1"):
        decode_batch_list(data)


@pytest.mark.parametrize(("value", "trace"), [(0, False), (1, True)])
def test_trace_is_read(key: SigningKey, value: int, trace: bool) -> None:
    # An explicit false (written by some protobuf libraries) is accepted as false.
    decoded = decode_batch_list(len_field(1, _batch_bytes(key) + b"\x20" + varint(value)))
    assert decoded.batches[0].trace is trace


def test_unknown_field_in_transaction_is_located(key: SigningKey) -> None:
    transactions = list(one_batch_list(key, 2).batches[0].transactions)
    batch = sign_batch(key, transactions)
    encoded = [t.encode() for t in transactions]
    encoded[1] += len_field(4, b"?")
    body = (
        len_field(1, batch.header_bytes)
        + len_field(2, batch.header_signature.encode())
        + b"".join(len_field(3, e) for e in encoded)
    )
    with pytest.raises(errors.MalformedEncoding, match="unknown field number 4") as caught:
        decode_batch_list(len_field(1, body))
    assert (caught.value.batch_index, caught.value.transaction_index) == (0, 1)


def test_signature_not_utf8(key: SigningKey) -> None:
    transaction = one_batch_list(key).batches[0].transactions[0]
    raw = len_field(1, transaction.header_bytes) + len_field(2, b"\xff" * 128)
    batch = sign_batch(key, [transaction])
    body = len_field(1, batch.header_bytes) + len_field(2, batch.header_signature.encode())
    with pytest.raises(errors.MalformedEncoding, match="UTF-8"):
        decode_batch_list(len_field(1, body + len_field(3, raw)))


def test_header_with_unknown_field_is_rejected_even_when_signed(key: SigningKey) -> None:
    header = good_header(key)
    # Field 8 is skipped by the specification; a signer who uses it is still refused.
    raw = header.encode() + len_field(8, b"smuggled")
    transaction = sign_transaction(key, header, header_bytes=raw)
    with pytest.raises(errors.MalformedEncoding, match=r"unknown field numbers \[8\]") as caught:
        decode_batch_list(BatchList((sign_batch(key, [transaction]),)).encode())
    assert (caught.value.transaction_index, caught.value.field) == (0, "header")


def test_header_out_of_field_order_is_rejected(key: SigningKey) -> None:
    header = good_header(key)
    canonical = header.encode()
    # Move the signer key (field 10, last) to the front: same message, other bytes.
    signer = len_field(10, header.signer_public_key.encode())
    assert canonical.endswith(signer)
    reordered = signer + canonical[: -len(signer)]
    transaction = sign_transaction(key, header, header_bytes=reordered)
    with pytest.raises(errors.MalformedEncoding, match="canonical encoding"):
        decode_batch_list(BatchList((sign_batch(key, [transaction]),)).encode())


def test_header_that_is_not_protobuf(key: SigningKey) -> None:
    header = good_header(key)
    transaction = sign_transaction(key, header, header_bytes=b"\xff\xff\xff")
    with pytest.raises(errors.MalformedEncoding, match="does not parse as a TransactionHeader"):
        decode_batch_list(BatchList((sign_batch(key, [transaction]),)).encode())


def test_batch_header_that_is_not_protobuf(key: SigningKey) -> None:
    transaction = sign_transaction(key, good_header(key))
    batch = sign_batch(key, [transaction], header_bytes=b"\x0a\x05ab")
    with pytest.raises(errors.MalformedEncoding, match="does not parse as a BatchHeader"):
        decode_batch(batch.encode())


def test_limits_reject_nonsense() -> None:
    with pytest.raises(errors.InvalidInput, match="payload_bytes_max"):
        TxnLimits(payload_bytes_max=0)


def test_flood_of_empty_transactions_stops_at_the_bound() -> None:
    # 200,000 two-byte empty transactions in one batch: refused after the 1000th, before any
    # of them is parsed or copied.
    flood = len_field(1, b"\x1a\x00" * 200_000)
    with pytest.raises(errors.SizeLimitExceeded, match="more than 1000 entries") as caught:
        decode_batch_list(flood)
    assert (caught.value.batch_index, caught.value.field) == (0, "batch.transactions")
