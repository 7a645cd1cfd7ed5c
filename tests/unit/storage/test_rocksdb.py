"""What only a disk engine has: persistence, data-directory errors, the LOCK, kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.unit.storage import crash_writer
from trusted_ledger.errors import (
    ConfigurationError,
    DatabaseLocked,
    DatabaseNotFound,
    NotADatabase,
    TemporarilyUnavailable,
)
from trusted_ledger.storage import RocksDatabase, WriteBatch

CRASH_ITERATIONS = 200 if os.environ.get("TL_SOAK") == "1" else 20
WRITER = Path(crash_writer.__file__)


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    with RocksDatabase(tmp_path / "db", ["blocks", "state"], create=True) as db:
        batch = WriteBatch()
        batch.put("blocks", b"b1", b"block one")
        batch.put("state", b"s1", b"\x00" * 1000)
        db.write(batch, sync=True)
        db.put("state", b"s2", b"gone")
        db.delete("state", b"s2")
    # Reopened without naming the families: existing ones are opened and usable anyway.
    with RocksDatabase(tmp_path / "db") as db:
        assert db.column_families == frozenset({"default", "blocks", "state"})
        assert db.get("blocks", b"b1") == b"block one"
        assert list(db.iterate("state")) == [(b"s1", b"\x00" * 1000)]


def test_create_makes_missing_parent_directories(tmp_path: Path) -> None:
    with RocksDatabase(tmp_path / "a" / "b" / "db", ["state"], create=True) as db:
        db.put("state", b"k", b"v", sync=True)
    with RocksDatabase(tmp_path / "a" / "b" / "db") as db:
        assert db.get("state", b"k") == b"v"


def test_missing_database_without_create(tmp_path: Path) -> None:
    with pytest.raises(DatabaseNotFound, match=r"no database at .*node init"):
        RocksDatabase(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatabaseNotFound, match=r"empty"):
        RocksDatabase(tmp_path / "empty")
    assert not (tmp_path / "absent").exists()  # nothing was created on the way


def test_directory_that_is_not_a_database(tmp_path: Path) -> None:
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(NotADatabase, match=r"no CURRENT file.*empty or new directory"):
        RocksDatabase(other, create=True)
    assert sorted(p.name for p in other.iterdir()) == ["cat.jpg"]  # left untouched
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(NotADatabase, match=r"is a file"):
        RocksDatabase(plain, create=True)
    assert issubclass(NotADatabase, ConfigurationError)


def test_damaged_database_is_reported(tmp_path: Path) -> None:
    RocksDatabase(tmp_path / "db", create=True).close()
    (tmp_path / "db" / "CURRENT").write_text("MANIFEST-999999\n")
    with pytest.raises(NotADatabase, match=r"restore a damaged one"):
        RocksDatabase(tmp_path / "db")


def test_second_handle_in_this_process_is_refused(tmp_path: Path) -> None:
    with RocksDatabase(tmp_path / "db", create=True), pytest.raises(DatabaseLocked) as info:
        RocksDatabase(tmp_path / "db")
    assert "stop the other node process" in str(info.value)
    RocksDatabase(tmp_path / "db").close()  # released on close


def test_database_held_by_another_process_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "db"
    holder = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseLocked, match=r"LOCK") as info:
            RocksDatabase(data_dir)
        assert isinstance(info.value, TemporarilyUnavailable)
    finally:
        holder.kill()
        holder.wait()


def test_open_iterators_do_not_keep_the_lock(tmp_path: Path) -> None:
    db = RocksDatabase(tmp_path / "db", ["state"], create=True)
    db.put("state", b"k", b"v")
    scan = db.iterate("state")
    snap = db.snapshot()
    db.close()
    with RocksDatabase(tmp_path / "db") as again:
        assert again.get("state", b"k") == b"v"
    del scan, snap


def check_recovered(data_dir: Path, acked: int, batches: Callable[[int], Iterable[int]]) -> int:
    """Every batch is wholly present or wholly absent; returns the last batch present.

    ``batches(last)`` says which of batches 0..last to check entry by entry.
    """
    if not data_dir.exists():
        # Killed before its first open made the directory (still starting Python: on a
        # busy machine that outlasts the kill delay); then nothing can have been acknowledged.
        assert acked == -1, f"batch {acked} was acknowledged but no database exists"
        return -1
    with RocksDatabase(data_dir, crash_writer.FAMILIES) as db:
        raw_last = db.get("meta", crash_writer.LAST_KEY)
        last = -1 if raw_last is None else int(raw_last)
        assert last >= acked, f"batch {acked} was acknowledged but recovery ends at {last}"
        for i in batches(last):
            for j, (cf, key, value) in enumerate(crash_writer.batch_layout(i)):
                expected = None if (j == 0 and i < last) else value  # batch i+1 deleted it
                assert db.get(cf, key) == expected, f"batch {i} entry {j} of last {last}"
        for cf in ("left", "right"):
            beyond = list(db.iterate(cf, start=crash_writer.batch_key(last + 1, 0)))
            assert beyond == [], f"keys of a batch after {last} survived: {beyond[:1]}"
    return last


def run_writer_until_killed(data_dir: Path, rng: random.Random) -> int:
    """Start the writer, SIGKILL it at a random moment; return the last batch acknowledged."""
    child = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    if rng.random() < 0.8:  # mostly mid-write; sometimes while still opening and recovering
        assert child.stdout.readline().strip() == "ready"
    time.sleep(rng.uniform(0.0, 0.25))
    os.kill(child.pid, signal.SIGKILL)
    out, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL
    acks = [int(line.split()[1]) for line in out.splitlines() if line.startswith("ack ")]
    return max(acks, default=-1)


@pytest.mark.timeout(3600)
def test_kill_9_leaves_every_batch_whole_or_absent(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    data_dir = tmp_path / "db"
    last = -1

    def since_last_check(new_last: int) -> list[int]:
        # The batches written since the previous check, and a sample of older ones: checking
        # all of them after every crash would make the soak run quadratic.
        older = rng.sample(range(max(last, 0)), min(max(last, 0), 30))
        return sorted({*older, *range(max(last - 1, 0), new_last + 1)})

    for _ in range(CRASH_ITERATIONS):
        acked = run_writer_until_killed(data_dir, rng)
        recovered = check_recovered(data_dir, max(acked, last), since_last_check)
        assert recovered >= last, f"seed {seed}: a later crash lost recovered batches"
        last = recovered
    check_recovered(data_dir, last, lambda final: range(final + 1))  # everything, at the end
    assert last > CRASH_ITERATIONS  # the writer did make progress between kills
