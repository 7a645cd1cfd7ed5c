"""The node as a user runs it: ``node init``, ``node run``, batches over HTTP, restarts,
and SIGKILL under load (issue 4). Real processes, real SoftHSM (each node its own embedded
token), real RocksDB, loopback HTTP.

The crash test's promise is the one a bank's client relies on: every batch the node
answered 202 for is committed after any number of kills (never lost, never invalid), every
batch a client saw COMMITTED stays committed in the same block, and the state holds exactly
what the committed batches wrote. ``TL_NODE_CRASH_ITERATIONS`` raises the kill count for a
longer soak (default 8).

After every kill, with the node dead, the directory is checked offline (tests/faults/
checks.py): the chain is whole (every new block's hash link, proposer signature, batch root
and commit certificate, and its batches re-executed serially into a fresh store whose state
root must equal the header's and the node's), and the key-usage trail verifies, signs no
position twice and holds a record for every committed block.
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from tests.faults.checks import ChainAudit, check_trail
from tests.node.support import (
    IntkeyWriter,
    NodeProcess,
    init_node,
    post_batches,
    request,
    statuses,
)
from trusted_ledger.custody import PublicKey, verify_trail
from trusted_ledger.processing.families.intkey import decode_intkey_state, intkey_address
from trusted_ledger.state import namespace_prefix

INTKEY_NAMESPACE = namespace_prefix("intkey")
CRASH_ITERATIONS = int(os.environ.get("TL_NODE_CRASH_ITERATIONS", "8"))
CRASH_SECONDS_PER_ITERATION_MAX = 15  # a bound for pytest-timeout, not a measurement

pytestmark = pytest.mark.hsm


def _value(url: str, name: str) -> int | None:
    status, body = request(f"{url}/state/{intkey_address(name)}")
    if status == 404:
        return None
    assert status == 200, body
    return decode_intkey_state(base64.b64decode(body["data"])).get(name)


def _intkey_state(url: str) -> dict[str, int]:
    """Every intkey name and value at the head, read page by page."""
    found: dict[str, int] = {}
    query = f"{url}/state?address={INTKEY_NAMESPACE}&limit=1000"
    status, body = request(query)
    head = body["head"]
    while True:
        assert status == 200, body
        for entry in body["data"]:
            found.update(decode_intkey_state(base64.b64decode(entry["data"])))
        position = body["paging"].get("next_position")
        if not position:
            return found
        status, body = request(f"{query}&head={head}&start={position}")


def _node_key(url: str) -> PublicKey:
    status, body = request(f"{url}/status")
    assert status == 200, body
    return PublicKey.from_spki(bytes.fromhex(body["data"]["node"]["public_key"]))


def _check_audit_trail(node_dir: Path, url: str) -> None:
    key = _node_key(url)
    lines = (node_dir / "audit" / "key-usage.jsonl").read_bytes().splitlines(keepends=True)
    report = verify_trail(lines, key)
    assert report.ok, report.problems[:3]
    assert report.records >= 2


def test_init_run_submit_restart(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=0)  # heads are compared across the restart
    node = NodeProcess(node_dir, tmp_path / "node.log")
    try:
        status, body = request(f"{node.url}/status")
        assert status == 200
        assert body["data"]["head"]["block_num"] == 0
        writer = IntkeyWriter("k")
        made = [writer.batch() for _ in range(25)]
        status, body = post_batches(node.url, [batch for batch, _, _ in made])
        assert status == 202, body
        ids = [batch.header_signature for batch, _, _ in made]
        assert set(body["link"].split("id=")[1].split("&")[0].split(",")) == set(ids)
        final = statuses(node.url, ids, wait_s=30)
        assert {entry["status"] for entry in final.values()} == {"COMMITTED"}
        assert all(_value(node.url, name) == value for _, name, value in made)
        head = request(f"{node.url}/status")[1]["data"]["head"]
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()

    node = NodeProcess(node_dir, tmp_path / "node.log")
    try:
        assert request(f"{node.url}/status")[1]["data"]["head"] == head
        assert all(_value(node.url, name) == value for _, name, value in made)
        batch, name, value = writer.batch()
        assert post_batches(node.url, [batch])[0] == 202
        assert (
            statuses(node.url, [batch.header_signature], wait_s=30)[batch.header_signature][
                "status"
            ]
            == "COMMITTED"
        )
        assert _value(node.url, name) == value
        _check_audit_trail(node_dir, node.url)
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()


class Load:
    """Submits batches until the node goes away; records what the node promised."""

    def __init__(self, url: str, writer: IntkeyWriter, rng: random.Random) -> None:
        self.url = url
        self.writer = writer
        self.rng = rng
        self.acked: dict[str, tuple[str, int]] = {}  # batch id -> (name, value)
        self.committed: dict[str, str] = {}  # batch id -> block id, as a client saw it
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                made = [self.writer.batch() for _ in range(self.rng.randint(1, 40))]
                status, _ = post_batches(self.url, [batch for batch, _, _ in made])
                if status == 202:
                    for batch, name, value in made:
                        self.acked[batch.header_signature] = (name, value)
                if self.rng.random() < 0.3 and self.acked:
                    # The oldest acknowledged batches not yet seen committed: likeliest to
                    # have committed by now.
                    waiting = [b for b in self.acked if b not in self.committed][:100]
                    for batch_id, entry in statuses(self.url, waiting).items():
                        if entry["status"] == "COMMITTED":
                            self.committed[batch_id] = entry["block_id"]
        except (urllib.error.URLError, ConnectionError, OSError, AssertionError):
            return  # the node was killed mid-request: that request's fate is unknown


@pytest.mark.timeout(120 + CRASH_SECONDS_PER_ITERATION_MAX * CRASH_ITERATIONS)
def test_sigkill_under_http_load_loses_nothing(tmp_path: Path) -> None:
    iterations = CRASH_ITERATIONS
    started = time.monotonic()
    rng = random.Random(int(os.environ.get("TL_NODE_CRASH_SEED", "4")))
    node_dir = tmp_path / "node"
    init_node(node_dir)
    writer = IntkeyWriter("c")
    acked: dict[str, tuple[str, int]] = {}
    committed: dict[str, str] = {}
    log = tmp_path / "node.log"
    audit: ChainAudit | None = None
    for iteration in range(iterations + 1):
        node = NodeProcess(node_dir, log)
        if audit is None:
            audit = ChainAudit(node_dir, _node_key(node.url))
        try:
            # Everything promised before the kills: acknowledged batches are committed or
            # still pending (never unknown or invalid); committed ones did not move.
            seen = statuses(node.url, list(acked))
            for batch_id in acked:
                assert seen[batch_id]["status"] in ("COMMITTED", "PENDING"), (
                    iteration,
                    seen[batch_id],
                )
            for batch_id, block_id in committed.items():
                assert seen[batch_id]["status"] == "COMMITTED"
                assert seen[batch_id]["block_id"] == block_id
            sample = [acked[b] for b in seen if seen[b]["status"] == "COMMITTED"]
            for name, value in rng.sample(sample, min(20, len(sample))):
                assert _value(node.url, name) == value
            if iteration == iterations:
                break
            load = Load(node.url, writer, rng)
            time.sleep(rng.uniform(0.3, 2.0))
            node.kill()
            load.thread.join(timeout=60)
            acked.update(load.acked)
            committed.update(load.committed)
            # With the node dead: the chain and the trail are whole as the kill left them.
            audit.check()
            check_trail(node_dir, audit.node_key, audit.checked_ids)
        finally:
            if node.process.poll() is None and iteration < iterations:
                node.kill()
    try:
        # The last run: every acknowledged batch commits, and state holds every write.
        final = statuses(node.url, list(acked), wait_s=30)
        assert {entry["status"] for entry in final.values()} <= {"COMMITTED"}
        state = _intkey_state(node.url)
        assert all(state.get(name) == value for name, value in acked.values())
        # Beyond those: batches whose POST the kill cut off may have been accepted and
        # committed without the client hearing so; nothing else may be in state.
        assert all(value == int(name[1:]) for name, value in state.items())
        _check_audit_trail(node_dir, node.url)
        assert len(committed) > iterations  # the load did run and commit between kills
        assert node.terminate() == 0
        assert audit is not None
        height = audit.check()
        trail = check_trail(node_dir, audit.node_key, audit.checked_ids)
        summary = {
            "kills": iterations,
            "seed": int(os.environ.get("TL_NODE_CRASH_SEED", "4")),
            "acknowledged": len(acked),
            "seen_committed": len(committed),
            "height": height,
            "blocks_replayed": audit.blocks_checked,
            "batches_replayed": audit.batches_checked,
            "trail_records": trail.records,
            "signatures": trail.signatures_ok,
            "signing_errors": trail.errors,
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"\ncrash campaign: {json.dumps(summary)}")
        if os.environ.get("TL_NODE_CRASH_REPORT"):
            Path(os.environ["TL_NODE_CRASH_REPORT"]).write_text(json.dumps(summary) + "\n")
    finally:
        if node.process.poll() is None:
            node.kill()
