"""Typed transactions and batches over Sawtooth's protobuf messages.

Objects of these classes are immutable and keep the signed header bytes exactly as received:
the ids are signatures over those bytes, so re-encoding a header would be wrong even when it
gives the same bytes today. Construct them through ``decode`` (bytes from outside, every check
applied) or ``builder`` (a client signing its own); the constructors themselves check nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from trusted_ledger.txn.protos import batch_pb2, transaction_pb2


@dataclass(frozen=True, slots=True)
class TransactionHeader:
    """The signed fields of a transaction (TransactionHeader, fields 1-7, 9, 10)."""

    batcher_public_key: str
    dependencies: tuple[str, ...]
    family_name: str
    family_version: str
    inputs: tuple[str, ...]
    nonce: str
    outputs: tuple[str, ...]
    payload_sha512: str
    signer_public_key: str

    def to_proto(self) -> transaction_pb2.TransactionHeader:
        return transaction_pb2.TransactionHeader(
            batcher_public_key=self.batcher_public_key,
            dependencies=self.dependencies,
            family_name=self.family_name,
            family_version=self.family_version,
            inputs=self.inputs,
            nonce=self.nonce,
            outputs=self.outputs,
            payload_sha512=self.payload_sha512,
            signer_public_key=self.signer_public_key,
        )

    def encode(self) -> bytes:
        """The canonical encoding: fields in number order, empty fields omitted, which is
        what every Sawtooth SDK's protobuf library produces for the same values."""
        return self.to_proto().SerializeToString(deterministic=True)

    @classmethod
    def from_proto(cls, message: transaction_pb2.TransactionHeader) -> TransactionHeader:
        return cls(
            batcher_public_key=message.batcher_public_key,
            dependencies=tuple(message.dependencies),
            family_name=message.family_name,
            family_version=message.family_version,
            inputs=tuple(message.inputs),
            nonce=message.nonce,
            outputs=tuple(message.outputs),
            payload_sha512=message.payload_sha512,
            signer_public_key=message.signer_public_key,
        )


@dataclass(frozen=True, slots=True)
class Transaction:
    header: TransactionHeader
    # Exactly the bytes that were signed.
    header_bytes: bytes
    header_signature: str
    payload: bytes

    @property
    def id(self) -> str:
        """The transaction id: its header signature, as in Sawtooth."""
        return self.header_signature

    def to_proto(self) -> transaction_pb2.Transaction:
        return transaction_pb2.Transaction(
            header=self.header_bytes, header_signature=self.header_signature, payload=self.payload
        )

    def encode(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The signed fields of a batch."""

    signer_public_key: str
    transaction_ids: tuple[str, ...]

    def to_proto(self) -> batch_pb2.BatchHeader:
        return batch_pb2.BatchHeader(
            signer_public_key=self.signer_public_key, transaction_ids=self.transaction_ids
        )

    def encode(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)

    @classmethod
    def from_proto(cls, message: batch_pb2.BatchHeader) -> BatchHeader:
        return cls(
            signer_public_key=message.signer_public_key,
            transaction_ids=tuple(message.transaction_ids),
        )


@dataclass(frozen=True, slots=True)
class Batch:
    header: BatchHeader
    header_bytes: bytes
    header_signature: str
    transactions: tuple[Transaction, ...]
    # Unsigned: a request to log this batch's progress, with no effect on validity.
    trace: bool = False

    @property
    def id(self) -> str:
        """The batch id: its header signature, as in Sawtooth."""
        return self.header_signature

    def to_proto(self) -> batch_pb2.Batch:
        return batch_pb2.Batch(
            header=self.header_bytes,
            header_signature=self.header_signature,
            transactions=[t.to_proto() for t in self.transactions],
            trace=self.trace,
        )

    def encode(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)


@dataclass(frozen=True)
class BatchList:
    """What a client submits: one or more batches, each committed atomically."""

    batches: tuple[Batch, ...]

    def to_proto(self) -> batch_pb2.BatchList:
        return batch_pb2.BatchList(batches=[b.to_proto() for b in self.batches])

    def encode(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)

    @cached_property
    def transaction_ids(self) -> tuple[str, ...]:
        """Every transaction id, batch by batch, in order."""
        return tuple(t.header_signature for b in self.batches for t in b.transactions)
