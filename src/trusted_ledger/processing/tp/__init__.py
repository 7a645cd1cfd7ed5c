"""Out-of-process transaction processors over Hyperledger Sawtooth's TP protocol (ZMQ).

``ProcessorServer`` binds a ROUTER socket that processors written with Sawtooth's SDKs (or
``trusted_ledger.processor``) connect to; each family version they register becomes an
``ExternalHandler`` in the node's ``HandlerRegistry``, so schedulers run them like built-in
families. Imports ``processing``, ``state``, ``txn``, ``errors`` and ``observability`` only.
The protocol as served: docs/processors.md.
"""

from trusted_ledger.processing.tp.dispatch import (
    PROTOCOL_VERSION,
    Dispatcher,
    ProcessorInfo,
    max_occupancy_default,
    max_occupancy_max,
)
from trusted_ledger.processing.tp.external import AttemptBuffer, ExternalHandler
from trusted_ledger.processing.tp.messages import message_bytes_max
from trusted_ledger.processing.tp.server import ProcessorServer

__all__ = [
    "PROTOCOL_VERSION",
    "AttemptBuffer",
    "Dispatcher",
    "ExternalHandler",
    "ProcessorInfo",
    "ProcessorServer",
    "max_occupancy_default",
    "max_occupancy_max",
    "message_bytes_max",
]
