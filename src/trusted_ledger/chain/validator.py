"""The block validator: a proposed block is committed only if re-executing it gives its root.

Order of checks, cheapest first and each refusal naming its mismatch: the block must extend
the head (chain id, number, previous id, timestamp not before the parent's); its proposer
must be a member *of the block's height* (chain/membership.py: the membership in the state
the block builds on) whose signature over the id verifies; the batch count and Merkle root must
describe the batches; nothing in it may be committed already, and every declared dependency
must be committed or earlier in the block; then the batches are
re-executed on the parent's state, every batch must be valid and the resulting state root
must equal the header's (invariant 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from trusted_ledger.chain.block import Block, check_batches_match_header, check_unique_ids
from trusted_ledger.chain.certificate import CommitCertificate, Membership
from trusted_ledger.chain.dependencies import unmet_dependencies
from trusted_ledger.chain.execution import BlockExecutor, ExecutionOutcome
from trusted_ledger.chain.membership import ChainMember, MembershipSchedule
from trusted_ledger.chain.store import ChainStore
from trusted_ledger.errors import (
    BlockContainsInvalidBatch,
    BlockDoesNotExtendHead,
    BlockRejected,
    BlockReplaysCommitted,
    BlockSignatureInvalid,
    InternalError,
    MalformedBlock,
    StateRootMismatch,
)
from trusted_ledger.observability.metrics import CHAIN_BLOCKS_REJECTED_TOTAL


class BlockValidator:
    """Checks proposed blocks against the head of ``store`` and commits certified ones.

    ``membership`` is the bootstrap membership (the members file, or bare keys): in effect at
    heights whose parent state holds no ``tl.consensus.members``; ``memberships.at(h)``
    answers for any height."""

    def __init__(
        self,
        store: ChainStore,
        executor: BlockExecutor,
        membership: Membership | Sequence[ChainMember],
    ) -> None:
        self._store = store
        self._executor = executor
        self.memberships = MembershipSchedule(store, membership)

    @property
    def membership(self) -> Membership:
        """The bootstrap membership (heights whose parent state holds no on-chain one)."""
        return self.memberships.bootstrap.membership

    @membership.setter
    def membership(self, bootstrap: Membership) -> None:
        self.memberships = MembershipSchedule(self._store, bootstrap)

    def membership_at(self, height: int) -> Membership:
        """The keys whose votes certify block ``height`` (block ``height - 1`` committed)."""
        return self.memberships.at(height).membership

    def validate(self, block: Block) -> ExecutionOutcome:
        """Check ``block`` as the next block; return its execution for the commit."""
        try:
            return self._validate(block)
        except (BlockRejected, MalformedBlock) as exc:
            CHAIN_BLOCKS_REJECTED_TOTAL.labels(reason=type(exc).__name__).inc()
            raise

    def commit(self, block: Block, certificate: CommitCertificate) -> ExecutionOutcome:
        """Verify the certificate, validate the block and commit both in one write."""
        certificate.verify(self.membership_at(block.number), block)
        outcome = self.validate(block)
        self._store.commit(block, certificate, outcome.state_update, outcome.receipts)
        return outcome

    def _validate(self, block: Block) -> ExecutionOutcome:
        header = block.header
        head = self._store.head
        if head is None:
            raise BlockDoesNotExtendHead("the chain has no genesis block yet")
        if header.chain_id != self._store.chain_id:
            raise BlockDoesNotExtendHead(
                f"block is for chain {header.chain_id!r}, not {self._store.chain_id!r}"
            )
        if header.number != head.number + 1 or header.previous_block_id != head.block_id:
            raise BlockDoesNotExtendHead(
                f"block {header.number} on {header.previous_block_id.hex()[:16]} does not "
                f"extend head {head.number} ({head.block_id.hex()[:16]})"
            )
        if header.timestamp_ms < head.timestamp_ms:
            raise BlockDoesNotExtendHead(
                f"block timestamp {header.timestamp_ms} ms is before its parent's "
                f"{head.timestamp_ms} ms"
            )
        if header.proposer not in self.membership_at(header.number):
            raise BlockSignatureInvalid(
                f"proposer {header.proposer.fingerprint[:16]} is not a member at height "
                f"{header.number}"
            )
        block.verify_proposer_signature()
        check_batches_match_header(header, block.batches)
        check_unique_ids(block.batches)
        self._check_nothing_committed(block)
        self._check_dependencies(block)
        outcome = self._executor.execute(block.batches, head.state_root)
        self._check_outcome(block, outcome)
        return outcome

    def _check_nothing_committed(self, block: Block) -> None:
        batches = self._store.batches_committed_among(block.batch_ids)
        transactions = self._store.committed_among(block.transaction_ids)
        if batches or transactions:
            some = sorted(batches or transactions)[0]
            raise BlockReplaysCommitted(
                f"block {block.number} carries {len(batches)} committed batches and "
                f"{len(transactions)} committed transactions, e.g. {some[:16]}..."
            )

    def _check_dependencies(self, block: Block) -> None:
        unmet = unmet_dependencies(block.batches, self._store)
        if unmet:
            batch_id, dependency = next(iter(unmet.items()))
            raise BlockContainsInvalidBatch(
                f"block {block.number} batch {block.batch_ids.index(batch_id)} "
                f"({batch_id[:16]}...) depends on transaction {dependency[:16]}..., which is "
                "neither committed nor earlier in the block"
            )

    @staticmethod
    def _check_outcome(block: Block, outcome: ExecutionOutcome) -> None:
        results = outcome.batch_results
        if [r.batch_id for r in results] != list(block.batch_ids):
            raise InternalError("the executor's batch results do not match the block's batches")
        for index, result in enumerate(results):
            if not result.valid:
                raise BlockContainsInvalidBatch(
                    f"block {block.number} batch {index} ({result.batch_id[:16]}...) is "
                    f"invalid: {result.reason}"
                )
        if outcome.state_update.root != outcome.state_root:
            raise InternalError("the executor's state update and state root disagree")
        if outcome.state_root != block.header.state_root:
            raise StateRootMismatch(
                f"block {block.number} claims state root {block.header.state_root.hex()}, "
                f"re-execution gives {outcome.state_root.hex()}"
            )
