"""Trusted Ledger's processor kit: run transaction handlers outside the node.

A handler written for the built-in pipeline (``processing.TransactionHandler``) runs here
unchanged: ``TransactionProcessor`` connects to a node's processor endpoint over Sawtooth's
validator <-> transaction-processor protocol (ZMQ), registers the handler's family versions
and applies the transactions the node sends, handing the handler a ``RemoteContext`` with
the same methods as the node's ``HandlerContext``. ``docs/processor-kit.md`` tells how to
write, run and deploy one; ``sawtooth_compat`` makes the official Sawtooth Python SDK run
on this Python.
"""

from trusted_ledger.processor.context import RemoteContext
from trusted_ledger.processor.core import (
    PROTOCOL_VERSION,
    TransactionProcessor,
    max_occupancy_default,
)

__all__ = ["PROTOCOL_VERSION", "RemoteContext", "TransactionProcessor", "max_occupancy_default"]
