"""Disk full (issue 8): the data directory on a small tmpfs, filled with a ballast file.

What a full disk does to the pieces: RocksDB fails the write with ENOSPC and then refuses
every later write ("Writer has previous error") until the database is reopened, which
``storage/rocks.py`` now does in place on the next write once the file system has room
again (and if the failed write turns out to have reached the disk after all, it says so
with ``StorageNeedsRestart`` and the node stops for a restart). The pool's synced write
fails, so POST /batches answers 503 naming the path and ENOSPC, never 202 for a batch it
could not store; the publisher's commit fails with the same ``StorageFailure`` and is
retried; the guard file and the audit trail refuse to sign without their own write (a
short write to the trail is cut off again). Removing the ballast lets everything resume.

Mounting needs root (CAP_SYS_ADMIN); without it the tests skip and say so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.support import (
    SteadyLoad,
    check_everything_committed,
    check_node_whole,
    height,
    log_events,
    node_key,
    wait_for,
    wait_stalled,
)
from tests.node.support import NodeProcess, init_node
from trusted_ledger.chain import CHAIN_COLUMN_FAMILIES
from trusted_ledger.errors import StorageFailure
from trusted_ledger.storage import RocksDatabase, WriteBatch
from trusted_ledger.storage import rocks as rocks_module

TMPFS_BYTES = 32 * 1024 * 1024
BALLAST_CHUNK_BYTES = 64 * 1024


@contextlib.contextmanager
def small_tmpfs(where: Path, size_bytes: int = TMPFS_BYTES) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(ballast: Path) -> int:
    """Write ``ballast`` until the file system is full; the bytes written."""
    written = 0
    with ballast.open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(b"\xa5" * BALLAST_CHUNK_BYTES)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return written


def _put(db: RocksDatabase, cf: str, key: bytes, value: bytes) -> None:
    batch = WriteBatch()
    batch.put(cf, key, value)
    db.write(batch, sync=True)


def test_rocksdb_refuses_writes_on_a_full_disk_and_resumes_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rocks_module, "reopen_interval_s", 0.0)
    with small_tmpfs(tmp_path / "mnt") as mnt:
        db = RocksDatabase(mnt / "db", CHAIN_COLUMN_FAMILIES, create=True)
        cf = sorted(CHAIN_COLUMN_FAMILIES)[-1]
        try:
            for i in range(20):
                _put(db, cf, b"k%d" % i, os.urandom(1000))
            fill(mnt / "ballast")
            with pytest.raises(StorageFailure, match="ENOSPC") as failure:
                for i in range(20, 100):  # the first page may still have room
                    _put(db, cf, b"k%d" % i, os.urandom(1000))
            assert str(mnt / "db") in str(failure.value)
            assert "free space" in (failure.value.hint or "")
            # Stuck, not lost: reads work; writes keep failing while the disk is full.
            assert db.get(cf, b"k3") is not None
            with pytest.raises(StorageFailure, match="ENOSPC"):
                _put(db, cf, b"again", b"x")
            (mnt / "ballast").unlink()
            _put(db, cf, b"after", b"room again")  # reopened in place
            assert db.get(cf, b"after") == b"room again"
            assert db.get(cf, b"again") is None
            assert all(db.get(cf, b"k%d" % i) is not None for i in range(20))
        finally:
            db.close()
        reopened = RocksDatabase(mnt / "db", CHAIN_COLUMN_FAMILIES)
        try:
            assert reopened.get(cf, b"after") == b"room again"
        finally:
            reopened.close()


@pytest.mark.hsm  # the node's key is on its embedded SoftHSM token
def test_node_on_a_full_disk_refuses_batches_and_resumes(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "node") as node_dir:
        init_node(node_dir, anchor_every_s=0)
        node = NodeProcess(node_dir, tmp_path / "node.log")
        ballast = node_dir / "ballast.bin"
        load: SteadyLoad | None = None
        try:
            key = node_key(node.url)
            load = SteadyLoad(node.url)
            wait_for(lambda: height(node.url) >= 3, 30, "no commits before the fault", node)
            full_at = time.monotonic()
            ballast_bytes = fill(ballast)
            stalled, _ = wait_stalled(node.url, quiet_s=2.0, timeout_s=30)
            wait_for(lambda: load.count(503) > 0, 20, "no 503 on a full disk", node)
            time.sleep(3.0)
            assert height(node.url) == stalled, "a block committed on a full disk"
            first_refusal = min(t for t, status in load.events if status == 503)
            accepted_while_full = [
                t for t, status in load.events if status == 202 and t > first_refusal
            ]
            assert not accepted_while_full, "202 for a batch on a full disk"
            assert set(load.answers) <= {202, 503}, load.answers
            message = load.messages[503]
            assert "ENOSPC" in message and str(node_dir) in message, message
            text = log_events(node)
            assert "publish.retry" in text, node.log_tail()
            assert "No space left on device" in text or "ENOSPC" in text, node.log_tail()
            assert str(node_dir) in text

            ballast.unlink()
            freed_at = time.monotonic()
            recovery_s = wait_for(
                lambda: height(node.url) > stalled, 60, "commits did not resume", node
            )
            without_commits_s = time.monotonic() - full_at
            accepted_before = load.count(202)
            wait_for(lambda: load.count(202) > accepted_before, 20, "API still refusing", node)
            time.sleep(1.0)
            load.stop()
            check_everything_committed(node.url, load.acked)
            assert node.process.poll() is None, "the node exited"
            assert node.terminate() == 0
            top, trail = check_node_whole(node_dir, key)
            print(
                f"\ndisk full ({ballast_bytes // 1024} KiB ballast on a "
                f"{TMPFS_BYTES >> 20} MiB tmpfs) for {freed_at - full_at:.1f} s under load: "
                f"stalled at height {stalled}, {without_commits_s:.1f} s without commits, "
                f"commits resumed {recovery_s:.2f} s after the ballast went; answers "
                f"{dict(load.answers)}; first 503: {load.messages.get(503, '')!r}; "
                f"{len(load.acked)} acknowledged, all committed; height {top}; trail "
                f"{trail.records} records, {trail.errors} signing errors audited; the node "
                "never exited"
            )
        finally:
            if load is not None:
                load.stop()
            if node.process.poll() is None:
                node.kill()
