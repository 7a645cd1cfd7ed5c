"""Processing: transaction handlers, the family registry, schedulers and the block executor.

Imports ``txn``, ``state``, ``storage``, ``hashing``, ``errors`` and ``observability`` only.
Payload and state formats of the built-in families: docs/families.md.
"""

from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.executor import BlockExecution, BlockExecutor, PolicyFactory
from trusted_ledger.processing.handler import HandlerRegistry, TransactionHandler
from trusted_ledger.processing.parallel import ParallelScheduler
from trusted_ledger.processing.plan import BlockPlan
from trusted_ledger.processing.receipts import (
    BatchResult,
    Event,
    StateChange,
    TransactionReceipt,
)
from trusted_ledger.processing.runner import SubmissionPolicy, TransactionOutcome
from trusted_ledger.processing.scheduler import BatchVerdict, Scheduler, SerialScheduler

__all__ = [
    "BatchResult",
    "BatchVerdict",
    "BlockExecution",
    "BlockExecutor",
    "BlockPlan",
    "Event",
    "HandlerContext",
    "HandlerRegistry",
    "ParallelScheduler",
    "PolicyFactory",
    "Scheduler",
    "SerialScheduler",
    "StateChange",
    "SubmissionPolicy",
    "TransactionHandler",
    "TransactionOutcome",
    "TransactionReceipt",
]
