"""RocksDB through rocksdict: the database a node keeps on disk.

Raw mode everywhere (rocksdict pickles values otherwise). Tuned for the ledger's access
pattern: point lookups by hash or id dominate, so every column family gets a bloom filter and
shares one block cache (FACTS.md: 109 k gets/s with defaults, 324 k/s with bloom + cache).
Commits are ``WriteBatch``es written with ``sync`` so that a block reported committed
survives power loss, and the WAL makes each batch all-or-nothing after a crash.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path

import rocksdict

from trusted_ledger.errors import (
    DatabaseLocked,
    DatabaseNotFound,
    NotADatabase,
    StorageClosed,
    StorageFailure,
)
from trusted_ledger.storage.interface import (
    DEFAULT_COLUMN_FAMILY,
    BatchOp,
    Database,
    Snapshot,
    WriteBatch,
)

block_cache_bytes_default = 256 * 1024 * 1024
bloom_filter_bits_per_key = 10  # ~1 % false positives: one wasted block read per 100 misses
block_size_bytes = 16 * 1024


def _cf_options(cache: rocksdict.Cache) -> rocksdict.Options:
    table = rocksdict.BlockBasedOptions()
    table.set_bloom_filter(bloom_filter_bits_per_key, False)
    table.set_block_cache(cache)
    table.set_block_size(block_size_bytes)
    # Filters and indexes in the cache (bounded memory), but L0's pinned: they are hit on
    # every lookup of recent data.
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    table.set_format_version(5)
    options = rocksdict.Options(raw_mode=True)
    options.set_block_based_table_factory(table)
    options.set_compression_type(rocksdict.DBCompressionType.lz4())
    return options


def _db_options(cache: rocksdict.Cache, create: bool) -> rocksdict.Options:
    options = _cf_options(cache)
    options.create_if_missing(create)
    options.create_missing_column_families(True)
    # A torn WAL tail (kill -9 in the middle of a write) is dropped, never half-applied.
    options.set_wal_recovery_mode(rocksdict.DBRecoveryMode.point_in_time())
    # Column families flushed together, so no family runs ahead of another on disk.
    options.set_atomic_flush(True)
    options.set_max_background_jobs(2)  # the machine has 2 cores
    options.set_keep_log_file_num(5)
    return options


def _classify_open_error(path: Path, exc: Exception) -> Exception:
    text = str(exc)
    if "lock" in text.lower():
        return DatabaseLocked(
            f"the database at {path} is in use: its LOCK file is held ({text})",
            hint="stop the other node process using this data directory, or choose another one",
        )
    if "CURRENT" in text and "does not exist" in text:
        return DatabaseNotFound(
            f"no database at {path}",
            hint="create one first (trusted-ledger node init) or open with create=True",
        )
    if any(marker in text for marker in ("Corruption", "CURRENT", "MANIFEST")):
        return NotADatabase(
            f"{path} does not hold a readable RocksDB database ({text})",
            hint="point the node at its own data directory; restore a damaged one from backup",
        )
    return StorageFailure(f"could not open the database at {path}: {text}")


def _check_data_dir(path: Path, create: bool) -> None:
    """Refuse paths RocksDB would happily turn into a database or fail on obscurely."""
    if path.exists() and not path.is_dir():
        raise NotADatabase(
            f"{path} is a file, not a database directory",
            hint="point the data directory at a directory",
        )
    if path.is_dir() and not (path / "CURRENT").exists():
        if any(path.iterdir()):
            raise NotADatabase(
                f"{path} is a non-empty directory without a RocksDB database (no CURRENT file)",
                hint="use an empty or new directory for a new database",
            )
        if not create:
            raise DatabaseNotFound(
                f"no database at {path} (the directory is empty)",
                hint="create one first (trusted-ledger node init) or open with create=True",
            )
    if not path.exists() and not create:
        raise DatabaseNotFound(
            f"no database at {path}",
            hint="create one first (trusted-ledger node init) or open with create=True",
        )


class _RocksIterator(Iterator[tuple[bytes, bytes]]):
    """Wraps a raw iterator so that ``close()`` can take it away (it pins the DB open)."""

    def __init__(self, owner: RocksDatabase, raw: rocksdict.RdictIter, upper: bytes | None) -> None:
        self._owner = owner
        self._raw: rocksdict.RdictIter | None = raw
        self._upper = upper

    def __next__(self) -> tuple[bytes, bytes]:
        self._owner._check_open()  # a scan cut short by close() says so, as in memory
        raw = self._raw
        if raw is None:
            raise StopIteration
        if not raw.valid():
            raw.status()  # raises if the scan stopped on an I/O error rather than the end
            self._raw = None
            raise StopIteration
        key: bytes = raw.key()
        if self._upper is not None and key >= self._upper:
            self._raw = None
            raise StopIteration
        value: bytes = raw.value()
        raw.next()
        return key, value

    def drop(self) -> None:
        self._raw = None


class _RocksSnapshot(Snapshot):
    def __init__(self, owner: RocksDatabase, raw: dict[str, rocksdict.Snapshot]) -> None:
        self._owner = owner
        self._raw: dict[str, rocksdict.Snapshot] | None = raw

    def get(self, column_family: str, key: bytes) -> bytes | None:
        self._owner._check_open()
        self._owner._check_cf(column_family)
        if self._raw is None:
            raise StorageClosed("snapshot was released", hint="take a new snapshot")
        try:
            value: bytes = self._raw[column_family][key]
        except KeyError:
            return None
        except Exception as exc:
            # rocksdict raises a bare Exception("key not found") for a miss.
            if "not found" in str(exc):
                return None
            raise StorageFailure(f"snapshot read failed: {exc}") from exc
        return value

    def release(self) -> None:
        self._raw = None


class RocksDatabase(Database):
    """A RocksDB database directory opened with a fixed set of column families."""

    engine_name = "rocksdb"

    def __init__(
        self,
        path: str | os.PathLike[str],
        column_families: Iterable[str] = (),
        *,
        create: bool = False,
        block_cache_bytes: int = block_cache_bytes_default,
    ) -> None:
        data_dir = Path(path)
        wanted = set(column_families)
        _check_data_dir(data_dir, create)
        if (data_dir / "CURRENT").exists():
            # RocksDB refuses to open without every existing family; open them all.
            wanted.update(self._existing_column_families(data_dir))
        super().__init__(wanted, f"RocksDB at {data_dir}")
        if create:
            data_dir.mkdir(parents=True, exist_ok=True)  # RocksDB makes only the last level
        self.path = data_dir
        cache = rocksdict.Cache(block_cache_bytes)
        cf_options = {
            cf: _cf_options(cache) for cf in self.column_families if cf != DEFAULT_COLUMN_FAMILY
        }
        try:
            self._db = rocksdict.Rdict(str(data_dir), _db_options(cache, create), cf_options)
        except Exception as exc:
            raise _classify_open_error(data_dir, exc) from exc
        self._families = {cf: self._db.get_column_family(cf) for cf in cf_options}
        self._families[DEFAULT_COLUMN_FAMILY] = self._db
        self._handles = {cf: self._db.get_column_family_handle(cf) for cf in cf_options}
        self._sync_options = rocksdict.WriteOptions()
        self._sync_options.sync = True
        self._async_options = rocksdict.WriteOptions()
        # Raw iterators and snapshots keep RocksDB (and its LOCK) alive; close() cuts them.
        self._live: weakref.WeakSet[_RocksIterator | _RocksSnapshot] = weakref.WeakSet()

    @staticmethod
    def _existing_column_families(data_dir: Path) -> list[str]:
        try:
            return rocksdict.Rdict.list_cf(str(data_dir), rocksdict.Options(raw_mode=True))
        except Exception as exc:
            raise _classify_open_error(data_dir, exc) from exc

    def _engine_get(self, column_family: str, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._families[column_family].get(key)
        except Exception as exc:
            raise StorageFailure(f"read from {self._description} failed: {exc}") from exc
        return value

    def _engine_write(self, batch: WriteBatch, *, sync: bool) -> None:
        raw = rocksdict.WriteBatch(raw_mode=True)
        for entry in batch.entries:
            handle = self._handles.get(entry.column_family)  # None: the default family
            if entry.op is BatchOp.PUT:
                raw.put(entry.key, entry.value, handle)
            else:
                raw.delete(entry.key, handle)
        try:
            self._db.write(raw, self._sync_options if sync else self._async_options)
        except Exception as exc:
            raise StorageFailure(f"write to {self._description} failed: {exc}") from exc

    def _engine_iterate(
        self, column_family: str, lower: bytes, upper: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        raw = self._families[column_family].iter()
        raw.seek(lower)
        iterator = _RocksIterator(self, raw, upper)
        self._live.add(iterator)
        return iterator

    def _engine_snapshot(self) -> Snapshot:
        # All families' snapshots are taken under the write lock, so they show one instant.
        snapshot = _RocksSnapshot(self, {cf: db.snapshot() for cf, db in self._families.items()})
        self._live.add(snapshot)
        return snapshot

    def _engine_close(self) -> None:
        for live in list(self._live):
            if isinstance(live, _RocksIterator):
                live.drop()
            else:
                live.release()
        self._live.clear()
        for cf, family in self._families.items():
            if cf != DEFAULT_COLUMN_FAMILY:
                family.close()
        self._families = {}
        self._handles = {}
        try:
            self._db.close()
        except Exception as exc:
            raise StorageFailure(f"closing {self._description} failed: {exc}") from exc
