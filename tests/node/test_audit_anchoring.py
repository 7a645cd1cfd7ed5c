"""A real node anchors its key-usage trail in its own ledger (issue 7): ``node run`` with
``[custody] anchor_every_s = 1`` and real SoftHSM, RocksDB and HTTP. The anchors commit,
each names a real signed checkpoint of the trail, the trail still verifies offline, the
metrics count them, ``audit anchors`` lists them, and a restart anchors again at once."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.node.support import (
    NET_NAMES,
    NodeProcess,
    RunningNet,
    cli,
    init_net,
    init_node,
    request,
    stop_net,
)
from trusted_ledger.custody import PublicKey, verify_trail
from trusted_ledger.node.members import load_members
from trusted_ledger.processing.families.audit_anchor import (
    AnchorRecord,
    audit_anchor_address,
    decode_anchor_record,
)

pytestmark = pytest.mark.hsm
WAIT_S = 90


def _node_key(url: str) -> PublicKey:
    status, body = request(f"{url}/status")
    assert status == 200, body
    return PublicKey.from_spki(bytes.fromhex(body["data"]["node"]["public_key"]))


def _record(url: str, key: PublicKey) -> AnchorRecord | None:
    status, body = request(f"{url}/state/{audit_anchor_address(key.fingerprint)}")
    if status == 404:
        return None
    assert status == 200, body
    return decode_anchor_record(base64.b64decode(body["data"]))


def _wait_for_anchor(
    url: str, key: PublicKey, done: Callable[[AnchorRecord], bool]
) -> AnchorRecord:
    """Polls the node's anchor record until ``done``; the bound only stops a hung test, it
    asserts nothing about speed."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        record = _record(url, key)
        if record is not None and done(record):
            return record
        time.sleep(0.2)
    raise AssertionError(f"anchor record not reached in {WAIT_S} s: {_record(url, key)}")


def _metric(url: str, sample: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[1])
    raise AssertionError(f"{sample} not in /metrics")


def _check_against_trail(node_dir: Path, key: PublicKey, record: AnchorRecord) -> None:
    """The trail verifies offline, and every anchor the ledger holds is a checkpoint in it:
    the record at head_seq has the anchored hash, and the checkpoint's signature is the
    anchored one (the latest) — the ledger and the trail agree."""
    lines = (node_dir / "audit" / "key-usage.jsonl").read_bytes().splitlines()
    report = verify_trail(lines, key)
    assert report.ok, report.problems[:3]
    records = [json.loads(line) for line in lines]
    checkpoints = {r["head_seq"]: r for r in records if r["kind"] == "checkpoint"}
    latest = record.anchor
    assert checkpoints[latest.head_seq]["signature"] == latest.signature.hex()
    for head_seq, head_hash, _ in ((latest.head_seq, latest.head_hash, ""), *record.history):
        assert records[head_seq]["hash"] == head_hash.hex()
        assert checkpoints[head_seq]["head"] == head_hash.hex()


def test_node_anchors_its_trail_and_the_trail_still_verifies(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=1)  # (node init writes the default, 300)
    config = node_dir / "node.toml"

    node = NodeProcess(node_dir, tmp_path / "node.log")
    try:
        key = _node_key(node.url)
        record = _wait_for_anchor(node.url, key, lambda r: r.anchors >= 3)
        heads = [record.anchor.head_seq, *(seq for seq, _, _ in record.history)]
        assert heads == sorted(heads, reverse=True) and len(set(heads)) == len(heads)
        assert record.anchor.public_key == key
        record.anchor.verify()
        committed = 'tl_audit_anchors_total{result="committed"}'
        deadline = time.monotonic() + WAIT_S  # the node notices its commits on a poll
        while _metric(node.url, committed) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _metric(node.url, committed) >= 3
        assert _metric(node.url, 'tl_audit_anchors_total{result="failed"}') == 0
        assert _metric(node.url, "tl_audit_anchor_age_seconds") >= 0
        listed = cli("audit", "anchors", "--url", node.url, "--json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)["anchors"]
        assert [row["fingerprint"] for row in rows] == [key.fingerprint]
        assert rows[0]["head_seq"] >= record.anchor.head_seq
        table = cli("audit", "anchors", "--url", node.url)
        assert key.fingerprint in table.stdout and "head_seq" in table.stdout
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()
    # Restart with anchoring every hour: the start-up anchor alone must cover what the
    # first run left (a forced checkpoint past every checkpoint of that run).
    lines = (node_dir / "audit" / "key-usage.jsonl").read_bytes().splitlines()
    last_run_head = max(
        json.loads(line)["head_seq"] for line in lines if b'"kind":"checkpoint"' in line
    )
    config.write_text(config.read_text().replace("anchor_every_s = 1", "anchor_every_s = 3600"))
    node = NodeProcess(node_dir, tmp_path / "node.log")
    try:
        record = _wait_for_anchor(node.url, key, lambda r: r.anchor.head_seq > last_run_head)
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()
    _check_against_trail(node_dir, key, record)


def test_every_member_of_a_consortium_anchors_and_all_agree(tmp_path: Path) -> None:
    """bft mode: each member's anchor batches reach the others through the gossip path and
    commit in the shared chain; every member's state holds every member's anchor."""
    directory = tmp_path / "net"
    init_net(directory)
    members = load_members(directory / "members.toml")
    for member in members:
        config = directory / member.name / "node.toml"
        text = config.read_text()
        assert "\nanchor_every_s = 300\n" in text
        config.write_text(text.replace("\nanchor_every_s = 300\n", "\nanchor_every_s = 2\n"))
    net = RunningNet(directory)
    try:
        net.start()
        records = {
            member.name: _wait_for_anchor(
                net.urls[NET_NAMES[0]], member.public_key, lambda r: r.anchors >= 2
            )
            for member in members
        }
        listed = cli("audit", "anchors", "--url", net.urls[NET_NAMES[0]], "--json")
        assert listed.returncode == 0, listed.stderr
        fingerprints = {row["fingerprint"] for row in json.loads(listed.stdout)["anchors"]}
        assert fingerprints == {member.fingerprint for member in members}
        net.down(*NET_NAMES)
    finally:
        stop_net(directory)
    for member in members:  # each member's own trail verifies and holds what it anchored
        _check_against_trail(directory / member.name, member.public_key, records[member.name])
