"""Proofs from a real node process (SoftHSM key, RocksDB, loopback HTTP) through the real
``trusted-ledger proof`` command, then checked again offline from the saved file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.node.support import (
    IntkeyWriter,
    NodeProcess,
    cli,
    init_node,
    post_batches,
    request,
    statuses,
)
from trusted_ledger.custody import PublicKey
from trusted_ledger.processing.families.intkey import intkey_address

pytestmark = pytest.mark.hsm


def test_proof_commands_against_a_running_node(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=0)
    config = node_dir / "node.toml"
    # Checkpoint the key-usage trail every few signatures, so that a short run has several.
    config.write_text(
        config.read_text().replace(
            "audit_checkpoint_every_records = 1000", "audit_checkpoint_every_records = 3"
        )
    )
    node = NodeProcess(node_dir, tmp_path / "node.log")
    try:
        writer = IntkeyWriter("p")
        made = []
        for _ in range(4):  # four posts: several blocks, so several signatures
            batch = [writer.batch() for _ in range(3)]
            assert post_batches(node.url, [b for b, _, _ in batch])[0] == 202
            ids = [b.header_signature for b, _, _ in batch]
            final = statuses(node.url, ids, wait_s=30)
            assert {entry["status"] for entry in final.values()} == {"COMMITTED"}
            made += batch
        status, body = request(f"{node.url}/status")
        assert status == 200
        spki = body["data"]["node"]["public_key"]
        members = tmp_path / "members.json"
        members.write_text(json.dumps([spki]))
        pem = tmp_path / "node.pem"
        pem.write_text(PublicKey.from_spki(bytes.fromhex(spki)).pem)
        trust = ["--url", node.url, "--members", str(members)]

        batch, name, _value = made[4]
        saved = tmp_path / "batch-proof.json"
        done = cli("proof", "batch", batch.header_signature, *trust, "--out", str(saved))
        assert done.returncode == 0, done.stderr
        assert "PROVEN: batch" in done.stdout and "certified by a quorum (1)" in done.stdout
        done = cli("proof", "transaction", batch.transactions[0].header_signature, *trust)
        assert done.returncode == 0, done.stderr
        assert "(intkey 1.0, signed by" in done.stdout
        done = cli("proof", "state", intkey_address(name), *trust, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["value"] is not None
        done = cli("proof", "audit", "--url", node.url, "--public-key", str(pem))
        assert done.returncode == 0, done.stderr + done.stdout
        assert "both signed by the trusted node key" in done.stdout
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()

    # The node is gone: the saved proof still verifies, and an edited copy does not.
    done = cli("proof", "verify", str(saved), "--members", str(members))
    assert done.returncode == 0, done.stderr
    document = json.loads(saved.read_text())
    document["index"] += 1
    saved.write_text(json.dumps(document))
    done = cli("proof", "verify", str(saved), "--members", str(members))
    assert done.returncode == 1
    assert "path: the audit path does not lead" in done.stderr
