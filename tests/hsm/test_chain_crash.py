"""kill -9 at random instants while publishing: the chain restarts whole (invariant 6).

A child process (RocksDB in a temporary directory, its node key on SoftHSM) publishes blocks
in a loop and reports each block after ``commit`` returned; the parent kills it with SIGKILL
at a random moment, reopens the store (which runs its own checks on open) and checks: the
head block is whole, its state root readable, every reported block is present at its height,
heights are contiguous and linked, and the state at the head agrees with the blocks (the
counter equals the number of batches ever committed). Then it restarts the child on the same
directory and guard file. The first runs are killed during start-up, so a genesis cut short
is covered too. TL_SOAK=1 runs 200 iterations instead of 20.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.hsm.conftest import USER_PIN, TokenEnv, shared_pool
from tests.unit.chain.support import kv_address
from trusted_ledger.chain import CHAIN_COLUMN_FAMILIES, ChainStore
from trusted_ledger.custody import KeyAlgorithm, SigningGuard
from trusted_ledger.storage import RocksDatabase

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(1800)]
CHILD = Path(__file__).with_name("chain_crash_child.py")
REPO = Path(__file__).resolve().parents[2]
CHAIN_ID = "crash-chain"
ITERATIONS = 200 if os.environ.get("TL_SOAK") == "1" else 20
EARLY_KILLS = 3  # the first runs are killed while committing genesis (if it is not yet)


def _wait_for(child: subprocess.Popen[str], marker: str, reported: dict[int, str]) -> None:
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], deadline - time.monotonic())
        assert ready, f"child did not print {marker}"
        line = child.stdout.readline()
        assert line, f"child exited early with {child.wait()}"
        if line.strip() == marker:
            return
        _record(line, reported)
    raise AssertionError(f"child did not print {marker}")


def _record(line: str, reported: dict[int, str]) -> None:
    parts = line.split()
    if len(parts) == 3 and parts[0] == "COMMITTED" and len(parts[2]) == 64:
        number, block_id = int(parts[1]), parts[2]
        assert reported.setdefault(number, block_id) == block_id, f"two blocks at {number}"
    # Anything else is a line cut by the kill: never reported, so never promised.


class ChainChecker:
    """What the parent knows of the chain, extended after each run."""

    def __init__(self) -> None:
        self.verified_height = -1
        self.previous_id = b""
        self.batches = 0

    def check(self, data_dir: Path, reported: dict[int, str]) -> int:
        with RocksDatabase(data_dir, CHAIN_COLUMN_FAMILIES) as db:
            store = ChainStore(db, CHAIN_ID)  # the after-read checks of open
            head = store.head
            if head is None:  # killed before genesis was committed
                assert not reported and self.verified_height == -1
                return -1
            assert head.number >= self.verified_height, "the chain lost blocks"
            for number, block_id in reported.items():
                found = store.block_id_at(number)
                assert found is not None and found.hex() == block_id, f"lost block {number}"
            for number in range(self.verified_height + 1, head.number + 1):
                block = store.block_at(number)  # decoded whole: signatures, batch root
                assert block is not None, f"gap at height {number}"
                if number > 0:
                    assert block.header.previous_block_id == self.previous_id
                self.previous_id = block.id
                self.batches += len(block.batches)
            self.verified_height = head.number
            counter = store.state.view(head.state_root).get(kv_address("counter"))
            assert counter == str(self.batches).encode(), "state and blocks disagree"
            return head.number


def test_sigkill_while_publishing_leaves_a_whole_chain(softhsm: TokenEnv, tmp_path: Path) -> None:
    label = f"crash-{uuid.uuid4().hex[:8]}"
    key = shared_pool(softhsm).generate_key(label, KeyAlgorithm.EC_P256)
    guard_path = tmp_path / "node.guard"
    SigningGuard.create(guard_path, key.fingerprint)
    data_dir = tmp_path / "chain"
    env = {
        **os.environ, **softhsm.env, "TL_TEST_PIN": USER_PIN,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }  # fmt: skip
    rng = random.Random(int(os.environ.get("TL_CHAIN_CRASH_SEED", "11")))
    reported: dict[int, str] = {}
    checker = ChainChecker()
    heights = []
    for run in range(ITERATIONS):
        child = subprocess.Popen(
            [sys.executable, str(CHILD), "softhsm2", softhsm.label, label, str(guard_path),
             str(data_dir), f"run{run}", str(run)],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            if run < EARLY_KILLS:
                # While genesis is signed and committed (a few fsyncs: milliseconds).
                _wait_for(child, "OPENED", reported)
                time.sleep(rng.uniform(0, 0.004))
            else:
                _wait_for(child, "READY", reported)
                time.sleep(rng.uniform(0, 0.25))
        finally:
            child.send_signal(signal.SIGKILL)
            output, _ = child.communicate(timeout=30)
        for line in output.splitlines():
            _record(line, reported)
        heights.append(checker.check(data_dir, reported))
    assert heights[-1] > ITERATIONS  # blocks were committed between the kills
    assert max(reported) <= heights[-1]
