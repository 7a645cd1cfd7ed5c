"""The TPM disappears under load and comes back (issue 8): a real node whose key is on a
TPM 2.0 (swtpm + tpm2-abrmd + tpm2-pkcs11, profile ``tpm2``), real HTTP load.

The fault: swtpm is killed with SIGKILL, and tpm2-abrmd with it (it cannot reconnect to a
new swtpm); both are started again on the same state directory, so the TPM comes back with
its persistent objects (the node key's primary). To the node this is a TPM resource manager
that vanished: C_Sign fails (tpm2-pkcs11 reports a general or device error), custody counts
it, drops its session and re-initialises the module with back-off until abrmd answers again.

Asserted as for SoftHSM (test_hsm_softhsm.py): no commit while the TPM is away, the API
keeps accepting, the counters move, commits resume, every acknowledged batch commits, the
chain replays whole, the trail verifies and no position was signed twice.

It runs wherever the TPM stack is installed (about 20 s; the ``software_tpm`` fixture skips
with the missing piece named otherwise); ``TL_FAULTS_TPM=0`` leaves it out.
"""

from __future__ import annotations

import os
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
from tests.hsm.conftest import (  # noqa: F401 - the fixtures
    TPM_TOKEN,
    USER_PIN,
    SoftwareTpm,
    TokenEnv,
    software_tpm,
    tpm,
)
from tests.node.support import NodeProcess, init_node

pytestmark = [
    pytest.mark.hsm,
    pytest.mark.tpm,
    pytest.mark.skipif(os.environ.get("TL_FAULTS_TPM") == "0", reason="TL_FAULTS_TPM=0"),
]

OUTAGE_S = 8.0
PIN_VARIABLE = "TL_FAULTS_TPM_PIN"


def test_tpm_killed_under_load_stops_signing_and_resumes(
    tpm: TokenEnv,  # noqa: F811 - the imported fixture
    software_tpm: SoftwareTpm,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    os.environ[PIN_VARIABLE] = USER_PIN  # the node process inherits it
    node_dir = tmp_path / "node"
    init_node(
        node_dir, "--token", TPM_TOKEN, "--profile", "tpm2", "--pin-env", PIN_VARIABLE,
        "--key-label", f"faults-{os.getpid()}", anchor_every_s=0,
    )  # fmt: skip
    node = NodeProcess(node_dir, tmp_path / "node.log")
    load: SteadyLoad | None = None
    try:
        key = node_key(node.url)
        load = SteadyLoad(node.url)
        wait_for(lambda: height(node.url) >= 3, 60, "no commits before the fault", node)
        errors_before = metric(node.url, "tl_custody_module_errors_total", module="tpm2")
        recoveries_before = metric(node.url, "tl_custody_recoveries_total", module="tpm2")

        software_tpm.kill_swtpm()
        fault_at = time.monotonic()
        stalled, _ = wait_stalled(node.url, quiet_s=3.0, timeout_s=40)
        accepted_before = load.count(202)
        time.sleep(max(OUTAGE_S - (time.monotonic() - fault_at), 2.0))
        assert height(node.url) == stalled, "a block committed while the TPM was away"
        assert load.count(202) > accepted_before, "the API stopped accepting batches"
        assert metric(node.url, "tl_custody_module_errors_total", module="tpm2") > errors_before
        text = log_events(node)
        assert "token_lost" in text and "publish.retry" in text, node.log_tail()

        software_tpm.start()
        back_at = time.monotonic()
        recovery_s = wait_for(
            lambda: height(node.url) > stalled, 120, "commits did not resume", node
        )
        without_commits_s = time.monotonic() - fault_at
        assert metric(node.url, "tl_custody_recoveries_total", module="tpm2") > (recoveries_before)
        time.sleep(1.0)
        load.stop()
        check_everything_committed(node.url, load.acked)
        assert node.terminate() == 0
        top, trail = check_node_whole(node_dir, key)
        print(
            f"\nTPM (swtpm + abrmd killed) away {back_at - fault_at:.1f} s under load: "
            f"stalled at height {stalled}, {without_commits_s:.1f} s without commits, commits "
            f"resumed {recovery_s:.2f} s after the TPM returned; answers {dict(load.answers)}; "
            f"{len(load.acked)} acknowledged, all committed; height {top}; trail "
            f"{trail.records} records, {trail.errors} signing errors audited"
        )
    finally:
        if load is not None:
            load.stop()
        if software_tpm.swtpm is None or software_tpm.swtpm.poll() is not None:
            software_tpm.start()
        if node.process.poll() is None:
            node.kill()
