"""Property tests: corruption is always caught with one of the package's errors, and valid
objects round-trip through bytes unchanged."""

from __future__ import annotations

import contextlib
import hashlib

from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.txn.conftest import load_vectors
from trusted_ledger import errors
from trusted_ledger.txn import (
    BatchList,
    SigningKey,
    TransactionBuilder,
    build_batch,
    decode_batch_list,
)
from trusted_ledger.txn.decode import _decode_unchecked_batches
from trusted_ledger.txn.limits import DEFAULT_LIMITS
from trusted_ledger.txn.protos import batch_pb2

VECTOR_BYTES = bytes.fromhex(load_vectors()["batch_list_hex"])
VECTOR_LIST = decode_batch_list(VECTOR_BYTES)
KEY = SigningKey(hashlib.sha256(b"property test key").digest())

# Everything the decoder may raise on bad input; anything else is a bug.
EXPECTED = (errors.MalformedBatch, errors.BatchVerificationFailed)


@given(st.integers(0, len(VECTOR_BYTES) - 1), st.integers(1, 255))
def test_any_corrupted_byte_is_rejected(position: int, flip: int) -> None:
    corrupted = bytearray(VECTOR_BYTES)
    corrupted[position] ^= flip
    try:
        decoded = decode_batch_list(bytes(corrupted))
    except EXPECTED:
        return
    # Only an unsigned field (trace) could change without a signature failing; the vector
    # has trace unset, so every accepted corruption would be a bug.
    raise AssertionError(f"corruption at {position} accepted: {decoded.transaction_ids}")


@given(st.integers(0, len(VECTOR_BYTES) - 1))
def test_any_truncation_is_rejected(length: int) -> None:
    try:
        decode_batch_list(VECTOR_BYTES[:length])
    except EXPECTED:
        return
    raise AssertionError(f"truncation to {length} bytes accepted")


@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_package_errors(data: bytes) -> None:
    with contextlib.suppress(EXPECTED):
        decode_batch_list(data)


@given(st.integers(0, len(VECTOR_BYTES)), st.binary(min_size=1, max_size=8))
def test_inserted_bytes_are_rejected(position: int, extra: bytes) -> None:
    try:
        decode_batch_list(VECTOR_BYTES[:position] + extra + VECTOR_BYTES[position:])
    except EXPECTED:
        return
    raise AssertionError(f"insertion of {extra.hex()} at {position} accepted")


_hex_pairs = st.lists(st.sampled_from("0123456789abcdef"), min_size=2, max_size=70).map(
    lambda chars: "".join(chars[: len(chars) // 2 * 2])
)
_addresses = st.lists(_hex_pairs, min_size=0, max_size=4)


@given(
    payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=3),
    inputs=_addresses,
    outputs=_addresses,
    nonce=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    family=st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
    trace=st.booleans(),
)
def test_valid_batches_round_trip(
    payloads: list[bytes],
    inputs: list[str],
    outputs: list[str],
    nonce: str,
    family: str,
    trace: bool,
) -> None:
    builder = TransactionBuilder(KEY, family, "1.0")
    transactions = [
        builder.build(p, inputs=inputs, outputs=outputs, nonce=f"{nonce[:100]}{i}")
        for i, p in enumerate(payloads)
    ]
    batch_list = BatchList((build_batch(KEY, transactions, trace=trace),))
    data = batch_list.encode()
    assert decode_batch_list(data) == batch_list
    # protobuf itself reads the same fields from our bytes.
    parsed = batch_pb2.BatchList.FromString(data)
    assert [t.payload for t in parsed.batches[0].transactions] == payloads
    assert parsed.batches[0].trace is trace
    assert parsed.SerializeToString(deterministic=True) == data


def test_vector_round_trips() -> None:
    assert VECTOR_LIST.encode() == VECTOR_BYTES


def _protobuf_view(
    data: bytes,
) -> list[tuple[bytes, str, bool, list[tuple[bytes, str, bytes]]]] | None:
    """What protobuf itself reads from ``data``, or None if it refuses the bytes."""
    try:
        parsed = batch_pb2.BatchList.FromString(data)
    except DecodeError:
        return None
    return [
        (
            b.header,
            b.header_signature,
            b.trace,
            [(t.header, t.header_signature, t.payload) for t in b.transactions],
        )
        for b in parsed.batches
    ]


@given(st.lists(st.tuples(st.integers(0, len(VECTOR_BYTES) - 1), st.integers(0, 255)), max_size=3))
def test_scanner_never_reads_differently_from_protobuf(edits: list[tuple[int, int]]) -> None:
    """Where our strict scanner accepts the outer structure, protobuf reads the same values;
    where protobuf refuses the bytes, so do we."""
    data = bytearray(VECTOR_BYTES)
    for position, value in edits:
        data[position] = value
    theirs = _protobuf_view(bytes(data))
    try:
        ours = _decode_unchecked_batches(bytes(data), DEFAULT_LIMITS)
    except EXPECTED:
        return
    assert theirs is not None
    assert theirs == [
        (
            b.header_bytes,
            b.header_signature,
            b.trace,
            [(t.header_bytes, t.header_signature, t.payload) for t in b.transactions],
        )
        for b in ours
    ]
