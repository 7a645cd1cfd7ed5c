"""A block laid out for scheduling: transactions in order, and the dependency graph.

Transaction ``t`` depends on every earlier transaction ``e`` of the block such that
- ``e``'s outputs overlap ``t``'s inputs (t reads what e writes),
- ``e``'s outputs overlap ``t``'s outputs (both write: the later write must win), or
- ``e``'s inputs overlap ``t``'s outputs (e reads what t overwrites),
or that ``t`` names in its header's ``dependencies``. Two prefixes overlap when one starts
with the other (a declared prefix covers every address under it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from trusted_ledger.txn import Batch, Transaction


@dataclass(frozen=True, slots=True)
class PlannedTransaction:
    order: int  # position in the block, counting every transaction of every batch
    batch_index: int
    index_in_batch: int
    transaction: Transaction


class _PrefixIndex:
    """Which earlier transactions declared a prefix overlapping a queried one.

    Only the prefix lengths that occur in the block are indexed, so a query costs a few dict
    lookups (usually two: namespace-long and address-long) rather than one per length.
    """

    def __init__(self, lengths: Sequence[int]) -> None:
        self._lengths = lengths
        self._exact: dict[str, list[int]] = {}  # declared prefix -> orders
        self._under: dict[str, list[int]] = {}  # declared prefix cut to a length -> orders

    def add(self, prefix: str, order: int) -> None:
        self._exact.setdefault(prefix, []).append(order)
        for length in self._lengths:
            if length < len(prefix):
                self._under.setdefault(prefix[:length], []).append(order)

    def overlapping(self, prefix: str) -> Iterator[int]:
        for length in self._lengths:
            if length <= len(prefix):
                yield from self._exact.get(prefix[:length], ())  # declared covers the query
        yield from self._under.get(prefix, ())  # the query covers a longer declared one


class BlockPlan:
    """The transactions of ``batches`` in block order, with batch membership."""

    def __init__(self, batches: Sequence[Batch]) -> None:
        self.batches = tuple(batches)
        self.transactions: list[PlannedTransaction] = []
        self.batch_orders: list[range] = []
        for batch_index, batch in enumerate(self.batches):
            first = len(self.transactions)
            for index_in_batch, transaction in enumerate(batch.transactions):
                self.transactions.append(
                    PlannedTransaction(
                        len(self.transactions), batch_index, index_in_batch, transaction
                    )
                )
            self.batch_orders.append(range(first, len(self.transactions)))
        order_of_id: dict[str, int] = {}
        # Per transaction: the earlier transactions of the block its header names.
        self.named_dependencies: list[tuple[int, ...]] = []
        for planned in self.transactions:
            named = {
                order_of_id[d] for d in planned.transaction.header.dependencies if d in order_of_id
            }
            self.named_dependencies.append(tuple(sorted(named)))
            order_of_id.setdefault(planned.transaction.id, planned.order)

    def dependencies(self) -> list[tuple[int, ...]]:
        """For each transaction, the orders of the earlier ones it depends on, ascending."""
        lengths = sorted(
            {len(p) for planned in self.transactions for p in _declared(planned.transaction)}
        )
        writers = _PrefixIndex(lengths)
        readers = _PrefixIndex(lengths)
        result: list[tuple[int, ...]] = []
        for planned in self.transactions:
            header = planned.transaction.header
            found: set[int] = set()
            for prefix in header.inputs:
                found.update(writers.overlapping(prefix))
            for prefix in header.outputs:
                found.update(writers.overlapping(prefix))
                found.update(readers.overlapping(prefix))
            # Only dependencies earlier in the block order constrain it; committed ones are
            # already in the base state, and the txn checks reject any others.
            found.update(self.named_dependencies[planned.order])
            result.append(tuple(sorted(found)))
            for prefix in header.inputs:
                readers.add(prefix, planned.order)
            for prefix in header.outputs:
                writers.add(prefix, planned.order)
        return result


def _declared(transaction: Transaction) -> Iterable[str]:
    yield from transaction.header.inputs
    yield from transaction.header.outputs
