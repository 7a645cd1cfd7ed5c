"""The block format: header bytes, block id, proposer signature, and the batches carried.

Byte layouts are specified in docs/formats.md §6; this module is their one implementation.
A header has exactly one encoding (fixed field order, big-endian integers, canonical DER
for the proposer key, no trailing bytes), so the block id - SHA-256 of the header bytes - is
a function of the header's values. ``decode_block`` returns only blocks that are whole and
self-consistent: every batch decodes and verifies, the batch Merkle root and count match,
and the proposer's signature verifies over the id. What needs the chain (linkage, replay,
membership, re-execution) is the validator's work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives import serialization

from trusted_ledger.chain.wire import Reader, encode_chain_id, u8, u16, u32, u64
from trusted_ledger.custody import KeyAlgorithm, PublicKey
from trusted_ledger.errors import (
    BatchListFault,
    BatchRootMismatch,
    BlockSignatureInvalid,
    InvalidInput,
    MalformedBlock,
    SignatureInvalid,
)
from trusted_ledger.hashing import DIGEST_SIZE, merkle_root, sha256
from trusted_ledger.txn import DEFAULT_LIMITS, Batch, TxnLimits, check_signatures, decode_batch

HEADER_MAGIC = b"TLBH"
BLOCK_MAGIC = b"TLBK"
FORMAT_VERSION = 1
BLOCK_ID_BYTES = DIGEST_SIZE
GENESIS_PREVIOUS_ID = bytes(BLOCK_ID_BYTES)
SIGNATURE_BYTES = 64
"""Every supported key signs 64 bytes: r||s (ECDSA, low-S) or R||S (Ed25519)."""

proposer_key_bytes_max = 128
"""Longest proposer SubjectPublicKeyInfo (P-256 and secp256k1: 91 bytes, Ed25519: 44)."""
header_bytes_max = 512
"""Longest header: fixed fields (130 bytes) + chain id (64) + proposer key (128), rounded up."""
block_batches_max = 10_000
"""Most batches in one block, whatever a publisher is configured to cut."""
block_bytes_max = 32 * 1024 * 1024
"""Largest encoded block: half of storage's value bound, so a block always fits one value."""
batch_bytes_max = 10 * 1024 * 1024
"""Largest encoded batch inside a block: the txn layer's bound on one submitted list."""

# Key algorithm codes in the header: fixed forever, independent of the enum's text values.
KEY_ALGORITHM_CODES = {
    KeyAlgorithm.EC_P256: 1,
    KeyAlgorithm.EC_SECP256K1: 2,
    KeyAlgorithm.ED25519: 3,
}
_ALGORITHMS_BY_CODE = {code: algorithm for algorithm, code in KEY_ALGORITHM_CODES.items()}


def batch_id_bytes(batch: Batch) -> bytes:
    """A batch's id as the Merkle leaf: the 64 raw bytes of its header signature."""
    return bytes.fromhex(batch.header_signature)


def batch_root(batches: Sequence[Batch]) -> bytes:
    """RFC 6962 root over the batch ids in block order; H("") for no batches."""
    return merkle_root([batch_id_bytes(batch) for batch in batches])


@dataclass(frozen=True)
class BlockHeader:
    """The signed part of a block; see docs/formats.md §6.2."""

    chain_id: str
    number: int
    previous_block_id: bytes
    state_root: bytes
    batch_root: bytes
    proposer: PublicKey
    timestamp_ms: int
    consensus_round: int
    batch_count: int

    def __post_init__(self) -> None:
        _check_uint(self.number, 64, "number")
        _check_uint(self.timestamp_ms, 64, "timestamp_ms")
        _check_uint(self.consensus_round, 32, "consensus_round")
        _check_uint(self.batch_count, 32, "batch_count")
        if self.batch_count > block_batches_max:
            raise InvalidInput(
                f"batch_count {self.batch_count} exceeds block_batches_max={block_batches_max}"
            )
        for name in ("previous_block_id", "state_root", "batch_root"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != DIGEST_SIZE:
                raise InvalidInput(f"{name} must be {DIGEST_SIZE} bytes")
        if (self.number == 0) != (self.previous_block_id == GENESIS_PREVIOUS_ID):
            raise InvalidInput(
                "block 0 (genesis) and only block 0 has the all-zero previous block id"
            )

    def encode(self) -> bytes:
        key = self.proposer.spki_der
        if not 1 <= len(key) <= proposer_key_bytes_max:
            raise InvalidInput(
                f"proposer key of {len(key)} bytes exceeds "
                f"proposer_key_bytes_max={proposer_key_bytes_max}"
            )
        return b"".join((
            HEADER_MAGIC, u16(FORMAT_VERSION), encode_chain_id(self.chain_id),
            u64(self.number), self.previous_block_id, self.state_root, self.batch_root,
            u8(KEY_ALGORITHM_CODES[self.proposer.algorithm]), u16(len(key)), key,
            u64(self.timestamp_ms), u32(self.consensus_round), u32(self.batch_count),
        ))  # fmt: skip


def _check_uint(value: int, bits: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise InvalidInput(f"{name} must be an integer in [0, 2**{bits})")


def decode_header(data: bytes) -> BlockHeader:
    """Parse header bytes; any deviation from the one canonical encoding raises."""
    if len(data) > header_bytes_max:
        raise MalformedBlock(f"header of {len(data)} bytes exceeds {header_bytes_max}")
    reader = Reader(data, "block header")
    reader.expect(HEADER_MAGIC, "magic")
    version = reader.u16("format_version")
    if version != FORMAT_VERSION:
        raise reader.fail("format_version", f"{version} is not supported (want {FORMAT_VERSION})")
    chain_id = reader.chain_id()
    number = reader.u64("number")
    previous, state_root, root = (
        reader.take(DIGEST_SIZE, name) for name in ("previous_block_id", "state_root", "batch_root")
    )
    proposer = _read_proposer(reader)
    timestamp_ms = reader.u64("timestamp_ms")
    consensus_round = reader.u32("consensus_round")
    batch_count = reader.u32("batch_count")
    reader.finish()
    try:
        return BlockHeader(
            chain_id, number, previous, state_root, root, proposer, timestamp_ms,
            consensus_round, batch_count,
        )  # fmt: skip
    except InvalidInput as exc:
        raise MalformedBlock(f"block header: {exc.message}") from None


def _read_proposer(reader: Reader) -> PublicKey:
    code = reader.u8("proposer_key_algorithm")
    algorithm = _ALGORITHMS_BY_CODE.get(code)
    if algorithm is None:
        raise reader.fail("proposer_key_algorithm", f"unknown code {code}")
    size = reader.bounded_length(2, 1, proposer_key_bytes_max, "proposer_key")
    der = reader.take(size, "proposer_key")
    try:
        key = PublicKey.from_spki(der)
    except InvalidInput as exc:
        raise reader.fail("proposer_key", f"not a supported public key ({exc})") from None
    # from_spki parsed these bytes already, so loading them again cannot fail.
    canonical = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if key.algorithm is not algorithm:
        raise reader.fail("proposer_key", f"a {key.algorithm.value} key under code {code}")
    if canonical != der:
        # Two encodings of one key would give one header two ids.
        raise reader.fail("proposer_key", "not in canonical DER")
    return key


@dataclass(frozen=True)
class Block:
    """A header (as signed bytes), the proposer's signature over its id, and the batches."""

    header: BlockHeader
    header_bytes: bytes
    proposer_signature: bytes
    batches: tuple[Batch, ...]

    @cached_property
    def id(self) -> bytes:
        """SHA-256 of the header bytes."""
        return sha256(self.header_bytes)

    @property
    def number(self) -> int:
        return self.header.number

    @property
    def batch_ids(self) -> tuple[str, ...]:
        return tuple(batch.header_signature for batch in self.batches)

    @property
    def transaction_ids(self) -> tuple[str, ...]:
        return tuple(t.header_signature for batch in self.batches for t in batch.transactions)

    def encode(self) -> bytes:
        parts = [
            BLOCK_MAGIC, u16(FORMAT_VERSION), u32(len(self.header_bytes)), self.header_bytes,
            self.proposer_signature, u32(len(self.batches)),
        ]  # fmt: skip
        for batch in self.batches:
            encoded = batch.encode()
            parts += (u32(len(encoded)), encoded)
        data = b"".join(parts)
        if len(data) > block_bytes_max:
            raise InvalidInput(f"block of {len(data)} bytes exceeds {block_bytes_max}")
        return data

    def verify_proposer_signature(self) -> None:
        try:
            self.header.proposer.verify(self.id, self.proposer_signature)
        except SignatureInvalid as exc:
            raise BlockSignatureInvalid(
                f"block {self.number} ({self.id.hex()[:16]}): proposer signature does not "
                f"verify under key {self.header.proposer.fingerprint[:16]}"
            ) from exc


def check_batches_match_header(header: BlockHeader, batches: Sequence[Batch]) -> None:
    """The batch count and Merkle root in ``header`` describe exactly ``batches``."""
    if header.batch_count != len(batches):
        raise BatchRootMismatch(
            f"header says {header.batch_count} batches, the block carries {len(batches)}"
        )
    computed = batch_root(batches)
    if computed != header.batch_root:
        raise BatchRootMismatch(
            f"header batch_root {header.batch_root.hex()} differs from the root of the "
            f"batches carried, {computed.hex()}"
        )


def check_unique_ids(batches: Sequence[Batch]) -> None:
    """No batch and no transaction appears twice in one block."""
    batch_ids = [batch.header_signature for batch in batches]
    if len(set(batch_ids)) != len(batch_ids):
        raise MalformedBlock("a batch appears twice in the block")
    transaction_ids = [t.header_signature for batch in batches for t in batch.transactions]
    if len(set(transaction_ids)) != len(transaction_ids):
        raise MalformedBlock("a transaction appears twice in the block")


def decode_block(
    data: bytes,
    limits: TxnLimits = DEFAULT_LIMITS,
    *,
    verify_batch_signatures: bool = True,
    known: Callable[[Batch], bool] | None = None,
) -> Block:
    """Parse and check a whole block (structure, batches, batch root, proposer signature).

    ``verify_batch_signatures=False`` is for blocks read back from this node's own store,
    which verified them before commit: everything but the batches' and transactions'
    secp256k1 signatures is still checked (the proposer's signature included).

    ``known(batch)`` True vouches that this node already verified exactly that batch (a
    peer's proposal mostly carries batches gossiped into our pool: ``BatchPool.holds``);
    its secp256k1 checks are skipped, every other batch is verified in full."""
    if len(data) > block_bytes_max:
        raise MalformedBlock(f"block of {len(data)} bytes exceeds {block_bytes_max}")
    reader = Reader(data, "block")
    reader.expect(BLOCK_MAGIC, "magic")
    version = reader.u16("format_version")
    if version != FORMAT_VERSION:
        raise reader.fail("format_version", f"{version} is not supported (want {FORMAT_VERSION})")
    header_bytes = reader.take(reader.bounded_length(4, 1, header_bytes_max, "header"), "header")
    header = decode_header(header_bytes)
    signature = reader.take(SIGNATURE_BYTES, "proposer_signature")
    count = reader.u32("batch_count")
    if count != header.batch_count:
        raise BatchRootMismatch(f"header says {header.batch_count} batches, the block {count}")
    batches = tuple(
        _read_batch(reader, i, limits, verify_batch_signatures, known) for i in range(count)
    )
    reader.finish()
    check_unique_ids(batches)
    check_batches_match_header(header, batches)
    block = Block(header, header_bytes, signature, batches)
    block.verify_proposer_signature()
    return block


def _read_batch(
    reader: Reader,
    index: int,
    limits: TxnLimits,
    verify_signatures: bool,
    known: Callable[[Batch], bool] | None,
) -> Batch:
    field = f"batches[{index}]"
    raw = reader.take(reader.bounded_length(4, 1, batch_bytes_max, field), field)
    try:
        if verify_signatures and known is not None:
            batch = decode_batch(raw, limits, verify_signatures=False)
            if not known(batch):
                check_signatures([batch])
        else:
            batch = decode_batch(raw, limits, verify_signatures=verify_signatures)
    except BatchListFault as exc:
        raise MalformedBlock(f"block {field}: {exc}") from exc
    if batch.encode() != raw:
        # The outer Batch message is unsigned: only a canonical encoding keeps block bytes
        # (and so stored and gossiped copies) identical for identical content.
        raise MalformedBlock(f"block {field}: not in canonical protobuf encoding")
    return batch
