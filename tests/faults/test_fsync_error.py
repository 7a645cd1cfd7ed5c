"""fsync fails (issue 8): a write-back error under RocksDB, injected with LD_PRELOAD.

``fsync_fault.c`` makes fsync(2) and fdatasync(2) fail with EIO for files in the database's
directory while a trigger file exists; the bytes written stay in the page cache, as after a
real write-back error. RocksDB then reports the synced write failed although its WAL record
is on its way to the disk: reopened, the database shows that write. That is the case
``storage/rocks.py`` answers with ``StorageNeedsRestart`` (the caches of the chain and the
pool above it may disagree with the disk), and a node stops with status 70 for a restart.

Asserted: the write reported failed is found after the reopen, and the error says so; a
real node under load stops committing and refuses batches (never 202 for one it could not
sync), stops with status 70 once the disk answers again, and, restarted, commits every
batch it acknowledged on top of a chain that replays whole, with a trail that verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
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
from trusted_ledger.storage import RocksDatabase

SHIM_SOURCE = Path(__file__).with_name("fsync_fault.c")
EXIT_NEEDS_RESTART = 70


@pytest.fixture(scope="module")
def fsync_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the fsync fault shim (Debian: build-essential)")
    shim = tmp_path_factory.mktemp("shim") / "fsync_fault.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror",
         "-o", str(shim), str(SHIM_SOURCE), "-ldl"],
        check=True, capture_output=True,
    )  # fmt: skip
    return shim


def fault_env(shim: Path, directory: Path, trigger: Path) -> dict[str, str]:
    return {
        "LD_PRELOAD": str(shim),
        "TL_FSYNC_FAULT_DIR": str(directory),
        "TL_FSYNC_FAULT_TRIGGER": str(trigger),
    }


# The child: writes, fails one synced write, then writes again once fsync works. Every
# outcome is reported as JSON on stdout.
_CHILD = r"""
import json, os, sys
from pathlib import Path
from trusted_ledger.chain import CHAIN_COLUMN_FAMILIES
from trusted_ledger.errors import StorageFailure, StorageNeedsRestart
from trusted_ledger.storage import RocksDatabase, WriteBatch
from trusted_ledger.storage import rocks

rocks.reopen_interval_s = 0.0
path, trigger = Path(sys.argv[1]), Path(sys.argv[2])
cf = sorted(CHAIN_COLUMN_FAMILIES)[-1]
db = RocksDatabase(path, CHAIN_COLUMN_FAMILIES, create=True)
report = {}

def put(key):
    batch = WriteBatch()
    batch.put(cf, key, b"value of " + key)
    db.write(batch, sync=True)

def attempt(name, key):
    try:
        put(key)
        report[name] = ["ok", ""]
    except StorageNeedsRestart as exc:
        report[name] = ["needs restart", str(exc)]
    except StorageFailure as exc:
        report[name] = ["failed", str(exc)]

for i in range(10):
    put(b"before-%d" % i)
trigger.write_bytes(b"")
attempt("during", b"during")
report["injected"] = len(trigger.read_bytes())
trigger.unlink()
attempt("after", b"after")
attempt("later", b"later")
try:
    db.get(cf, b"before-3")
    report["read"] = ["ok", ""]
except StorageNeedsRestart as exc:
    report["read"] = ["needs restart", str(exc)]
print(json.dumps(report))
"""


def test_a_write_reported_failed_that_reached_the_disk_asks_for_a_restart(
    fsync_shim: Path, tmp_path: Path
) -> None:
    path, trigger = tmp_path / "db", tmp_path / "fsync-fails"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(trigger)],
        env={**os.environ, **fault_env(fsync_shim, path, trigger)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["injected"] >= 1, "the shim never failed an fsync"
    # The synced write is reported failed, naming the disk's error and the file.
    outcome, message = report["during"]
    assert outcome == "failed", report
    assert "Input/output error" in message and str(path) in message, message
    # fsync works again: the reopen finds that write on the disk, and says a restart is due.
    outcome, message = report["after"]
    assert outcome == "needs restart", report
    assert "reached the disk after all" in message, message
    assert report["later"][0] == "needs restart", report  # never a silent carry-on
    assert report["read"][0] == "needs restart", report  # reads too: caches may be stale
    # A fresh open (what the restart does) has the write that was reported failed, and
    # none of the writes refused after it.
    cf = sorted(CHAIN_COLUMN_FAMILIES)[-1]
    db = RocksDatabase(path, CHAIN_COLUMN_FAMILIES)
    try:
        assert db.get(cf, b"during") == b"value of during"
        assert db.get(cf, b"after") is None and db.get(cf, b"later") is None
        assert all(db.get(cf, b"before-%d" % i) is not None for i in range(10))
    finally:
        db.close()


@pytest.mark.hsm  # the node's key is on its embedded SoftHSM token
def test_node_whose_fsync_fails_stops_for_a_restart_and_loses_nothing(
    fsync_shim: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=0)
    trigger = tmp_path / "fsync-fails"
    with monkeypatch.context() as patch:  # only the node process gets the shim
        for name, value in fault_env(fsync_shim, node_dir / "chain", trigger).items():
            patch.setenv(name, value)
        patch.setenv("PYTHONFAULTHANDLER", "1")  # SIGABRT dumps every thread's stack
        node = NodeProcess(node_dir, tmp_path / "node.log")
    load: SteadyLoad | None = None
    try:
        key = node_key(node.url)
        load = SteadyLoad(node.url)
        wait_for(lambda: height(node.url) >= 3, 30, "no commits before the fault", node)
        trigger.write_bytes(b"")
        fault_at = time.monotonic()
        stalled, _ = wait_stalled(node.url, quiet_s=2.0, timeout_s=30)
        wait_for(lambda: load.count(503) > 0, 20, "no 503 while fsync fails", node)
        assert height(node.url) == stalled, "a block committed while fsync failed"
        first_refusal = min(t for t, status in load.events if status == 503)
        assert not [t for t, s in load.events if s == 202 and t > first_refusal + 0.5], (
            "202 for a batch the node could not sync"
        )
        message = load.messages[503]
        assert "Input/output error" in message and str(node_dir) in message, message
        injected = len(trigger.read_bytes())
        assert injected >= 1

        trigger.unlink()  # the disk answers again
        try:
            status = node.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.process.send_signal(signal.SIGABRT)
            node.process.wait(timeout=30)
            raise AssertionError(f"the node did not stop: {log_events(node)[-6000:]}") from None
        stopped_after_s = time.monotonic() - fault_at
        assert status == EXIT_NEEDS_RESTART, node.log_tail()
        text = log_events(node)
        assert "reached the disk after all" in text, node.log_tail()
        load.stop()

        node = NodeProcess(node_dir, tmp_path / "node-restarted.log")
        load.url = node.url
        recovery_s = wait_for(
            lambda: height(node.url) > stalled, 60, "no commit after the restart", node
        )
        check_everything_committed(node.url, load.acked)
        assert node.terminate() == 0
        top, trail = check_node_whole(node_dir, key)
        print(
            f"\nfsync failing with EIO ({injected} failures injected): stalled at height "
            f"{stalled}, stopped with status {status} {stopped_after_s:.1f} s after the "
            f"fault; restarted, first commit after {recovery_s:.2f} s; answers "
            f"{dict(load.answers)}; first 503: {message!r}; {len(load.acked)} acknowledged, "
            f"all committed; height {top}; trail {trail.records} records"
        )
    finally:
        if load is not None:
            load.stop()
        if node.process.poll() is None:
            node.kill()
