"""On-line backup and restore of a real node process (docs/operations.md §8).

``node backup`` asks the running node over its control socket; ``node verify-backup``
checks a backup offline; ``node restore`` puts a backup's chain back into a stopped node.
Checked here with a real single-mode node on SoftHSM:

- a backup taken while the node runs verifies, holds exactly the chain the node had, and
  the node's key-usage trail records the signature over its manifest;
- a restore is refused while the node runs, for a backup older than what the node key has
  signed (single mode: those heights would be lost), and for a backup with any file changed
  (each kind of file tried); every refusal leaves the node's data untouched;
- after the chain directory is lost (and the node was killed, leaving its socket file), the
  newest backup is restored and the node starts on exactly the backed-up chain and commits
  new blocks on top of it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

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
from trusted_ledger.custody import PublicKey, verify_trail
from trusted_ledger.errors import InvalidInput
from trusted_ledger.node.config import load_config
from trusted_ledger.node.control import control_request


def _commit(url: str, writer: IntkeyWriter, count: int) -> None:
    made = [writer.batch()[0] for _ in range(count)]
    status, body = post_batches(url, made)
    assert status == 202, body
    ids = [batch.header_signature for batch in made]
    final = statuses(url, ids, wait_s=30)
    assert {entry["status"] for entry in final.values()} == {"COMMITTED"}


def _head(url: str) -> dict[str, Any]:
    status, body = request(f"{url}/status")
    assert status == 200, body
    return body["data"]["head"]  # type: ignore[no-any-return]


def _block_ids(url: str, top: int) -> list[str]:
    ids = []
    for height in range(top + 1):
        status, body = request(f"{url}/blocks/num/{height}")
        assert status == 200, body
        ids.append(body["data"]["header_signature"])
    return ids


def _backup(node_dir: Path, *extra: str) -> dict[str, Any]:
    done = cli("node", "backup", "--dir", str(node_dir), "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _verify(backup: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = cli("node", "verify-backup", str(backup), "--json", *extra)
    return done.returncode, json.loads(done.stdout)


def _tree_digest(root: Path) -> str:
    """One hash over every file's path and bytes under ``root``: "nothing changed"."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def test_backup_verify_restore_with_a_real_node(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=0)  # heads compared across restores: no own blocks
    backups = tmp_path / "backups"
    node = NodeProcess(node_dir, tmp_path / "node.log")
    writer = IntkeyWriter("b")
    try:
        body = request(f"{node.url}/status")[1]
        key = PublicKey.from_spki(bytes.fromhex(body["data"]["node"]["public_key"]))
        _commit(node.url, writer, 12)
        first = _backup(node_dir, "--into", str(backups))
        head = _head(node.url)
        assert first["height"] == head["block_num"]
        assert first["head"] == head["block_id"]
        assert first["key"] == key.fingerprint
        first_path = Path(first["path"])
        assert first_path.parent == backups and first_path.name.startswith("backup-")

        code, report = _verify(first_path, "--key", key.fingerprint)
        assert code == 0, report
        assert report["blocks_checked"] == first["height"] + 1
        assert report["trail_records"] == first["trail_records"]
        # Another key's fingerprint: refused by name.
        code, report = _verify(first_path, "--key", "ab" * 32)
        assert code == 1 and "not by abab" in " ".join(report["problems"])

        # The manifest's signature went through the audited signer: in the trail.
        trail = (node_dir / "audit" / "key-usage.jsonl").read_bytes().splitlines(keepends=True)
        assert verify_trail(trail, key).ok
        uses = [json.loads(line) for line in trail]
        assert any(r.get("purpose") == "backup" and r.get("result") == "ok" for r in uses)

        # A restore while the node runs: refused, nothing touched.
        before = _tree_digest(node_dir / "chain")
        done = cli("node", "restore", "--dir", str(node_dir), "--from", str(first_path))
        assert done.returncode != 0
        assert "running" in done.stderr, done.stderr

        _commit(node.url, writer, 8)
        second = _backup(node_dir, "--into", str(backups))  # the newest
        assert second["height"] > first["height"]
        second_path = Path(second["path"])
        expected_ids = _block_ids(node.url, second["height"])
        node.kill()  # leaves its control socket file behind
    finally:
        if node.process.poll() is None:
            node.kill()
    assert before != _tree_digest(node_dir / "chain")  # (the node went on committing)

    # Older than what the key has signed, in single mode: refused, naming the lost heights.
    untouched = _tree_digest(node_dir / "chain")
    done = cli("node", "restore", "--dir", str(node_dir), "--from", str(first_path))
    assert done.returncode != 0
    lost = f"heights {first['height'] + 1}..{second['height']}"
    assert lost in done.stderr, done.stderr
    assert _tree_digest(node_dir / "chain") == untouched

    # A changed byte in any kind of file of the backup: found, and the restore refused.
    kinds = {
        "manifest.json": lambda p: p.name == "manifest.json",
        "manifest.sig": lambda p: p.name == "manifest.sig",
        "trail": lambda p: p.suffix == ".jsonl",
        "table": lambda p: p.suffix == ".sst",
        "rocksdb manifest": lambda p: p.name.startswith("MANIFEST-"),
        "options": lambda p: p.name.startswith("OPTIONS-"),
        "current": lambda p: p.name == "CURRENT",
    }
    for kind, matches in kinds.items():
        tampered = tmp_path / f"tampered-{kind.replace(' ', '-')}"
        shutil.copytree(second_path, tampered)
        (victim,) = [p for p in sorted(tampered.rglob("*")) if p.is_file() and matches(p)][:1]
        _flip(victim, 37)
        code, report = _verify(tampered)
        assert code == 1, (kind, report)
        named = victim.relative_to(tampered).as_posix()
        assert any(named in problem.split(": ")[0] for problem in report["problems"]), (
            kind,
            report,
        )
        done = cli("node", "restore", "--dir", str(node_dir), "--from", str(tampered))
        assert done.returncode != 0 and "does not verify" in done.stderr, (kind, done.stderr)
        assert _tree_digest(node_dir / "chain") == untouched

    # The chain directory is lost; the newest backup is restored.
    shutil.rmtree(node_dir / "chain")
    done = cli("node", "restore", "--dir", str(node_dir), "--from", str(second_path))
    assert done.returncode == 0, done.stderr
    assert f"height {second['height']}" in done.stdout
    assert "kept the node's trail (it continues the backup's)" in done.stdout
    code, _ = _verify(second_path)
    assert code == 0  # the restore copied: the backup itself is as it was

    node = NodeProcess(node_dir, tmp_path / "node.log")  # over the stale socket file
    try:
        assert _head(node.url)["block_num"] == second["height"]
        assert _block_ids(node.url, second["height"]) == expected_ids
        _commit(node.url, writer, 3)
        assert _head(node.url)["block_num"] > second["height"]
        # A backup into the configured default directory (node.backup_dir: data_dir/backups).
        third = _backup(node_dir)
        assert Path(third["path"]).parent == node_dir / "backups"
        assert _verify(Path(third["path"]))[0] == 0
        # Retention: the newest two of this chain stay in `backups`, the first one goes.
        fourth = _backup(node_dir, "--into", str(backups), "--keep", "2")
        assert fourth["pruned"] == [str(first_path)]
        assert sorted(backups.iterdir()) == sorted([second_path, Path(fourth["path"])])
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()


def test_backup_of_a_stopped_node_says_it_is_not_running(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=0)
    done = cli("node", "backup", "--dir", str(node_dir))
    assert done.returncode != 0
    assert "the node is not running" in done.stderr, done.stderr


def test_control_socket_is_private_and_refuses_bad_requests(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir, anchor_every_s=0)
    node = NodeProcess(node_dir, tmp_path / "node.log")
    try:
        socket_path = load_config(node_dir / "node.toml").control_socket_path
        assert socket_path.stat().st_mode & 0o777 == 0o600
        for body, message in [
            ({"into": "relative/dir"}, "absolute directory path"),
            ({"to": "/tmp/x"}, "must be {}"),
            ({"keep": 0}, "keep must be a whole number"),
            ({"keep": True}, "keep must be a whole number"),
        ]:
            with pytest.raises(InvalidInput, match=message):
                control_request(socket_path, "POST", "/backup", body)
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()
    assert not socket_path.exists()  # removed at a clean stop
