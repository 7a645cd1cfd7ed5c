"""The block publisher of a single-node chain: pick, execute, sign, certify, commit.

A block is cut when enough batches wait (count or bytes) or when the oldest has waited
``block_interval_ms``. Candidates that replay committed work or that execution finds
invalid leave the pool with their reason; the valid rest is executed again on its own, so
the header's state root is exactly what a validator re-executing the block will get
(invariant 2) whatever an executor does with invalid batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from trusted_ledger.chain.block import Block, block_batches_max, block_bytes_max
from trusted_ledger.chain.certificate import CommitCertificate
from trusted_ledger.chain.dependencies import unmet_dependencies
from trusted_ledger.chain.execution import BlockExecutor, ExecutionOutcome
from trusted_ledger.chain.pool import BatchPool, PendingBatch
from trusted_ledger.chain.proposal import (
    proposal_rounds_max,
    sign_proposal,
    single_node_certificate,
)
from trusted_ledger.chain.signing import ChainSigner
from trusted_ledger.chain.store import ChainStore
from trusted_ledger.errors import InternalError, InvalidInput, ProposalRefused
from trusted_ledger.observability.metrics import CHAIN_PUBLISH_SECONDS
from trusted_ledger.txn import Batch

# Room for the header, signature and per-batch length prefixes inside block_bytes_max.
_BLOCK_OVERHEAD_BYTES = 4096


@dataclass(frozen=True)
class PublisherLimits:
    """When to cut a block. Every node of a network should use the same values."""

    block_batches_max: int = 1000
    block_bytes_max: int = 8 * 1024 * 1024
    block_interval_ms: int = 200
    """Longest a pending batch waits for a block that is not yet full."""

    def __post_init__(self) -> None:
        if not 1 <= self.block_batches_max <= block_batches_max:
            raise InvalidInput(f"block_batches_max must lie in [1, {block_batches_max}]")
        if not 1 <= self.block_bytes_max <= block_bytes_max - _BLOCK_OVERHEAD_BYTES:
            raise InvalidInput("block_bytes_max must leave room within the format's bound")
        if self.block_interval_ms < 0:
            raise InvalidInput("block_interval_ms must not be negative")


@dataclass(frozen=True)
class ProposedBlock:
    """A signed block and the execution that produced its state root (to commit with it)."""

    block: Block
    outcome: ExecutionOutcome


class BlockPublisher:
    """Turns pending batches into committed blocks, signed and certified by this node."""

    def __init__(
        self,
        store: ChainStore,
        pool: BatchPool,
        executor: BlockExecutor,
        signer: ChainSigner,
        limits: PublisherLimits = PublisherLimits(),
    ) -> None:
        self._store = store
        self._pool = pool
        self._executor = executor
        self._signer = signer
        self.limits = limits
        # Single-node mode: the round to try first at the height being cut. Every attempt
        # that fails after the guard let it through (HSM lost, disk full) leaves that round
        # spent, so the next attempt starts one further instead of at 0: otherwise each
        # retry would burn one more of the ``proposal_rounds_max`` rounds sign_proposal
        # tries from its first round, and an outage of that many retries would refuse the
        # height for good (issue 8; tests/hsm/test_publisher_outage.py).
        self._round_height = -1
        self._round_from = 0

    def due(self, now_ms: int) -> bool:
        """Whether a block should be cut now: a full block waits, or the oldest batch has
        waited its interval."""
        oldest = self._pool.oldest_added_ms()
        if oldest is None:
            return False
        if now_ms - oldest >= self.limits.block_interval_ms:
            return True
        if len(self._pool) >= self.limits.block_batches_max:
            return True
        return self._pool.byte_size >= self.limits.block_bytes_max

    def publish_if_due(self, now_ms: int) -> Block | None:
        return self.publish(now_ms) if self.due(now_ms) else None

    def publish(self, now_ms: int) -> Block | None:
        """Cut, sign and commit one block from the pool now; None if nothing valid waits."""
        started = time.perf_counter()
        block = self._publish(now_ms)
        if block is not None:
            CHAIN_PUBLISH_SECONDS.observe(time.perf_counter() - started)
        return block

    def _publish(self, now_ms: int) -> Block | None:
        head = self._store.head
        height = head.number + 1 if head is not None else 0
        if height != self._round_height:
            self._round_height, self._round_from = height, 0
        try:
            proposed = self.propose(now_ms, self._round_from)
            if proposed is None:
                return None
            self._round_from = proposed.block.header.consensus_round
            self.commit(proposed, single_node_certificate(self._signer, proposed.block))
        except ProposalRefused:
            # Every round of the window is spent (say, by retries before a restart, which
            # forgets _round_from): the next attempt looks at the window after it.
            self._round_from += proposal_rounds_max
            raise
        except Exception:
            self._round_from += 1
            raise
        return proposed.block

    def propose(self, now_ms: int, first_round: int = 0) -> ProposedBlock | None:
        """Cut, execute and sign (at the first round from ``first_round`` the guard allows)
        the next block, without committing it: what a BFT proposer offers its peers. None
        if nothing valid waits."""
        head = self._store.head
        if head is None:
            raise InternalError("publish needs a genesis block; commit one first")
        candidates = self._pool.candidates(
            self.limits.block_batches_max, self.limits.block_bytes_max
        )
        run = self._execute_valid(self._ready(self._drop_replays(candidates)), head.state_root)
        if run is None:
            return None
        batches, outcome = run
        block = sign_proposal(
            self._signer,
            chain_id=self._store.chain_id,
            number=head.number + 1,
            previous_block_id=head.block_id,
            state_root=outcome.state_root,
            batches=batches,
            # Never before the parent: validators refuse time running backwards.
            timestamp_ms=max(now_ms, head.timestamp_ms),
            first_round=first_round,
        )
        return ProposedBlock(block, outcome)

    def commit(self, proposed: ProposedBlock, certificate: CommitCertificate) -> None:
        """Commit a block this node executed (proposed, or validated as a peer's) with its
        certificate, in one write that also drops the block's pending rows."""
        block, outcome = proposed.block, proposed.outcome
        pending_keys = self._pool.pending_keys(block.batch_ids)
        self._store.commit(block, certificate, outcome.state_update, outcome.receipts, pending_keys)
        self._pool.remove(block.batch_ids)

    def _drop_replays(self, candidates: Sequence[PendingBatch]) -> list[Batch]:
        """Candidates minus batches already committed (removed) and batches whose
        transactions are committed or repeat an earlier candidate's (rejected)."""
        batches = [pending.batch for pending in candidates]
        committed_batches = self._store.batches_committed_among(
            [b.header_signature for b in batches]
        )
        if committed_batches:
            self._pool.remove(committed_batches)
        committed = self._store.committed_among(
            [t.header_signature for b in batches for t in b.transactions]
        )
        kept: list[Batch] = []
        seen: set[str] = set()
        for batch in batches:
            if batch.header_signature in committed_batches:
                continue
            ids = [t.header_signature for t in batch.transactions]
            if any(tid in committed for tid in ids):
                self._pool.reject(batch.header_signature, "replays a committed transaction")
                continue
            if any(tid in seen for tid in ids):
                self._pool.reject(
                    batch.header_signature, "repeats a transaction of an earlier pending batch"
                )
                continue
            seen.update(ids)
            kept.append(batch)
        return kept

    def _ready(self, batches: list[Batch]) -> list[Batch]:
        """The batches this node can execute now, in order. The others wait in the pool
        with the reason noted for their status; a batch after a waiting one is still
        proposed unless it depends on it (dependencies are checked next)."""
        ready: list[Batch] = []
        held: set[str] = set()  # transactions of batches that wait
        for batch in batches:
            reason = self._executor.waiting_reason(batch)
            if reason is None:
                blocked = next(
                    (d for t in batch.transactions for d in t.header.dependencies if d in held),
                    None,
                )
                if blocked is not None:
                    # Proposing it would reject it for a dependency that is only late here.
                    reason = f"waiting for dependency {blocked[:16]}..., itself waiting"
            if reason is None:
                ready.append(batch)
                continue
            self._pool.note_waiting(batch.header_signature, reason)
            held.update(t.header_signature for t in batch.transactions)
        self._pool.clear_waiting(b.header_signature for b in ready)
        return ready

    def _execute_valid(
        self, batches: list[Batch], base_root: bytes
    ) -> tuple[list[Batch], ExecutionOutcome] | None:
        """Execute ``batches``, dropping invalid ones (and those depending on them) until a
        run is all valid; that run and its batches, or None if no batch survives.

        Dropping a batch changes the state later batches see, so the run after a drop may
        find new invalid batches; every pass but the last drops at least one batch.
        """
        for _ in range(len(batches) + 1):
            unmet = unmet_dependencies(batches, self._store)
            for batch_id, dependency in unmet.items():
                self._pool.reject(
                    batch_id, f"dependency {dependency} is neither committed nor earlier"
                )
            batches = [b for b in batches if b.header_signature not in unmet]
            if not batches:
                return None
            outcome = self._executor.execute(batches, base_root)
            if not outcome.invalid:
                return batches, outcome
            for result in outcome.invalid:
                self._pool.reject(
                    result.batch_id, result.reason, transaction_id=result.invalid_transaction_id
                )
            invalid = {result.batch_id for result in outcome.invalid}
            batches = [b for b in batches if b.header_signature not in invalid]
        raise InternalError("execution keeps finding new invalid batches: not deterministic")
