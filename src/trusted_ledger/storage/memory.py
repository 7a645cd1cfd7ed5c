"""An in-memory database with the same semantics as the RocksDB one.

Used by unit tests and the deterministic simulation, where a real disk would only add noise.
Each column family is a dict plus a sorted key list (bisect), which keeps point reads O(1)
and range scans in key order without a third-party sorted container.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from trusted_ledger.errors import StorageClosed
from trusted_ledger.storage.interface import BatchOp, Database, Snapshot, WriteBatch


class _ColumnFamily:
    __slots__ = ("items", "sorted_keys")

    def __init__(self) -> None:
        self.items: dict[bytes, bytes] = {}
        self.sorted_keys: list[bytes] = []

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self.items:
            bisect.insort(self.sorted_keys, key)
        self.items[key] = value

    def delete(self, key: bytes) -> None:
        if self.items.pop(key, None) is not None:
            del self.sorted_keys[bisect.bisect_left(self.sorted_keys, key)]

    def range(self, lower: bytes, upper: bytes | None) -> list[tuple[bytes, bytes]]:
        first = bisect.bisect_left(self.sorted_keys, lower)
        last = (
            len(self.sorted_keys) if upper is None else bisect.bisect_left(self.sorted_keys, upper)
        )
        return [(key, self.items[key]) for key in self.sorted_keys[first:last]]


class _MemorySnapshot(Snapshot):
    def __init__(self, owner: MemoryDatabase, copies: dict[str, dict[bytes, bytes]]) -> None:
        self._owner = owner
        self._copies: dict[str, dict[bytes, bytes]] | None = copies

    def get(self, column_family: str, key: bytes) -> bytes | None:
        self._owner._check_open()
        self._owner._check_cf(column_family)
        if self._copies is None:
            raise StorageClosed("snapshot was released", hint="take a new snapshot")
        return self._copies[column_family].get(key)

    def release(self) -> None:
        self._copies = None


class MemoryDatabase(Database):
    """A database that lives and dies with the process."""

    engine_name = "memory"

    def __init__(self, column_families: Iterable[str] = (), name: str = "memory") -> None:
        super().__init__(column_families, f"in-memory database {name!r}")
        self._families = {cf: _ColumnFamily() for cf in self.column_families}

    def _engine_get(self, column_family: str, key: bytes) -> bytes | None:
        return self._families[column_family].items.get(key)

    def _engine_write(self, batch: WriteBatch, *, sync: bool) -> None:
        # Nothing here can fail half-way: names were checked and entries are validated
        # bytes, so applying in order under the write lock is atomic for every reader.
        del sync  # memory has nothing to sync
        for entry in batch.entries:
            family = self._families[entry.column_family]
            if entry.op is BatchOp.PUT:
                assert entry.value is not None
                family.put(entry.key, entry.value)
            else:
                family.delete(entry.key)

    def _engine_iterate(
        self, column_family: str, lower: bytes, upper: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        # Copied eagerly, under the lock: the scan then sees one instant, as RocksDB does.
        with self._write_lock:
            rows = self._families[column_family].range(lower, upper)
        return self._guarded(rows)

    def _guarded(self, rows: list[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        for row in rows:
            self._check_open()
            yield row

    def _engine_snapshot(self) -> Snapshot:
        # O(keys) copy: fine for tests and simulation sizes; RocksDB's is O(1).
        copies = {cf: dict(family.items) for cf, family in self._families.items()}
        return _MemorySnapshot(self, copies)

    def _engine_close(self) -> None:
        self._families = {}
