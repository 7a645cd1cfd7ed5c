"""Decoding refuses every malformed block with a typed error naming the field at fault."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.chain.support import BatchFactory, SoftwareSigner
from trusted_ledger.chain import BlockHeader, batch_root, decode_block, decode_header, sign_proposal
from trusted_ledger.chain.block import header_bytes_max
from trusted_ledger.errors import (
    BatchRootMismatch,
    BlockSignatureInvalid,
    InvalidInput,
    MalformedBlock,
    VerificationFailed,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "chain" / "chain_vectors.json"
CASE = json.loads(VECTORS.read_text())["cases"][1]
BLOCK = bytes.fromhex(CASE["block"])
HEADER = bytes.fromhex(CASE["header"])
PREFIX = 4 + 2 + 4  # magic, version, header length
CHAIN_ID_AT = 7  # after magic (4), version (2) and the chain id's length byte (1)
NUMBER_AT = CHAIN_ID_AT + len(CASE["fields"]["chain_id"])
KEY_CODE_AT = NUMBER_AT + 8 + 3 * 32


def with_header(header: bytes, block: bytes = BLOCK) -> bytes:
    """The vector block with another header (the signature no longer matches)."""
    rest = block[PREFIX + len(HEADER) :]
    return block[:6] + struct.pack(">I", len(header)) + header + rest


def patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def test_every_truncation_is_refused() -> None:
    for length in range(len(BLOCK)):
        with pytest.raises(MalformedBlock):
            decode_block(BLOCK[:length])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(MalformedBlock, match="trailing"):
        decode_block(BLOCK + b"\x00")
    with pytest.raises(MalformedBlock, match="trailing"):
        decode_header(HEADER + b"\x00")


@pytest.mark.parametrize(
    ("offset", "new", "message"),
    [
        (0, b"TLBX", "magic"),
        (4, b"\x00\x02", "format_version"),
        (CHAIN_ID_AT, b"C", "chain id"),
        (CHAIN_ID_AT - 1, b"\x00", "chain id"),
        (KEY_CODE_AT, b"\x09", "unknown code"),
        (KEY_CODE_AT, b"\x02", "ec-p256 key under code 2"),
        (KEY_CODE_AT + 1, b"\x00\x00", "proposer_key: length"),
        (KEY_CODE_AT + 1, b"\x00\x90", "proposer_key: length"),
        (KEY_CODE_AT + 3, b"\x31", "not a supported public key"),
    ],
)
def test_header_field_faults_are_named(offset: int, new: bytes, message: str) -> None:
    with pytest.raises(MalformedBlock, match=message):
        decode_block(with_header(patch(HEADER, offset, new)))


def test_genesis_rule_is_enforced_both_ways() -> None:
    as_genesis = patch(HEADER, NUMBER_AT, bytes(8))
    with pytest.raises(MalformedBlock, match="genesis"):
        decode_header(as_genesis)
    genesis = bytes.fromhex(json.loads(VECTORS.read_text())["cases"][0]["header"])
    with pytest.raises(MalformedBlock, match="genesis"):
        decode_header(patch(genesis, NUMBER_AT, struct.pack(">Q", 1)))


def test_oversized_header_and_block_are_refused_before_parsing() -> None:
    with pytest.raises(MalformedBlock, match="exceeds"):
        decode_header(b"\x00" * (header_bytes_max + 1))
    too_long = BLOCK[:6] + struct.pack(">I", header_bytes_max + 1) + BLOCK[PREFIX:]
    with pytest.raises(MalformedBlock, match="header: length 513"):
        decode_block(too_long)


def test_a_flipped_signature_bit_is_a_signature_failure() -> None:
    at = PREFIX + len(HEADER) + 5
    with pytest.raises(BlockSignatureInvalid):
        decode_block(patch(BLOCK, at, bytes([BLOCK[at] ^ 1])))


def test_a_header_edit_breaks_the_signature() -> None:
    timestamp_at = len(HEADER) - 16
    edited = patch(HEADER, timestamp_at, struct.pack(">Q", 1))
    with pytest.raises(BlockSignatureInvalid):
        decode_block(with_header(edited))


def test_batch_count_and_root_must_match_the_batches() -> None:
    count_at = PREFIX + len(HEADER) + 64
    with pytest.raises(BatchRootMismatch):
        decode_block(patch(BLOCK, count_at, struct.pack(">I", 1)))
    root_at = NUMBER_AT + 8 + 64
    with pytest.raises(BatchRootMismatch, match="batch_root"):
        decode_block(with_header(patch(HEADER, root_at, b"\x00" * 32)))


def _signed_block(batches: list[bytes] | None = None, factory: BatchFactory | None = None) -> bytes:
    factory = factory or BatchFactory()
    block = sign_proposal(
        SoftwareSigner(), chain_id="c", number=1, previous_block_id=b"\x01" * 32,
        state_root=b"\x02" * 32, batches=[factory.batch("set a 1")], timestamp_ms=5,
    )  # fmt: skip
    return block.encode()


def test_duplicate_batches_are_refused() -> None:
    factory = BatchFactory()
    batch = factory.batch("set a 1")
    signer = SoftwareSigner()
    block = sign_proposal(
        signer, chain_id="c", number=1, previous_block_id=b"\x01" * 32,
        state_root=b"\x02" * 32, batches=[batch, batch], timestamp_ms=5,
    )  # fmt: skip
    with pytest.raises(MalformedBlock, match="batch appears twice"):
        decode_block(block.encode())


def test_a_non_canonical_batch_encoding_is_refused() -> None:
    data = _signed_block()
    batch_at = PREFIX + int.from_bytes(data[6:10], "big") + 64 + 4
    length = int.from_bytes(data[batch_at : batch_at + 4], "big")
    padded = data[batch_at + 4 : batch_at + 4 + length] + b"\x20\x00"  # explicit trace=false
    mutated = data[:batch_at] + struct.pack(">I", len(padded)) + padded
    with pytest.raises(MalformedBlock, match="canonical"):
        decode_block(mutated)


def test_a_batch_that_fails_its_own_checks_is_refused() -> None:
    data = _signed_block()
    corrupted = data[:-3] + bytes([data[-3] ^ 0x01]) + data[-2:]  # inside the last payload
    with pytest.raises(MalformedBlock, match=r"batches\[0\]"):
        decode_block(corrupted)


def test_header_constructor_checks_its_fields() -> None:
    header = decode_header(HEADER)
    fields = {name: getattr(header, name) for name in header.__dataclass_fields__}
    for name, bad in (("number", -1), ("consensus_round", 2**32), ("batch_count", 10**6),
                      ("state_root", b"\x00"), ("timestamp_ms", True)):  # fmt: skip
        with pytest.raises(InvalidInput):
            BlockHeader(**{**fields, name: bad})
    assert batch_root([]) == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@given(st.data())
def test_random_corruption_only_raises_typed_errors(data: st.DataObject) -> None:
    mutated = bytearray(BLOCK)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    try:
        block = decode_block(bytes(mutated))
    except (InvalidInput, VerificationFailed):
        return
    assert block.encode() == bytes(mutated)  # anything accepted is canonical
