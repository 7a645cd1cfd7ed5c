"""Transactions and batches in Sawtooth 1.x's wire format, and every check on entry.

``decode_batch_list`` turns bytes from a client into checked objects (size bounds before
parsing, field formats, structure, payload hashes, low-S secp256k1 signatures);
``check_against_chain`` adds the replay and dependency checks with the caller's view of the
chain. ``TransactionBuilder`` and ``build_batch`` sign for clients. Errors are the ``txn``
section of ``trusted_ledger.errors``.
"""

from trusted_ledger.txn.builder import TransactionBuilder, build_batch, build_batch_list
from trusted_ledger.txn.chain_checks import CommittedTransactions, check_against_chain
from trusted_ledger.txn.checks import check_batches, check_signatures
from trusted_ledger.txn.decode import decode_batch, decode_batch_list
from trusted_ledger.txn.limits import DEFAULT_LIMITS, TxnLimits
from trusted_ledger.txn.model import Batch, BatchHeader, BatchList, Transaction, TransactionHeader
from trusted_ledger.txn.signing import SigningKey, verify_header_signature

__all__ = [
    "DEFAULT_LIMITS",
    "Batch",
    "BatchHeader",
    "BatchList",
    "CommittedTransactions",
    "SigningKey",
    "Transaction",
    "TransactionBuilder",
    "TransactionHeader",
    "TxnLimits",
    "build_batch",
    "build_batch_list",
    "check_against_chain",
    "check_batches",
    "check_signatures",
    "decode_batch",
    "decode_batch_list",
    "verify_header_signature",
]
