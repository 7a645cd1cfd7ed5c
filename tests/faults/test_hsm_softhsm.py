"""The HSM disappears under load and comes back (issue 8): a real node on its embedded
SoftHSM token, real HTTP load.

How the fault is made, and what it looks like to the node: SoftHSM reads its token
directory (``<node>/hsm/tokens``) at C_Initialize and keeps the objects in memory, but it
checks an object's file on every use. Moving the directory away (and leaving an empty one
in its place) makes the next C_Sign fail with CKR_OBJECT_HANDLE_INVALID; custody counts the
error, drops its sessions and re-initialises the module with back-off, and each attempt
finds no token with the node's label (an empty token directory) until the directory is
moved back. That is the same sequence of PKCS#11 answers a network HSM gives when its
partition is taken away and restored. The publisher sees ``HsmUnavailable`` and retries;
the API keeps accepting batches into the durable pool.

Asserted: while the token is away no block commits, the API still answers 202 and /readyz
503; the log names the failure; the module-error and recovery counters move; commits resume
when the token returns; every acknowledged batch commits; the chain replays whole, the trail
verifies offline and no (height, round, step) position was signed with two digests.
Measured and printed (not asserted): seconds without commits, recovery time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.faults.support import (
    SteadyLoad,
    check_everything_committed,
    check_node_whole,
    height,
    log_events,
    metric,
    node_key,
    wait_for,
    wait_stalled,
)
from tests.node.support import NodeProcess, init_node, request

pytestmark = pytest.mark.hsm

OUTAGE_S = 8.0


def test_softhsm_token_gone_under_load_stops_signing_and_resumes(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=0)
    node = NodeProcess(node_dir, tmp_path / "node.log")
    tokens, away = node_dir / "hsm" / "tokens", node_dir / "hsm" / "tokens-away"
    load: SteadyLoad | None = None
    try:
        key = node_key(node.url)
        load = SteadyLoad(node.url)
        wait_for(lambda: height(node.url) >= 3, 30, "no commits before the fault", node)
        errors_before = metric(node.url, "tl_custody_module_errors_total", module="softhsm2")
        recoveries_before = metric(node.url, "tl_custody_recoveries_total", module="softhsm2")

        tokens.rename(away)
        tokens.mkdir()
        fault_at = time.monotonic()
        # A block being cut when the token went may still commit; then nothing does.
        stalled, _ = wait_stalled(node.url, quiet_s=2.0, timeout_s=20)
        accepted_before = load.count(202)
        remaining = OUTAGE_S - (time.monotonic() - fault_at)
        time.sleep(max(remaining, 2.0))
        assert height(node.url) == stalled, "a block committed while the token was away"
        assert load.count(202) > accepted_before, "the API stopped accepting batches"
        assert metric(node.url, "tl_custody_module_errors_total", module="softhsm2") > (
            errors_before
        )
        ready_status, ready = request(f"{node.url}/readyz")
        assert ready_status == 503 and "unavailable" in json.dumps(ready), ready
        text = log_events(node)
        assert "token_lost" in text and "publish.retry" in text, node.log_tail()
        assert "HsmUnavailable" in text or "unavailable" in text

        tokens.rmdir()
        away.rename(tokens)
        back_at = time.monotonic()
        recovery_s = wait_for(
            lambda: height(node.url) > stalled, 60, "commits did not resume", node
        )
        without_commits_s = time.monotonic() - fault_at
        assert metric(node.url, "tl_custody_recoveries_total", module="softhsm2") > (
            recoveries_before
        )
        assert request(f"{node.url}/readyz")[0] == 200
        time.sleep(1.0)
        load.stop()
        check_everything_committed(node.url, load.acked)
        assert node.terminate() == 0
        top, trail = check_node_whole(node_dir, key)
        print(
            f"\nsoftHSM token away {back_at - fault_at:.1f} s under load: stalled at height "
            f"{stalled}, {without_commits_s:.1f} s without commits, commits resumed "
            f"{recovery_s:.2f} s after the token returned; answers {dict(load.answers)}; "
            f"{len(load.acked)} batches acknowledged, all committed; chain height {top}; "
            f"trail {trail.records} records, {trail.errors} signing errors audited, "
            f"no position signed twice"
        )
    finally:
        if load is not None:
            load.stop()
        if away.exists() and not any(tokens.iterdir()):
            tokens.rmdir()
            away.rename(tokens)
        if node.process.poll() is None:
            node.kill()
