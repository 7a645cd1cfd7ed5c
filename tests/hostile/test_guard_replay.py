"""Guard replay against a real token (SoftHSM): a caller - a buggy or compromised consensus
driver - asks custody to sign a second, different message at a position it already signed,
or to go back below it. The guard refuses before the key is used, the refusal is in the
audit trail, and it survives a restart (the watermark is on disk). Each phase runs in a
child process with its own token directory (guard_replay_child.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trusted_ledger.custody import PublicKey, verify_trail

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(120)]
CHILD = Path(__file__).with_name("guard_replay_child.py")
REPO = Path(__file__).resolve().parents[2]


def _phase(root: Path, phase: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(CHILD), str(root), phase],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # Log records share stdout with the JSON lines this test reads.
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _digest(message: str) -> bytes:
    return hashlib.sha256(message.encode()).digest()


def test_guard_replay_of_a_conflicting_vote_is_refused_audited_and_durable(
    tmp_path: Path,
) -> None:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM not installed")
    first = _phase(tmp_path, "first")
    key = PublicKey.from_spki(bytes.fromhex(first[0]["spki"]))
    asks = first[1:] + _phase(tmp_path, "restart")

    assert [(a["message"], "signature" in a) for a in asks] == [
        ("block A", True),  # the first vote at (7, 2, 3)
        ("block B", False),  # equivocation: another block at the same position
        ("block C", False),  # a rewind below the watermark
        ("block A", True),  # repeating the same message is allowed (re-send after a crash)
        ("block B", False),  # after a restart, the watermark read back from disk
    ]
    for ask in asks:
        if "signature" in ask:
            key.verify(_digest(ask["message"]), bytes.fromhex(ask["signature"]))
        else:
            assert "7" in ask["refused"]  # the refusal names the watermark's position

    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    assert verify_trail(lines).ok
    uses = [json.loads(line) for line in lines if json.loads(line)["kind"] == "use"]
    assert [(u["digest"], u["result"]) for u in uses] == [
        (_digest(a["message"]).hex(), "ok" if "signature" in a else "refused") for a in asks
    ]
