"""The checks that need the chain: replay and dependency presence.

The txn layer cannot see the chain (it sits below it), so the caller supplies a
``CommittedTransactions`` view. Asked once per batch list with every id it needs, the view can
answer with one multi-get against the store. A caller that also wants to accept dependencies
on transactions still pending in its pool can answer for those too.
"""

from __future__ import annotations

from collections.abc import Collection, Set
from typing import Protocol

from trusted_ledger.errors import MissingDependency, ReplayedTransaction
from trusted_ledger.txn.fields import Where
from trusted_ledger.txn.model import BatchList


class CommittedTransactions(Protocol):
    """What the chain answers about transaction ids."""

    def committed_among(self, transaction_ids: Collection[str]) -> Set[str]:
        """The subset of ``transaction_ids`` already committed on the chain."""
        ...


def check_against_chain(batch_list: BatchList, chain: CommittedTransactions) -> None:
    """Reject a batch list that replays a committed transaction, or that depends on one
    that is neither committed nor earlier in the list (batch order, then transaction order).

    Run after ``decode_batch_list``: it assumes ids are well-formed and unique in the list.
    """
    dependencies = {
        dependency
        for batch in batch_list.batches
        for transaction in batch.transactions
        for dependency in transaction.header.dependencies
    }
    committed = chain.committed_among(set(batch_list.transaction_ids) | dependencies)
    earlier: set[str] = set()
    for b, batch in enumerate(batch_list.batches):
        for t, transaction in enumerate(batch.transactions):
            where = Where(b, t)
            if transaction.header_signature in committed:
                raise where.error(
                    ReplayedTransaction,
                    "header_signature",
                    "this transaction is already committed",
                    hint="build a new transaction (with a new nonce) to repeat the operation",
                )
            for d, dependency in enumerate(transaction.header.dependencies):
                if dependency not in committed and dependency not in earlier:
                    raise where.error(
                        MissingDependency,
                        f"header.dependencies[{d}]",
                        f"transaction {dependency[:16]}... is neither committed nor earlier "
                        "in this batch list",
                    )
            earlier.add(transaction.header_signature)
