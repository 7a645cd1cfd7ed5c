"""RocksDB through rocksdict: the database a node keeps on disk.

Raw mode everywhere (rocksdict pickles values otherwise). Tuned for the ledger's access
pattern: point lookups by hash or id dominate, so every column family gets a bloom filter and
shares one block cache (FACTS.md: 109 k gets/s with defaults, 324 k/s with bloom + cache).
Commits are ``WriteBatch``es written with ``sync`` so that a block reported committed
survives power loss, and the WAL makes each batch all-or-nothing after a crash.

A failed write (a full disk: ENOSPC) leaves RocksDB refusing every later write ("Writer
has previous error") until the database is reopened; rocksdict has no ``Resume``. So the
next write after a failure reopens the database in place, once the file system has room
again, and checks that the failed write did not reach the disk after all (the sequence
number is unchanged); if it did, ``StorageNeedsRestart`` (the caches above may disagree
with the disk). Until then writes fail with ``StorageFailure`` (temporary: the publisher
retries, the API answers 503) and reads keep working on the old handle.
"""

from __future__ import annotations

import fcntl
import gc
import os
import shutil
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import rocksdict

from trusted_ledger.errors import (
    DatabaseLocked,
    DatabaseNotFound,
    InvalidInput,
    NotADatabase,
    StorageClosed,
    StorageFailure,
    StorageNeedsRestart,
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
reopen_interval_s = 1.0
"""Least time between two attempts to reopen a database after a failed write."""
reopen_free_bytes_min = 16 * 1024 * 1024
"""Free space wanted before reopening (plus twice the WAL, which the reopen flushes)."""


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


def database_in_use(path: Path) -> bool:
    """Whether another process has the RocksDB database at ``path`` open: it holds a POSIX
    lock on ``LOCK`` while open. Probed by taking (and at once releasing) that lock, so the
    database itself is not opened, recovered or changed."""
    try:
        descriptor = os.open(path / "LOCK", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(descriptor, fcntl.LOCK_UN)
        return False
    finally:
        os.close(descriptor)


class _RocksIterator(Iterator[tuple[bytes, bytes]]):
    """Wraps a raw iterator so that ``close()`` can take it away (it pins the DB open)."""

    def __init__(self, owner: RocksDatabase, raw: rocksdict.RdictIter, upper: bytes | None) -> None:
        self._owner = owner
        self._raw: rocksdict.RdictIter | None = raw
        self._upper = upper
        self._broken: str | None = None

    def __next__(self) -> tuple[bytes, bytes]:
        self._owner._check_open()  # a scan cut short by close() says so, as in memory
        if self._broken is not None:
            raise StorageFailure(self._broken, hint="start the scan again")
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

    def drop(self, broken: str | None = None) -> None:
        """Cut the scan: at close (it ends), or with ``broken`` (it raises that)."""
        self._raw = None
        self._broken = broken


class _RocksSnapshot(Snapshot):
    def __init__(self, owner: RocksDatabase, raw: dict[str, rocksdict.Snapshot]) -> None:
        self._owner = owner
        self._raw: dict[str, rocksdict.Snapshot] | None = raw
        self._broken: str | None = None

    def get(self, column_family: str, key: bytes) -> bytes | None:
        self._owner._check_open()
        self._owner._check_cf(column_family)
        if self._broken is not None:
            raise StorageFailure(self._broken, hint="take a new snapshot")
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

    def release(self, broken: str | None = None) -> None:
        self._raw = None
        self._broken = broken


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
        self._cache = rocksdict.Cache(block_cache_bytes)
        self._open_engine(create)
        # After a failed write: why, the sequence number then, when to try reopening.
        self._stuck: str | None = None
        self._stuck_sequence = 0
        # Once a reopen showed a failed write on the disk: every later call says so.
        self._needs_restart: str | None = None
        self.on_needs_restart: Callable[[StorageNeedsRestart], None] | None = None
        """Called once, in the thread that found it, when a reopen shows that a failed
        write reached the disk: the node stops itself for a restart, whichever thread (the
        API's, the publisher's) touched the database first."""
        self._reopen_at = 0.0
        self._sync_options = rocksdict.WriteOptions()
        self._sync_options.sync = True
        self._async_options = rocksdict.WriteOptions()
        # Raw iterators and snapshots keep RocksDB (and its LOCK) alive; close() cuts them.
        self._live: weakref.WeakSet[_RocksIterator | _RocksSnapshot] = weakref.WeakSet()

    def _open_engine(self, create: bool) -> None:
        cf_options = {
            cf: _cf_options(self._cache)
            for cf in self.column_families
            if cf != DEFAULT_COLUMN_FAMILY
        }
        try:
            db = rocksdict.Rdict(str(self.path), _db_options(self._cache, create), cf_options)
        except Exception as exc:
            raise _classify_open_error(self.path, exc) from exc
        families = {cf: db.get_column_family(cf) for cf in cf_options}
        families[DEFAULT_COLUMN_FAMILY] = db
        self._handles = {cf: db.get_column_family_handle(cf) for cf in cf_options}
        self._families = families
        self._db = db

    @staticmethod
    def _existing_column_families(data_dir: Path) -> list[str]:
        try:
            return rocksdict.Rdict.list_cf(str(data_dir), rocksdict.Options(raw_mode=True))
        except Exception as exc:
            raise _classify_open_error(data_dir, exc) from exc

    def _engine_get(self, column_family: str, key: bytes) -> bytes | None:
        self._reopen_if_closed()
        try:
            value: bytes | None = self._families[column_family].get(key)
        except KeyError as exc:  # closed meanwhile by a reopen in another thread
            raise StorageFailure(
                f"{self._description} is being reopened after a failed write", hint="retry"
            ) from exc
        except Exception as exc:
            raise StorageFailure(f"read from {self._description} failed: {exc}") from exc
        return value

    def _engine_write(self, batch: WriteBatch, *, sync: bool) -> None:
        self._check_usable()
        if self._stuck is not None:
            self._reopen()
        try:
            # No local names the batch or a family handle: a failure's traceback (kept by
            # whoever holds the exception) would keep RocksDB's LOCK from a reopen.
            self._db.write(
                self._raw_batch(batch), self._sync_options if sync else self._async_options
            )
        except Exception as exc:
            self._stuck = str(exc)
            try:
                self._stuck_sequence = int(self._db.latest_sequence_number())
            except Exception:  # unknown: the reopen cannot vouch for the disk, so restart
                self._stuck_sequence = -1
            self._reopen_at = time.monotonic() + reopen_interval_s
            raise self._write_failure() from exc

    def _write_failure(self) -> StorageFailure:
        text = self._stuck or "unknown error"
        if "No space left" in text or "ENOSPC" in text:
            return StorageFailure(
                f"write to {self._description} failed: the disk is full (ENOSPC): {text}",
                hint=f"free space on the file system holding {self.path}; writes resume "
                "by themselves once there is room",
            )
        return StorageFailure(
            f"write to {self._description} failed: {text}",
            hint=f"check the disk holding {self.path}; writes are retried",
        )

    def checkpoint(self, destination: Path) -> None:
        """A consistent copy of the whole database, as it is now, in ``destination`` (which
        must not exist; its parent must). RocksDB's checkpoint: the memtables are flushed,
        table files are hard-linked when ``destination`` is on the same file system (else
        copied), the manifest is copied. Writes wait for it (the write lock: no commit and no
        reopen runs meanwhile); reads go on."""
        if destination.exists():
            raise InvalidInput(
                f"checkpoint destination {destination} exists already",
                hint="name a new directory; a checkpoint never overwrites anything",
            )
        with self._write_lock:
            self._check_open()
            if self._stuck is not None:
                raise self._write_failure()
            try:
                rocksdict.Checkpoint(self._db).create_checkpoint(str(destination))
            except Exception as exc:
                raise StorageFailure(
                    f"checkpoint of {self._description} into {destination} failed: {exc}",
                    hint=f"check that {destination.parent} exists and has room",
                ) from exc

    def _raw_batch(self, batch: WriteBatch) -> rocksdict.WriteBatch:
        raw = rocksdict.WriteBatch(raw_mode=True)
        for entry in batch.entries:
            handle = self._handles.get(entry.column_family)  # None: the default family
            if entry.op is BatchOp.PUT:
                raw.put(entry.key, entry.value, handle)
            else:
                raw.delete(entry.key, handle)
        return raw

    def _reopen(self) -> None:
        """Reopen after a failed write (write lock held), if it is time and there is room;
        else the write fails again with the first failure's reason."""
        if time.monotonic() < self._reopen_at:
            raise self._write_failure()
        self._reopen_at = time.monotonic() + reopen_interval_s
        wal_bytes = sum(f.stat().st_size for f in self.path.glob("*.log"))
        if shutil.disk_usage(self.path).free < reopen_free_bytes_min + 2 * wal_bytes:
            raise self._write_failure()
        reason = f"{self._description} was reopened after a failed write; retry"
        # Readers between the close and the open get StorageFailure (temporary), as do
        # scans and snapshots that were open.
        self._cut_live(reason)
        self._close_engine(quiet=True)
        try:
            self._open_engine(create=False)
        except Exception as exc:
            self._families, self._handles = {}, {}  # reads and writes try the reopen again
            full = "No space left" in str(exc) or "ENOSPC" in str(exc)
            raise StorageFailure(
                f"reopening {self._description} after a failed write failed: {exc}",
                hint=f"free space on the file system holding {self.path}"
                if full
                else f"check the disk holding {self.path} (the kernel log names its errors); "
                "the reopen is retried",
            ) from exc
        sequence = int(self._db.latest_sequence_number())
        if self._stuck_sequence < 0 or sequence != self._stuck_sequence:
            self._needs_restart = (
                f"{self._description}: a write reported failed ({self._stuck}) reached the "
                f"disk after all (sequence {self._stuck_sequence} -> {sequence})"
            )
            try:
                self._check_usable()
            except StorageNeedsRestart as exc:
                if self.on_needs_restart is not None:
                    self.on_needs_restart(exc)
                raise
        self._stuck = None

    def _check_usable(self) -> None:
        """Sticky: after ``StorageNeedsRestart`` every read and write of this handle raises
        it again, so that whichever thread of the node touches the database next stops it,
        and none goes on from caches that may disagree with the disk."""
        if self._needs_restart is not None:
            raise StorageNeedsRestart(
                self._needs_restart,
                hint="restart the node: it reloads its chain and pool from the disk",
            )

    def _reopen_if_closed(self) -> None:
        """After a reopen that failed, a read tries it again (no more often than a write
        would), rather than failing until some write comes: a node whose next step is a
        read, such as the publisher retrying its block, would otherwise wait forever."""
        self._check_usable()
        if self._families:
            return
        with self._write_lock:
            if not self._families:
                self._check_open()
                self._reopen()

    def _engine_iterate(
        self, column_family: str, lower: bytes, upper: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        self._reopen_if_closed()
        try:
            raw = self._families[column_family].iter()
        except Exception as exc:
            raise StorageFailure(f"scan of {self._description} failed: {exc}") from exc
        raw.seek(lower)
        iterator = _RocksIterator(self, raw, upper)
        self._live.add(iterator)
        return iterator

    def _engine_snapshot(self) -> Snapshot:
        self._check_usable()
        if not self._families:  # a reopen that failed (the write lock is held here)
            self._reopen()
        # All families' snapshots are taken under the write lock, so they show one instant.
        snapshot = _RocksSnapshot(self, {cf: db.snapshot() for cf, db in self._families.items()})
        self._live.add(snapshot)
        return snapshot

    def _cut_live(self, broken: str | None) -> None:
        for live in list(self._live):
            if isinstance(live, _RocksIterator):
                live.drop(broken)
            else:
                live.release(broken)
        self._live.clear()

    def _engine_close(self) -> None:
        self._cut_live(None)
        # After a failed write RocksDB's close reports that error again: nothing to do
        # about it then, the WAL holds what was written.
        self._close_engine(quiet=self._stuck is not None)

    def _close_engine(self, *, quiet: bool) -> None:
        families, self._families, self._handles = self._families, {}, {}
        if not hasattr(self, "_db"):
            return  # a reopen that failed: nothing is open
        failures = []
        for cf, family in families.items():
            if cf != DEFAULT_COLUMN_FAMILY:
                try:
                    family.close()
                except Exception as exc:  # collected, reported below
                    failures.append(exc)
        try:
            self._db.close()
        except Exception as exc:  # collected, reported below
            failures.append(exc)
        # A close that failed keeps RocksDB (and its LOCK) until every object is gone.
        families.clear()
        del self._db
        gc.collect()
        if failures and not quiet:
            raise StorageFailure(f"closing {self._description} failed: {failures[0]}")
