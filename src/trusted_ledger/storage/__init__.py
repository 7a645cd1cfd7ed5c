"""Storage: a small database interface, RocksDB and in-memory engines, atomic write batches.

Imports nothing from the project but ``errors``: every layer above may use it.
"""

from trusted_ledger.storage.interface import (
    DEFAULT_COLUMN_FAMILY,
    BatchEntry,
    BatchOp,
    Database,
    Snapshot,
    WriteBatch,
    key_bytes_max,
    value_bytes_max,
)
from trusted_ledger.storage.memory import MemoryDatabase
from trusted_ledger.storage.rocks import RocksDatabase

__all__ = [
    "DEFAULT_COLUMN_FAMILY",
    "BatchEntry",
    "BatchOp",
    "Database",
    "MemoryDatabase",
    "RocksDatabase",
    "Snapshot",
    "WriteBatch",
    "key_bytes_max",
    "value_bytes_max",
]
