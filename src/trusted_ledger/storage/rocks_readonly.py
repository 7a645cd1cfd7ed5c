"""A node's chain database opened read-only, beside the running node.

RocksDB lets any number of read-only openers share a directory whose LOCK a writer holds:
the reader sees what was written (flushed tables and the write-ahead log) when it opened,
and never writes (no LOCK taken, no compaction, no WAL). That is exactly an export's need:
a consistent view of the committed chain while the node keeps committing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import rocksdict

from trusted_ledger.errors import DatabaseNotFound, InvalidInput, StorageFailure
from trusted_ledger.storage import Database, WriteBatch
from trusted_ledger.storage.interface import DEFAULT_COLUMN_FAMILY, Snapshot


class ReadOnlyRocksDatabase(Database):
    """Gets only; ``write`` and ``snapshot`` raise. Close it when done."""

    engine_name = "rocksdb-read-only"

    def __init__(self, path: Path) -> None:
        if not (path / "CURRENT").is_file():
            raise DatabaseNotFound(
                f"no chain database at {path}",
                hint="point --config at the node's node.toml (its [node] data_dir holds chain/)",
            )
        options = rocksdict.Options(raw_mode=True)
        try:
            names = rocksdict.Rdict.list_cf(str(path), options)
            cf_options = {
                name: rocksdict.Options(raw_mode=True)
                for name in names
                if name != DEFAULT_COLUMN_FAMILY
            }
            self._db = rocksdict.Rdict(
                str(path), options, cf_options, access_type=rocksdict.AccessType.read_only()
            )
        except Exception as exc:
            raise StorageFailure(f"could not open {path} read-only: {exc}") from exc
        super().__init__(cf_options, f"RocksDB at {path} (read-only)")
        self._families = {name: self._db.get_column_family(name) for name in cf_options}
        self._families[DEFAULT_COLUMN_FAMILY] = self._db

    def _engine_get(self, column_family: str, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._families[column_family].get(key)
        except Exception as exc:
            raise StorageFailure(f"read from {self._description} failed: {exc}") from exc
        return value

    def _engine_write(self, batch: WriteBatch, *, sync: bool) -> None:
        raise InvalidInput(f"{self._description} is open read-only")

    def _engine_iterate(
        self, column_family: str, lower: bytes, upper: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        raw = self._families[column_family].iter()
        raw.seek(lower)
        while raw.valid():
            key: bytes = raw.key()
            if upper is not None and key >= upper:
                return
            yield key, raw.value()
            raw.next()

    def _engine_snapshot(self) -> Snapshot:
        raise InvalidInput(f"{self._description} offers no snapshots (it is one already)")

    def _engine_close(self) -> None:
        for name, family in self._families.items():
            if name != DEFAULT_COLUMN_FAMILY:
                family.close()
        self._families = {}
        self._db.close()
