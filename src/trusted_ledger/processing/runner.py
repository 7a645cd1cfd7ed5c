"""Running one transaction: route to its handler, check permission, apply, retry, time.

Shared by every scheduler, so that the serial and parallel ones cannot disagree on what a
transaction does given the same prior writes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from trusted_ledger.errors import (
    FamilyNotServed,
    InternalError,
    InvalidInput,
    InvalidTransaction,
    TemporarilyUnavailable,
    TransactionProcessingFailed,
)
from trusted_ledger.observability.metrics import (
    PROCESSING_HANDLER_RETRIES_TOTAL,
    PROCESSING_TRANSACTION_SECONDS,
    PROCESSING_TRANSACTIONS_TOTAL,
)
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.handler import HandlerRegistry, TransactionHandler
from trusted_ledger.processing.receipts import TransactionReceipt
from trusted_ledger.state import StateView, TransactionContext
from trusted_ledger.txn import Transaction

handler_retries_max = 3
"""Extra attempts after a handler raised InternalError, before the block's execution fails."""
handler_retry_backoff_ms = 5
"""Pause before retry n is n times this: long enough for a restarting processor, short
enough not to stall a block for long."""

Prior = Mapping[str, bytes | None]


class SubmissionPolicy(Protocol):
    """Decides whether a signer may submit to a family; raises ``SubmissionNotPermitted``."""

    def check(self, signer_public_key: str, family_name: str) -> None: ...


@dataclass(frozen=True, slots=True)
class TransactionOutcome:
    """A valid transaction's writes and receipt, or an invalid one's reason."""

    transaction_id: str
    writes: Mapping[str, bytes | None]
    receipt: TransactionReceipt | None  # None exactly when invalid
    reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.receipt is not None


class TransactionRunner:
    """Executes transactions of one block against that block's base state (thread-safe)."""

    def __init__(
        self,
        registry: HandlerRegistry,
        base: StateView,
        policy: SubmissionPolicy | None = None,
        *,
        retries_max: int = handler_retries_max,
    ) -> None:
        self._registry = registry
        self._base = base
        self._policy = policy
        self._retries_max = retries_max

    def run(self, transaction: Transaction, prior: Prior) -> TransactionOutcome:
        """The outcome of ``transaction`` when the writes before it are ``prior``.

        Raises ``TransactionProcessingFailed`` when the handler keeps failing internally.
        """
        header = transaction.header
        family = header.family_name
        label = family if family in self._registry.families() else "unknown"
        started = time.perf_counter()
        try:
            handler = self._registry.lookup(family, header.family_version)
            _check_outputs_in_namespaces(transaction, handler)
            if self._policy is not None:
                self._policy.check(header.signer_public_key, family)
            context = self._apply_with_retries(handler, transaction, prior, label)
        except InvalidInput as exc:
            # Deterministic: the same transaction on the same state fails the same way on
            # every node (bad payload, business rule, undeclared address). A family no
            # handler serves is not among them: ``FamilyNotServed`` is transient and
            # propagates, since which families a node serves depends on its processors.
            PROCESSING_TRANSACTIONS_TOTAL.labels(label, "invalid").inc()
            # The message only: hints may name this node's configuration (its registered
            # families) or a library's wording, and the reason must be alike on every node.
            return TransactionOutcome(transaction.id, {}, None, exc.message)
        finally:
            PROCESSING_TRANSACTION_SECONDS.labels(label).observe(time.perf_counter() - started)
        PROCESSING_TRANSACTIONS_TOTAL.labels(label, "valid").inc()
        receipt = TransactionReceipt(
            transaction_id=transaction.id,
            family_name=family,
            state_changes=context.state_changes(),
            events=context.events,
            data=context.receipt_data,
        )
        return TransactionOutcome(transaction.id, dict(context.writes), receipt)

    def _apply_with_retries(
        self, handler: TransactionHandler, transaction: Transaction, prior: Prior, label: str
    ) -> HandlerContext:
        header = transaction.header
        attempt = 0
        while True:
            # A fresh context per attempt: a failed attempt's partial writes must not leak.
            context = HandlerContext(
                TransactionContext(self._base, header.inputs, header.outputs, prior)
            )
            try:
                handler.apply(transaction, context)
                return context
            except (InvalidInput, FamilyNotServed):
                # FamilyNotServed: the family's last processor left mid-block. Not a handler
                # failure to retry: the block stops, and its batches wait for a processor.
                raise
            except (InternalError, TemporarilyUnavailable) as exc:
                if attempt >= self._retries_max:
                    raise TransactionProcessingFailed(
                        f"handler for {header.family_name!r} failed {attempt + 1} times on "
                        f"transaction {transaction.id[:16]}...: {exc}",
                        transaction_id=transaction.id,
                        hint="the block was not executed; check the handler or its processor",
                    ) from exc
                attempt += 1
                PROCESSING_HANDLER_RETRIES_TOTAL.labels(label).inc()
                time.sleep(handler_retry_backoff_ms * attempt / 1000)
            except Exception as exc:
                # A handler bug is not a verdict on the transaction either: recording it as
                # invalid could split nodes that run different handler builds.
                raise TransactionProcessingFailed(
                    f"handler for {header.family_name!r} raised {type(exc).__name__} on "
                    f"transaction {transaction.id[:16]}...: {exc}",
                    transaction_id=transaction.id,
                    hint="a bug in the handler: fix it; the block was not executed",
                ) from exc


def _check_outputs_in_namespaces(transaction: Transaction, handler: TransactionHandler) -> None:
    """A family writes only its own namespaces: no transaction can overwrite another
    family's state (an asset balance, an identity role) by declaring its address."""
    namespaces = handler.namespaces
    for prefix in transaction.header.outputs:
        if not any(prefix.startswith(namespace) for namespace in namespaces):
            raise InvalidTransaction(
                f"output {prefix!r} lies outside family "
                f"{transaction.header.family_name!r}'s namespaces {list(namespaces)}",
                hint="declare outputs under the family's namespace prefix",
            )
