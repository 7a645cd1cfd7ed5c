"""kill -9 at random instants never leads to a double signature after restart.

A child process signs guarded votes in a loop and prints each signature once it has it;
the parent kills it with SIGKILL at a random moment, restarts it at a random height near
the watermark with *different* digests, and checks across all runs that no position was
ever signed with two digests and that the watermark on disk covers every signature seen.
TL_GUARD_KILL_ITERATIONS raises the number of runs (default 50).
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
from trusted_ledger.custody.guard import Position, SigningGuard
from trusted_ledger.errors import SigningRefused

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(600)]
CHILD = Path(__file__).with_name("guard_child.py")
ITERATIONS = int(os.environ.get("TL_GUARD_KILL_ITERATIONS", "50"))
REPO = Path(__file__).resolve().parents[2]


def _wait_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], 30)
    assert ready, "child did not start"
    assert child.stdout.readline().strip() == "READY"


def test_sigkill_never_causes_double_signing(softhsm: TokenEnv, tmp_path: Path) -> None:
    label = f"guard-{uuid.uuid4().hex[:8]}"
    key = shared_pool(softhsm).generate_key(label, softhsm.profile.default_algorithm)
    guard_path = tmp_path / "vote.guard"
    SigningGuard.create(guard_path, key.fingerprint)
    env = {
        **os.environ, **softhsm.env, "TL_TEST_PIN": USER_PIN,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }  # fmt: skip
    rng = random.Random(int(os.environ.get("TL_GUARD_KILL_SEED", "7")))
    signed: dict[tuple[int, int], bytes] = {}
    refused_runs = 0
    for run in range(ITERATIONS):
        before = SigningGuard.open(guard_path, key.fingerprint).watermark
        top = before.position.height if before else 0
        start = rng.randint(max(0, top - 2), top + 1)
        child = subprocess.Popen(
            [sys.executable, str(CHILD), "softhsm2", softhsm.label, label, str(guard_path),
             f"run{run}", str(start)],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        _wait_ready(child)
        # Wait for the child's first outcome before the random delay: on a loaded machine a
        # kill timed from READY alone can land before the child has signed anything, and
        # such a run exercises nothing.
        assert child.stdout is not None
        first = child.stdout.readline()
        time.sleep(rng.uniform(0, 0.08))
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
        output = first + rest
        refused_runs += "REFUSED" in output
        last_signed: tuple[int, int] | None = None
        for line in output.splitlines():
            parts = line.split()
            if len(parts) != 5 or parts[0] != "SIGNED":
                continue  # a line cut by the kill was never complete: never "left"
            position = (int(parts[1]), int(parts[2]))
            digest = bytes.fromhex(parts[3])
            key.public_key.verify(digest, bytes.fromhex(parts[4]))
            assert signed.setdefault(position, digest) == digest, f"double sign at {position}"
            last_signed = position
        after = SigningGuard.open(guard_path, key.fingerprint)
        if last_signed is not None:
            assert after.watermark is not None
            assert after.watermark.position >= Position(last_signed[0], 0, last_signed[1])
        # Whatever was signed, a different digest there is refused after the restart.
        for height, step in list(signed)[-3:]:
            with pytest.raises(SigningRefused):
                after.authorise(Position(height, 0, step), b"\xee" * 32)
    assert len(signed) > ITERATIONS  # the kills did land while signing, not before
    assert refused_runs > 0  # restarts below the watermark were exercised
