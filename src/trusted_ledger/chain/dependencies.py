"""Declared transaction dependencies inside a block: each must be committed or come earlier.

The txn layer checks dependencies on entry, against the chain and the same batch list. A
block needs the same rule at its own boundary, because a dependency can vanish between entry
and block: its batch may turn out invalid at execution. Publisher and validator share this one
function so that they cannot disagree on which blocks are acceptable.
"""

from __future__ import annotations

from collections.abc import Sequence

from trusted_ledger.txn import Batch, CommittedTransactions


def unmet_dependencies(batches: Sequence[Batch], chain: CommittedTransactions) -> dict[str, str]:
    """batch id -> the first dependency of that batch that is neither committed on ``chain``
    nor a transaction of an earlier batch that itself has every dependency met."""
    wanted = {d for batch in batches for t in batch.transactions for d in t.header.dependencies}
    committed = chain.committed_among(wanted) if wanted else set()
    earlier: set[str] = set()
    unmet: dict[str, str] = {}
    for batch in batches:
        # Within a batch, a transaction may depend on an earlier one of the same batch.
        in_batch: set[str] = set()
        for transaction in batch.transactions:
            for dependency in transaction.header.dependencies:
                met = dependency in committed or dependency in earlier or dependency in in_batch
                if not met and batch.header_signature not in unmet:
                    unmet[batch.header_signature] = dependency
            in_batch.add(transaction.header_signature)
        if batch.header_signature not in unmet:
            # A dropped batch's transactions never happen: they satisfy nothing after them.
            earlier |= in_batch
    return unmet
