"""The README's main command runs ``scripts/net-demo.sh`` (``make run`` adds
``TL_DEMO_KEEP=1`` to keep the consortium up afterwards). Here the demo itself runs on a
consortium made with free ports, as a user would see it: transfers committed through every
member, balances that add up to what was issued, members agreeing, and nothing left running
once it ends."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.node.support import init_net, run_net, stop_net

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_of_the_readme_main_command(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    init_net(directory)  # net up then finds it made, on ports nothing else uses
    try:
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "net-demo.sh")],
            env={**os.environ, "TL_NET_DIR": str(directory), "TL_DEMO_TRANSFERS": "3"},
            capture_output=True,
            text=True,
            check=False,
            timeout=240,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-3000:]
        assert "12 transfers committed" in done.stdout, output[-3000:]
        assert re.search(r"total\s+4000\.00 USD \(4000\.00 issued\)", done.stdout), done.stdout
        balances = re.findall(r"bank-[a-d]'s account\s+([\d.]+) USD", done.stdout)
        assert len(balances) == 4 and len(set(balances)) > 1, balances  # money moved
        assert "all 4 answering members agree at height" in done.stdout, done.stdout
        status = json.loads(run_net("status", "--dir", str(directory), "--json").stdout)
        assert not any(m["running"] for m in status["members"])  # net down ran at the end
    finally:
        stop_net(directory)
