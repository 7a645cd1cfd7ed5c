"""The BFT driver's caches of blocks: proposed bodies by block id, and executions.

The machine deals in block ids only; the driver needs the bodies behind them to validate a
peer's block, to re-propose a valid value and to commit a decision, and it keeps the
execution (state update, receipts) of a block it built or validated so that the commit does
not execute it a second time. Both caches are bounded and both only save time or a round:
a node without a body does not vote for that block, and an evicted execution is re-done at
commit. Evicting therefore costs liveness, never safety, which is why plain count and byte
bounds with oldest-first eviction are enough.
"""

from __future__ import annotations

from collections import OrderedDict

from trusted_ledger.chain.block import Block
from trusted_ledger.chain.execution import ExecutionOutcome

block_cache_max = 32
"""Proposed block bodies kept (by block id) for validation, re-proposal and commit."""
block_cache_bytes_max = 256 * 1024 * 1024
"""Bytes of proposed block bodies kept; the oldest go first (a later need costs liveness,
never safety: a node without the body simply does not vote for the block)."""
executed_blocks_max = 8
"""Executions (state updates) kept for the current height; an evicted one is re-executed
at commit."""


class BlockBodyCache:
    """Encoded block bodies by block id, each with the height it was proposed for."""

    def __init__(self) -> None:
        self._blocks: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()
        self._bytes_total = 0

    def get(self, block_id: bytes) -> bytes | None:
        cached = self._blocks.get(block_id)
        return None if cached is None else cached[1]

    def keep(self, block_id: bytes, height: int, data: bytes) -> None:
        """Keep a body (a body already kept only counts as recently used again)."""
        if block_id in self._blocks:
            self._blocks.move_to_end(block_id)
            return
        self._blocks[block_id] = (height, data)
        self._bytes_total += len(data)
        while len(self._blocks) > block_cache_max or (
            self._bytes_total > block_cache_bytes_max and len(self._blocks) > 1
        ):
            self._drop(next(iter(self._blocks)))

    def drop_through(self, committed: int) -> None:
        """Forget the bodies of heights up to ``committed``: nothing needs them any more."""
        for block_id in [b for b, (h, _) in self._blocks.items() if h <= committed]:
            self._drop(block_id)

    def _drop(self, block_id: bytes) -> None:
        _, data = self._blocks.pop(block_id)
        self._bytes_total -= len(data)


class ExecutionCache:
    """Executed blocks of the current height by block id, with their outcomes."""

    def __init__(self) -> None:
        self._executed: OrderedDict[bytes, tuple[Block, ExecutionOutcome]] = OrderedDict()

    def get(self, block_id: bytes) -> tuple[Block, ExecutionOutcome] | None:
        return self._executed.get(block_id)

    def keep(self, block: Block, outcome: ExecutionOutcome, *, height: int) -> None:
        """Keep ``block``'s execution if it is of ``height``, the height being decided."""
        if block.number != height:
            return  # a late answer for a height already committed
        self._executed[block.id] = (block, outcome)
        while len(self._executed) > executed_blocks_max:
            self._executed.popitem(last=False)

    def clear(self) -> None:
        self._executed.clear()
