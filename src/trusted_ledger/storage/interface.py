"""The database interface every storage engine implements, and the write batch they share.

A database is a set of named column families, each an ordered map from bytes to bytes.
Writes go through a ``WriteBatch``: one batch is applied atomically across all column
families it touches (all of it or none of it, also after a crash), optionally synced to disk
before ``write`` returns. The chain layer relies on that to commit a block and its state in
one write.

Engines subclass ``Database`` and implement the ``_engine_*`` methods; argument checks
(closed handle, unknown column family, key and value types and sizes) live here, once, so that
every engine fails the same way on the same input.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Self

from trusted_ledger.errors import InvalidInput, StorageClosed, UnknownColumnFamily
from trusted_ledger.observability.metrics import STORAGE_WRITE_BYTES_TOTAL, STORAGE_WRITE_SECONDS

DEFAULT_COLUMN_FAMILY = "default"

key_bytes_max = 4096
"""Longest key accepted. Ledger keys are ids and addresses (32-70 bytes); a long key is a bug."""

value_bytes_max = 64 * 1024 * 1024
"""Largest value accepted (64 MiB): above every block size bound, far below RocksDB's 3 GiB."""

column_family_name_chars_max = 64


class BatchOp(Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class BatchEntry:
    op: BatchOp
    column_family: str
    key: bytes
    value: bytes | None  # None exactly when op is DELETE


def check_key(key: object) -> bytes:
    if not isinstance(key, bytes):
        raise InvalidInput(f"storage keys are bytes, not {type(key).__name__}")
    if len(key) > key_bytes_max:
        raise InvalidInput(f"storage key of {len(key)} bytes exceeds key_bytes_max={key_bytes_max}")
    return key


def check_value(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidInput(f"storage values are bytes, not {type(value).__name__}")
    if len(value) > value_bytes_max:
        raise InvalidInput(
            f"storage value of {len(value)} bytes exceeds value_bytes_max={value_bytes_max}"
        )
    return value


def check_column_family_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > column_family_name_chars_max:
        raise InvalidInput(
            f"a column family name is a non-empty string of at most "
            f"{column_family_name_chars_max} characters, got {name!r}"
        )
    return name


class WriteBatch:
    """Puts and deletes over any column families, applied in order by ``Database.write``.

    Later entries win over earlier ones for the same key, as in RocksDB. The batch is engine
    independent, so code that builds it (state updates, block commits) needs no database.
    """

    __slots__ = ("_byte_size", "_entries")

    def __init__(self) -> None:
        self._entries: list[BatchEntry] = []
        self._byte_size = 0

    def put(self, column_family: str, key: bytes, value: bytes) -> None:
        check_column_family_name(column_family)
        entry = BatchEntry(BatchOp.PUT, column_family, check_key(key), check_value(value))
        self._entries.append(entry)
        self._byte_size += len(key) + len(value)

    def delete(self, column_family: str, key: bytes) -> None:
        check_column_family_name(column_family)
        self._entries.append(BatchEntry(BatchOp.DELETE, column_family, check_key(key), None))
        self._byte_size += len(key)

    @property
    def entries(self) -> tuple[BatchEntry, ...]:
        return tuple(self._entries)

    @property
    def byte_size(self) -> int:
        """Sum of key and value lengths: what the batch costs to write, before overhead."""
        return self._byte_size

    def column_families(self) -> set[str]:
        return {entry.column_family for entry in self._entries}

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"WriteBatch(entries={len(self._entries)}, bytes={self._byte_size})"


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def scan_bounds(
    prefix: bytes, start: bytes | None, stop: bytes | None
) -> tuple[bytes, bytes | None]:
    """Combine a prefix with optional [start, stop) bounds into one half-open range."""
    lower = prefix if start is None or start < prefix else start
    upper = prefix_upper_bound(prefix)
    if stop is not None and (upper is None or stop < upper):
        upper = stop
    return lower, upper


class Snapshot(abc.ABC):
    """Point reads across column families, all as of one instant.

    Only point reads: rocksdict 0.3.29 snapshot iterators read the live database instead of
    the snapshot (measured), and one ``Database.iterate`` call is already consistent on its
    own (RocksDB iterators pin the sequence number they were created at).
    """

    @abc.abstractmethod
    def get(self, column_family: str, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Database(abc.ABC):
    """An open database: column families of ordered bytes -> bytes maps."""

    engine_name = "abstract"
    """The ``engine`` label of this engine's metrics."""

    def __init__(self, column_families: Iterable[str], description: str) -> None:
        names = {DEFAULT_COLUMN_FAMILY}
        names.update(check_column_family_name(cf) for cf in column_families)
        self._column_families = frozenset(names)
        self._description = description
        self._closed = False
        # One writer at a time: batches apply in a single order, and snapshots are taken
        # between batches, never in the middle of one.
        self._write_lock = threading.Lock()
        self._write_seconds = {
            synced: STORAGE_WRITE_SECONDS.labels(self.engine_name, str(synced).lower())
            for synced in (False, True)
        }
        self._write_bytes = STORAGE_WRITE_BYTES_TOTAL.labels(self.engine_name)

    # --- public API: checks here, engine work in _engine_* -----------------------------

    @property
    def column_families(self) -> frozenset[str]:
        return self._column_families

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, column_family: str, key: bytes) -> bytes | None:
        self._check_open()
        return self._engine_get(self._check_cf(column_family), check_key(key))

    def put(self, column_family: str, key: bytes, value: bytes, *, sync: bool = False) -> None:
        batch = WriteBatch()
        batch.put(column_family, key, value)
        self.write(batch, sync=sync)

    def delete(self, column_family: str, key: bytes, *, sync: bool = False) -> None:
        batch = WriteBatch()
        batch.delete(column_family, key)
        self.write(batch, sync=sync)

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        """Apply every entry of ``batch`` atomically; with ``sync``, durable on return."""
        self._check_open()
        if not isinstance(batch, WriteBatch):
            raise InvalidInput(f"write() takes a storage.WriteBatch, not {type(batch).__name__}")
        # Every column family is checked before anything is applied: a bad name fails the
        # whole batch, never half of it.
        for cf in sorted(batch.column_families()):
            self._check_cf(cf)
        if not len(batch):
            return
        with self._write_lock:
            self._check_open()
            started = time.perf_counter()
            self._engine_write(batch, sync=sync)
            self._write_seconds[sync].observe(time.perf_counter() - started)
        self._write_bytes.inc(batch.byte_size)

    def iterate(
        self,
        column_family: str,
        *,
        prefix: bytes = b"",
        start: bytes | None = None,
        stop: bytes | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``prefix`` and start <= key < stop, in ascending key order.

        The iteration sees the database as of the call: writes made while it runs are not
        seen. Using it after ``close()`` raises ``StorageClosed``.
        """
        self._check_open()
        cf = self._check_cf(column_family)
        check_key(prefix)
        lower, upper = scan_bounds(
            prefix,
            None if start is None else check_key(start),
            None if stop is None else check_key(stop),
        )
        if upper is not None and lower >= upper:
            return iter(())
        return self._engine_iterate(cf, lower, upper)

    def snapshot(self) -> Snapshot:
        self._check_open()
        with self._write_lock:
            return self._engine_snapshot()

    def close(self) -> None:
        """Release the database (idempotent). Open iterators and snapshots stop working."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._engine_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"{type(self).__name__}({self._description}, {state})"

    # --- shared checks ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosed(
                f"{self._description} is closed",
                hint="open a new handle; a closed handle cannot be reused",
            )

    def _check_cf(self, column_family: str) -> str:
        if column_family not in self._column_families:
            known = ", ".join(sorted(self._column_families))
            raise UnknownColumnFamily(
                f"column family {column_family!r} is not open in {self._description}; "
                f"open ones: {known}",
                hint="name it in column_families when opening the database",
            )
        return column_family

    # --- engine hooks (arguments already checked, handle open) --------------------------

    @abc.abstractmethod
    def _engine_get(self, column_family: str, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def _engine_write(self, batch: WriteBatch, *, sync: bool) -> None: ...

    @abc.abstractmethod
    def _engine_iterate(
        self, column_family: str, lower: bytes, upper: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]: ...

    @abc.abstractmethod
    def _engine_snapshot(self) -> Snapshot: ...

    @abc.abstractmethod
    def _engine_close(self) -> None: ...
