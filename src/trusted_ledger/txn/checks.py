"""Every check on batches that needs no chain: fields, structure, hashes, signatures.

Cheap checks run first and signatures last: a batch list that fails on format costs no
elliptic-curve work. The SHA-256 of every header in the list is computed in one native call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from trusted_ledger.errors import (
    BatcherKeyMismatch,
    DuplicateTransaction,
    PayloadHashMismatch,
    SizeLimitExceeded,
    TransactionIdMismatch,
)
from trusted_ledger.hashing import digest_many
from trusted_ledger.txn import fields
from trusted_ledger.txn.fields import Where
from trusted_ledger.txn.limits import TxnLimits
from trusted_ledger.txn.model import Batch, Transaction
from trusted_ledger.txn.signing import verify_header_signature


def check_header_size(header_bytes: bytes, bytes_max: int, where: Where) -> None:
    """Bounds a transaction or batch header (``bytes_max`` is the matching limit)."""
    if len(header_bytes) > bytes_max:
        raise where.too_many("header", f"{len(header_bytes)} bytes, at most {bytes_max} allowed")


def check_transaction_fields(transaction: Transaction, limits: TxnLimits, where: Where) -> None:
    """Format of every header field and of the signature; no hashing, no signatures."""
    header = transaction.header
    check_header_size(transaction.header_bytes, limits.transaction_header_bytes_max, where)
    fields.check_signature_hex(transaction.header_signature, "header_signature", where)
    fields.check_public_key_hex(header.signer_public_key, "header.signer_public_key", where)
    fields.check_public_key_hex(header.batcher_public_key, "header.batcher_public_key", where)
    fields.check_family(header.family_name, header.family_version, limits, where)
    fields.check_nonce(header.nonce, limits, where)
    fields.check_addresses(header.inputs, "header.inputs", limits, where)
    fields.check_addresses(header.outputs, "header.outputs", limits, where)
    fields.check_dependencies(header.dependencies, limits, where)
    fields.check_sha512_hex(header.payload_sha512, "header.payload_sha512", where)
    if len(transaction.payload) > limits.payload_bytes_max:
        raise where.too_many(
            "payload",
            f"{len(transaction.payload)} bytes, at most {limits.payload_bytes_max} allowed",
        )


def _check_batch_structure(batch: Batch, batch_index: int, limits: TxnLimits) -> None:
    where = Where(batch_index)
    check_header_size(batch.header_bytes, limits.batch_header_bytes_max, where)
    fields.check_signature_hex(batch.header_signature, "header_signature", where)
    fields.check_public_key_hex(batch.header.signer_public_key, "header.signer_public_key", where)
    count = len(batch.transactions)
    if count == 0:
        raise where.error(SizeLimitExceeded, "transactions", "a batch needs a transaction")
    if count > limits.transactions_per_batch_max:
        raise where.too_many(
            "transactions", f"{count} transactions, at most {limits.transactions_per_batch_max}"
        )
    ids = batch.header.transaction_ids
    for i, transaction in enumerate(batch.transactions):
        t_where = Where(batch_index, i)
        check_transaction_fields(transaction, limits, t_where)
        if i >= len(ids) or ids[i] != transaction.header_signature:
            listed = f"lists {ids[i][:16]}..." if i < len(ids) else "lists no id"
            raise where.error(
                TransactionIdMismatch,
                f"header.transaction_ids[{i}]",
                f"{listed} but transaction {i} has id {transaction.header_signature[:16]}...",
            )
        if transaction.header.batcher_public_key != batch.header.signer_public_key:
            raise t_where.error(
                BatcherKeyMismatch,
                "header.batcher_public_key",
                f"names batcher {transaction.header.batcher_public_key[:16]}... but the batch "
                f"is signed by {batch.header.signer_public_key[:16]}...",
            )
    if len(ids) > count:
        raise where.error(
            TransactionIdMismatch,
            f"header.transaction_ids[{count}]",
            f"lists {len(ids)} ids but the batch carries {count} transactions",
        )


def check_structure(batches: Sequence[Batch], limits: TxnLimits) -> None:
    """Field formats, bounds, id lists, batcher keys, and no transaction twice in the list."""
    if not batches:
        raise SizeLimitExceeded("a batch list needs at least one batch", field="batches")
    if len(batches) > limits.batches_per_list_max:
        raise SizeLimitExceeded(
            f"{len(batches)} batches, at most {limits.batches_per_list_max} allowed",
            field="batches",
        )
    total = sum(len(b.transactions) for b in batches)
    if total > limits.transactions_per_list_max:
        raise SizeLimitExceeded(
            f"{total} transactions, at most {limits.transactions_per_list_max} per list",
            field="batches",
        )
    seen: dict[str, tuple[int, int]] = {}
    for b, batch in enumerate(batches):
        _check_batch_structure(batch, b, limits)
        for t, transaction in enumerate(batch.transactions):
            first = seen.setdefault(transaction.header_signature, (b, t))
            if first != (b, t):
                raise Where(b, t).error(
                    DuplicateTransaction,
                    "header_signature",
                    f"same transaction id as batch {first[0]}, transaction {first[1]}",
                )


def check_payload_hashes(batches: Sequence[Batch]) -> None:
    """Each payload hashes (SHA-512) to its header's payload_sha512."""
    for b, batch in enumerate(batches):
        for t, transaction in enumerate(batch.transactions):
            actual = hashlib.sha512(transaction.payload).hexdigest()
            if actual != transaction.header.payload_sha512:
                raise Where(b, t).error(
                    PayloadHashMismatch,
                    "payload",
                    f"SHA-512 is {actual[:16]}... but the header says "
                    f"{transaction.header.payload_sha512[:16]}...",
                )


def check_signatures(batches: Sequence[Batch]) -> None:
    """Every transaction and batch signature; raises on the first that fails."""
    headers: list[bytes] = []
    for batch in batches:
        headers.extend(t.header_bytes for t in batch.transactions)
        headers.append(batch.header_bytes)
    digests = digest_many(headers)
    position = 0
    for b, batch in enumerate(batches):
        for t, transaction in enumerate(batch.transactions):
            verify_header_signature(
                transaction.header.signer_public_key,
                transaction.header_signature,
                digests[position],
                Where(b, t),
            )
            position += 1
        verify_header_signature(
            batch.header.signer_public_key, batch.header_signature, digests[position], Where(b)
        )
        position += 1


def check_batches(batches: Sequence[Batch], limits: TxnLimits) -> None:
    """All checks that need no chain, cheapest first. Raises on the first failure."""
    check_structure(batches, limits)
    check_payload_hashes(batches)
    check_signatures(batches)
