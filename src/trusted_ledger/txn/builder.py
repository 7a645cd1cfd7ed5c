"""Building and signing transactions and batches, for clients and tests.

The builders apply the same checks the node applies on entry, so a client learns of a bad
address or family name when it builds, not after a round trip.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence

from trusted_ledger.txn.checks import check_batches, check_transaction_fields
from trusted_ledger.txn.fields import Where
from trusted_ledger.txn.limits import DEFAULT_LIMITS, TxnLimits
from trusted_ledger.txn.model import Batch, BatchHeader, BatchList, Transaction, TransactionHeader
from trusted_ledger.txn.signing import SigningKey

# 128 random bits: two transactions with otherwise equal headers never share an id.
_NONCE_BYTES = 16


class TransactionBuilder:
    """Signs transactions of one family version with one key.

    ``batcher_public_key`` defaults to the signer's own key: the common case of a client
    that signs its transactions and the batch around them with the same key.
    """

    def __init__(
        self,
        signing_key: SigningKey,
        family_name: str,
        family_version: str,
        *,
        batcher_public_key: str | None = None,
        limits: TxnLimits = DEFAULT_LIMITS,
    ) -> None:
        self._key = signing_key
        self._family_name = family_name
        self._family_version = family_version
        self._batcher = batcher_public_key or signing_key.public_key_hex
        self._limits = limits

    def build(
        self,
        payload: bytes,
        *,
        inputs: Iterable[str],
        outputs: Iterable[str],
        dependencies: Iterable[str] = (),
        nonce: str | None = None,
    ) -> Transaction:
        """A signed transaction. ``nonce`` defaults to 32 random hex chars; pass one only
        for reproducible output (test vectors)."""
        header = TransactionHeader(
            batcher_public_key=self._batcher,
            dependencies=tuple(dependencies),
            family_name=self._family_name,
            family_version=self._family_version,
            inputs=tuple(inputs),
            nonce=secrets.token_hex(_NONCE_BYTES) if nonce is None else nonce,
            outputs=tuple(outputs),
            payload_sha512=hashlib.sha512(payload).hexdigest(),
            signer_public_key=self._key.public_key_hex,
        )
        header_bytes = header.encode()
        transaction = Transaction(
            header=header,
            header_bytes=header_bytes,
            header_signature=self._key.sign_header(header_bytes),
            payload=bytes(payload),
        )
        check_transaction_fields(transaction, self._limits, Where())
        return transaction


def build_batch(
    signing_key: SigningKey,
    transactions: Sequence[Transaction],
    *,
    trace: bool = False,
    limits: TxnLimits = DEFAULT_LIMITS,
) -> Batch:
    """A batch of ``transactions`` (in order) signed by ``signing_key``, fully checked."""
    header = BatchHeader(
        signer_public_key=signing_key.public_key_hex,
        transaction_ids=tuple(t.header_signature for t in transactions),
    )
    header_bytes = header.encode()
    batch = Batch(
        header=header,
        header_bytes=header_bytes,
        header_signature=signing_key.sign_header(header_bytes),
        transactions=tuple(transactions),
        trace=trace,
    )
    check_batches([batch], limits)
    return batch


def build_batch_list(batches: Sequence[Batch], limits: TxnLimits = DEFAULT_LIMITS) -> BatchList:
    """The list a client POSTs to ``/batches``, checked as the node will check it."""
    check_batches(batches, limits)
    return BatchList(tuple(batches))
