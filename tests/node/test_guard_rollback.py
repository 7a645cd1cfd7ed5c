"""A signing guard put back from an older copy (docs/roadmap-custody.md item 1), with a real
node process on its SoftHSM token (node/guard_check.py).

The old guard file is genuine (its checksum and key are right), so the guard itself cannot
tell. The node can: its key-usage trail and its chain show signatures above the old
watermark. Asserted with the old guard alone: the node raises the guard at start (logged
``guard.raised``, counted), then commits on as before, and no position is ever signed with
two digests. With an old chain put back as well: the single node refuses to start, naming
the heights, rather than sign a second, different block at a height it signed already; with
the newest chain back, it starts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.support import (
    SteadyLoad,
    check_everything_committed,
    check_node_whole,
    height,
    metric,
    node_key,
    wait_for,
)
from tests.node.support import IntkeyWriter, NodeProcess, cli, init_node

pytestmark = pytest.mark.hsm


def _load(url: str, prefix: str) -> SteadyLoad:
    """Intkey names of their own per run: ``set`` of a name that exists is invalid."""
    return SteadyLoad(url, writer=IntkeyWriter(prefix))


def _run_until(
    node_dir: Path,
    log: Path,
    at_least: int,
    inspect: Callable[[NodeProcess], None] | None = None,
) -> int:
    """Start the node (``inspect`` looks at it first), load it until its height is at least
    ``at_least``, check every acknowledged batch committed, stop it politely; its height."""
    node = NodeProcess(node_dir, log)
    load: SteadyLoad | None = None
    try:
        if inspect is not None:
            inspect(node)
        load = _load(node.url, log.stem)
        wait_for(lambda: height(node.url) >= at_least, 60, f"height {at_least}", node)
        load.stop()
        check_everything_committed(node.url, load.acked)
        return height(node.url)
    finally:
        if load is not None:
            load.stop()
        assert node.terminate() == 0, node.log_tail()


def test_an_old_guard_file_is_raised_and_an_old_chain_is_refused(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=0)
    (guard_file,) = (node_dir / "guard").glob("*.guard")

    first = _run_until(node_dir, tmp_path / "run1.log", 3)
    old_guard = guard_file.read_bytes()
    shutil.copytree(node_dir / "chain", tmp_path / "old-chain")
    second = _run_until(node_dir, tmp_path / "run2.log", first + 3)

    # The old guard alone: raised at start to what the trail shows its key last signed
    # (the chain's newest signatures are below that); commits go on.
    guard_file.write_bytes(old_guard)
    keys = []

    def raised_at_start(node: NodeProcess) -> None:
        keys.append(node_key(node.url))
        events = [
            json.loads(line)
            for line in node.log_path.read_text().splitlines()
            if line.startswith("{") and '"guard.raised"' in line
        ]
        assert [event["source"] for event in events] == ["trail"], node.log_tail()
        assert events[0]["signed"][0] >= second, events
        assert metric(node.url, "tl_custody_guard_raised_total", source="trail") == 1

    _run_until(node_dir, tmp_path / "run3.log", second + 3, raised_at_start)
    top, _ = check_node_whole(node_dir, keys[0])  # and no position signed twice
    shutil.copytree(node_dir / "chain", tmp_path / "newest-chain")

    # An old chain and an old guard (the trail kept): refused before signing anything,
    # naming both heights.
    trail_file = node_dir / "audit" / "key-usage.jsonl"
    trail_before = trail_file.read_bytes()
    guard_file.write_bytes(old_guard)
    shutil.rmtree(node_dir / "chain")
    shutil.copytree(tmp_path / "old-chain", node_dir / "chain")
    refused = cli("node", "run", "--dir", str(node_dir))
    assert refused.returncode == 1, refused.stderr
    assert f"ends at height {first}" in refused.stderr, refused.stderr
    assert f"signed blocks up to height {top}" in refused.stderr, refused.stderr
    assert "node restore" in refused.stderr, refused.stderr
    assert trail_file.read_bytes() == trail_before

    # The newest chain back: it starts and commits on top of it.
    shutil.rmtree(node_dir / "chain")
    shutil.copytree(tmp_path / "newest-chain", node_dir / "chain")
    _run_until(node_dir, tmp_path / "run4.log", top + 1)
    check_node_whole(node_dir, keys[0])
