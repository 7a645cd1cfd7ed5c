"""The proposer side of the BFT driver: a block for the machine's ``RequestValue``.

When the machine asks this node for a value, ``Proposer`` has the publisher build a block from
the pool on the driver's chain worker and sign it as proposer, and hands the block and its
execution back to the driver, which passes the block id to the machine. Only a block signed
for exactly the requested height and round is handed back, and only while that request is
still the pending one: a block that is ready after the height moved on, or after the machine
asked again, is never sent. An empty pool builds nothing, since the publisher makes no empty
blocks; the driver's poll asks again once batches arrive.

The last block this member signed as proposer is written to a ``ProposalFile`` before it
goes anywhere. After a crash between signing and sending, the guard would refuse a second
proposal signature for that round, so the round would be lost. Instead, at the first request
after a restart, the saved block is re-executed and proposed again if it is this member's,
on the current head, for exactly the height and round asked; otherwise it is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from trusted_ledger.chain.block import decode_block
from trusted_ledger.chain.pool import BatchPool
from trusted_ledger.chain.publisher import BlockPublisher, ProposedBlock
from trusted_ledger.chain.store import ChainStore
from trusted_ledger.chain.validator import BlockValidator
from trusted_ledger.consensus import RequestValue
from trusted_ledger.errors import TrustedLedgerError
from trusted_ledger.node.bft_signing import member_id
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.txn import TxnLimits

log = get_logger("node.bft")

_T = TypeVar("_T")


class ProposalFile(Protocol):
    """Where the driver keeps the last block it signed as proposer, durably (node/catchup.py
    ``OwnProposalFile``): written before the proposal leaves, so a member that crashes
    between signing and sending re-proposes the same signed block after a restart instead
    of losing the round to its own guard (which refuses a second proposal signature)."""

    def save(self, block: bytes) -> None: ...

    def load(self) -> bytes | None: ...


class ChainWork(Protocol):
    """The driver's chain worker: run ``work`` on its one thread, then ``done`` (or
    ``on_error``) on the event loop."""

    def __call__(
        self,
        work: Callable[[], _T],
        done: Callable[[_T], None],
        *,
        on_error: Callable[[BaseException], None],
    ) -> None: ...


class Proposer:
    """Builds (or re-uses) this member's block for the pending ``RequestValue``.

    ``me`` is this node's member id now (it changes with the membership); ``on_value`` gets
    the request and its block once the block is built for exactly that height and round and
    the request is still pending.
    """

    def __init__(
        self,
        *,
        store: ChainStore,
        pool: BatchPool,
        publisher: BlockPublisher,
        validator: BlockValidator,
        txn_limits: TxnLimits,
        clock_ms: Callable[[], int],
        proposal_file: ProposalFile | None,
        submit: ChainWork,
        me: Callable[[], bytes],
        on_value: Callable[[RequestValue, ProposedBlock], None],
    ) -> None:
        self._store = store
        self._pool = pool
        self._publisher = publisher
        self._validator = validator
        self._txn_limits = txn_limits
        self._clock_ms = clock_ms
        self._proposal_file = proposal_file
        self._submit = submit
        self._me = me
        self._on_value = on_value
        self._awaiting_value: RequestValue | None = None
        self._proposing = False
        self._saved_proposal = _load_saved(proposal_file)

    def request(self, request: RequestValue) -> None:
        """The machine asks for a value: remember the request and try to build a block."""
        self._awaiting_value = request
        self.try_propose()

    def forget(self) -> None:
        """The height moved on: a block still being built for it is never sent."""
        self._awaiting_value = None

    def try_propose(self) -> None:
        """Build a block for the pending ``RequestValue`` on the worker thread. With an empty
        pool nothing is built (the publisher makes no empty blocks); the driver's poll
        retries."""
        request = self._awaiting_value
        if request is None or self._proposing or len(self._pool) == 0:
            return
        self._proposing = True
        now_ms = self._clock_ms()

        def work() -> ProposedBlock | None:
            reused = self._reuse_saved_proposal(request)
            if reused is not None:
                return reused
            proposed = self._publisher.propose(now_ms, first_round=request.round)
            if proposed is not None and self._proposal_file is not None:
                self._proposal_file.save(proposed.block.encode())
            return proposed

        self._submit(
            work,
            lambda result: self._proposed(request, result),
            on_error=lambda exc: self._propose_failed(request, exc),
        )

    def _reuse_saved_proposal(self, request: RequestValue) -> ProposedBlock | None:
        """The block this member signed for exactly this height and round before a restart,
        re-executed (worker thread); None if there is none or it is for another position."""
        data, self._saved_proposal = self._saved_proposal, None
        if data is None:
            return None
        try:
            block = decode_block(data, self._txn_limits, verify_batch_signatures=False)
        except TrustedLedgerError as exc:
            log.warning("bft.saved_proposal_unreadable", error=str(exc))
            return None
        head = self._store.head
        if (
            head is None
            or block.number != request.height
            or block.header.consensus_round != request.round
            or block.header.previous_block_id != head.block_id
            or member_id(block.header.proposer) != self._me()
        ):
            return None
        outcome = self._validator.validate(block)
        log.info(
            "bft.saved_proposal_reused",
            height=request.height,
            round=request.round,
            block=block.id.hex()[:16],
        )
        return ProposedBlock(block, outcome)

    def _proposed(self, request: RequestValue, proposed: ProposedBlock | None) -> None:
        self._proposing = False
        if self._awaiting_value != request:
            return  # the round moved on; the block (if any) is never sent
        if proposed is None:
            return  # nothing valid waits; the driver's poll tries again when the pool changes
        block = proposed.block
        if block.number != request.height or block.header.consensus_round != request.round:
            # The guard refused round r (we signed a proposal there before a restart) and the
            # publisher signed a later round: that block cannot be this round's proposal.
            log.warning(
                "bft.proposal_round_moved",
                height=request.height,
                round=request.round,
                signed_round=block.header.consensus_round,
            )
            self._awaiting_value = None
            return
        self._awaiting_value = None
        self._on_value(request, proposed)

    def _propose_failed(self, request: RequestValue, exc: BaseException) -> None:
        self._proposing = False
        log.error("bft.propose_failed", height=request.height, round=request.round, error=str(exc))
        if self._awaiting_value == request:
            self._awaiting_value = None  # the propose timeout moves the round on


def _load_saved(proposal_file: ProposalFile | None) -> bytes | None:
    if proposal_file is None:
        return None
    try:
        return proposal_file.load()
    except OSError as exc:
        # Losing it costs one round at most (the guard still refuses a second signature).
        log.warning("bft.saved_proposal_unreadable", error=repr(exc))
        return None
