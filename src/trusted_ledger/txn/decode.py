"""Bytes from outside to checked objects: ``decode_batch_list`` and ``decode_batch``.

Order of work, so that hostile input costs little: total size first; then a scan of the
unsigned outer messages that bounds every count and size before anything is built; then the
signed headers are parsed by protobuf and must be in canonical encoding; then the checks of
``checks`` (formats, structure, payload hashes, and signatures last).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from trusted_ledger.errors import MalformedEncoding, SizeLimitExceeded
from trusted_ledger.txn.checks import (
    check_batches,
    check_header_size,
    check_payload_hashes,
    check_structure,
)
from trusted_ledger.txn.fields import Where
from trusted_ledger.txn.limits import DEFAULT_LIMITS, TxnLimits
from trusted_ledger.txn.model import Batch, BatchHeader, BatchList, Transaction, TransactionHeader
from trusted_ledger.txn.protos import batch_pb2, transaction_pb2
from trusted_ledger.txn.wire import WIRE_LEN, WIRE_VARINT, WireError, WireField, iter_fields

Bytes = bytes | bytearray | memoryview


class _FieldSpec(NamedTuple):
    name: str
    wire_type: int
    repeated: bool = False


_BATCH_LIST_FIELDS = {1: _FieldSpec("batches", WIRE_LEN, repeated=True)}
_BATCH_FIELDS = {
    1: _FieldSpec("header", WIRE_LEN),
    2: _FieldSpec("header_signature", WIRE_LEN),
    3: _FieldSpec("transactions", WIRE_LEN, repeated=True),
    4: _FieldSpec("trace", WIRE_VARINT),
}
_TRANSACTION_FIELDS = {
    1: _FieldSpec("header", WIRE_LEN),
    2: _FieldSpec("header_signature", WIRE_LEN),
    3: _FieldSpec("payload", WIRE_LEN),
}


def _scan(
    data: memoryview,
    spec: Mapping[int, _FieldSpec],
    message: str,
    where: Where,
    repeated_max: int = 0,
    bound_note: str = "",
) -> dict[str, list[WireField]]:
    """The fields of one message by name, refusing anything the spec does not allow and
    stopping as soon as its repeated field (if any) exceeds ``repeated_max`` occurrences, so
    that a flood of tiny entries never becomes a flood of objects."""
    found: dict[str, list[WireField]] = {s.name: [] for s in spec.values()}
    try:
        for field in iter_fields(data):
            known = spec.get(field.number)
            if known is None:
                raise where.error(
                    MalformedEncoding, message, f"unknown field number {field.number}"
                )
            if field.wire_type != known.wire_type:
                raise where.error(
                    MalformedEncoding,
                    f"{message}.{known.name}",
                    f"wire type {field.wire_type}, expected {known.wire_type}",
                )
            occurrences = found[known.name]
            if occurrences and not known.repeated:
                raise where.error(MalformedEncoding, f"{message}.{known.name}", "appears twice")
            if known.repeated and len(occurrences) == repeated_max:
                raise where.too_many(
                    f"{message}.{known.name}", f"more than {repeated_max} entries{bound_note}"
                )
            occurrences.append(field)
    except WireError as exc:
        raise where.error(MalformedEncoding, message, f"malformed protobuf: {exc}") from exc
    return found


def _bytes_of(data: memoryview, found: dict[str, list[WireField]], name: str) -> bytes:
    fields = found[name]
    return bytes(data[fields[0].start : fields[0].end]) if fields else b""


def _text_of(data: memoryview, found: dict[str, list[WireField]], name: str, where: Where) -> str:
    try:
        return _bytes_of(data, found, name).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise where.error(MalformedEncoding, name, "is not valid UTF-8") from exc


def _check_canonical(message: object, raw: bytes, encoded: bytes, what: str, w: Where) -> None:
    fields = UnknownFieldSet(message)  # type: ignore[arg-type]
    unknown = sorted({fields[i].field_number for i in range(len(fields))})
    if unknown:
        raise w.error(MalformedEncoding, "header", f"{what} has unknown field numbers {unknown}")
    if encoded != raw:
        raise w.error(
            MalformedEncoding,
            "header",
            f"{what} is not in canonical encoding (fields out of number order, a singular "
            "field repeated, or an empty value written out)",
            hint="serialize the header with a standard protobuf library and sign those bytes",
        )


def _parse_transaction_header(raw: bytes, where: Where) -> TransactionHeader:
    try:
        message = transaction_pb2.TransactionHeader.FromString(raw)
    except DecodeError as exc:
        raise where.error(
            MalformedEncoding, "header", f"does not parse as a TransactionHeader: {exc}"
        ) from exc
    header = TransactionHeader.from_proto(message)
    _check_canonical(message, raw, header.encode(), "TransactionHeader", where)
    return header


def _parse_batch_header(raw: bytes, where: Where) -> BatchHeader:
    try:
        message = batch_pb2.BatchHeader.FromString(raw)
    except DecodeError as exc:
        raise where.error(
            MalformedEncoding, "header", f"does not parse as a BatchHeader: {exc}"
        ) from exc
    header = BatchHeader.from_proto(message)
    _check_canonical(message, raw, header.encode(), "BatchHeader", where)
    return header


def _decode_transaction(data: memoryview, limits: TxnLimits, where: Where) -> Transaction:
    found = _scan(data, _TRANSACTION_FIELDS, "transaction", where)
    payload_fields = found["payload"]
    if (
        payload_fields
        and payload_fields[0].end - payload_fields[0].start > limits.payload_bytes_max
    ):
        raise where.too_many("payload", f"more than {limits.payload_bytes_max} bytes")
    raw_header = _bytes_of(data, found, "header")
    check_header_size(raw_header, limits.transaction_header_bytes_max, where)
    return Transaction(
        header=_parse_transaction_header(raw_header, where),
        header_bytes=raw_header,
        header_signature=_text_of(data, found, "header_signature", where),
        payload=_bytes_of(data, found, "payload"),
    )


def _decode_unchecked_batch(
    data: memoryview, batch_index: int, limits: TxnLimits, transactions_left: int
) -> Batch:
    """One batch, scanned and parsed but not yet checked (``check_batches`` follows)."""
    where = Where(batch_index)
    if transactions_left < limits.transactions_per_batch_max:
        repeated_max = transactions_left
        note = f" (with earlier batches, over {limits.transactions_per_list_max} in the list)"
    else:
        repeated_max, note = limits.transactions_per_batch_max, ""
    found = _scan(data, _BATCH_FIELDS, "batch", where, repeated_max, note)
    trace = found["trace"]
    # Some protobuf libraries write an explicit false; anything but 0 or 1 is not a bool.
    if trace and trace[0].value > 1:
        raise where.error(MalformedEncoding, "trace", "a bool must be encoded as 0 or 1")
    raw_header = _bytes_of(data, found, "header")
    check_header_size(raw_header, limits.batch_header_bytes_max, where)
    header = _parse_batch_header(raw_header, where)
    transactions = tuple(
        _decode_transaction(data[f.start : f.end], limits, Where(batch_index, t))
        for t, f in enumerate(found["transactions"])
    )
    return Batch(
        header=header,
        header_bytes=raw_header,
        header_signature=_text_of(data, found, "header_signature", where),
        transactions=transactions,
        trace=bool(trace and trace[0].value),
    )


def _check_total_size(data: Bytes, limits: TxnLimits, what: str) -> memoryview:
    if len(data) > limits.batch_list_bytes_max:
        raise SizeLimitExceeded(
            f"{len(data)} bytes, at most {limits.batch_list_bytes_max} allowed", field=what
        )
    return memoryview(data).cast("B")


def _decode_unchecked_batches(data: Bytes, limits: TxnLimits) -> list[Batch]:
    """Bounds, wire structure and header parsing only (section 3.1-3.2 of the format doc)."""
    view = _check_total_size(data, limits, "batch_list")
    found = _scan(view, _BATCH_LIST_FIELDS, "batch_list", Where(), limits.batches_per_list_max)
    batches: list[Batch] = []
    transactions_left = limits.transactions_per_list_max
    for b, field in enumerate(found["batches"]):
        batch = _decode_unchecked_batch(view[field.start : field.end], b, limits, transactions_left)
        transactions_left -= len(batch.transactions)
        batches.append(batch)
    return batches


def decode_batch_list(data: Bytes, limits: TxnLimits = DEFAULT_LIMITS) -> BatchList:
    """Decode a serialized BatchList and apply every check that needs no chain.

    Raises a ``MalformedBatch`` or ``BatchVerificationFailed`` subclass naming the batch,
    transaction and field at fault. Replay and dependency checks need the chain: see
    ``chain_checks.check_against_chain``.
    """
    batches = _decode_unchecked_batches(data, limits)
    check_batches(batches, limits)
    return BatchList(tuple(batches))


def decode_batch(
    data: Bytes, limits: TxnLimits = DEFAULT_LIMITS, *, verify_signatures: bool = True
) -> Batch:
    """Decode one serialized Batch (as gossip and blocks carry them) with every check that
    needs no chain; errors name batch 0.

    ``verify_signatures=False`` skips only the secp256k1 checks (about 90% of the cost), for
    bytes this node verified before it stored them; structure and payload hashes are still
    checked. Never pass it for bytes from outside."""
    view = _check_total_size(data, limits, "batch")
    batch = _decode_unchecked_batch(view, 0, limits, limits.transactions_per_list_max)
    if verify_signatures:
        check_batches([batch], limits)
    else:
        check_structure([batch], limits)
        check_payload_hashes([batch])
    return batch
