"""The backup format and its offline check (node/backup.py, docs/formats.md §10), in process.

A real RocksDB chain (genesis and a few intkey blocks, signed by a software P-256 key with
the guard's rule) and a real audit trail are backed up with ``create_backup``; then each
check of ``verify_backup`` is made to fire, including with the manifest re-signed by the
forger's own key so that the checks behind the signature are reached: a head that is not
the chain's, a trail count that is not the trail's, a file the manifest does not list.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.api.support import ADMIN
from tests.unit.chain.support import SoftwareSigner
from tests.unit.node.support import intkey_batches
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    PublisherLimits,
    build_genesis,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.custody import AuditLog
from trusted_ledger.custody.audit import canonical
from trusted_ledger.errors import InvalidInput
from trusted_ledger.node.backup import (
    MANIFEST_DOMAIN,
    BackupResult,
    create_backup,
    file_sha256,
    manifest_digest,
    prune_backups,
    verify_backup,
)
from trusted_ledger.processing.families import IdentitySubmissionPolicy, builtin_registry
from trusted_ledger.processing.families import identity as ident
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.storage import RocksDatabase

CHAIN_ID = "backup-test"
GENESIS_MS = 1_700_000_000_000


class Node:
    def __init__(self, root: Path) -> None:
        self.signer = SoftwareSigner()
        self.db = RocksDatabase(root / "chain", CHAIN_COLUMN_FAMILIES, create=True)
        self.store = ChainStore(self.db, CHAIN_ID)
        update = genesis_update(
            self.store.state, ident.identity_genesis_changes([ADMIN.public_key_hex])
        )
        genesis = build_genesis(self.signer, CHAIN_ID, update, GENESIS_MS)
        self.store.commit(genesis[0], genesis[1], update, {})
        executor = ProcessingBlockExecutor(
            builtin_registry(), self.store.state, policy_factory=IdentitySubmissionPolicy
        )
        self.pool = BatchPool()
        self.publisher = BlockPublisher(
            self.store, self.pool, executor, self.signer, PublisherLimits()
        )
        (root / "audit").mkdir()
        self.audit = AuditLog(root / "audit" / "key-usage.jsonl")
        for i in range(5):  # a trail with records (what the node's signer would write)
            self.audit.record_use(
                key_fingerprint=self.signer.public_key.fingerprint,
                purpose="block",
                digest=bytes([i]) * 32,
                position=None,
                result="ok",
                error=None,
                latency_us=1,
            )

    def blocks(self, count: int) -> None:
        for i in range(count):
            self.pool.add_many(intkey_batches(2), GENESIS_MS + i)
            assert self.publisher.publish(GENESIS_MS + 1000 * (i + 1)) is not None

    def backup(self, into: Path) -> BackupResult:
        return create_backup(
            db=self.db, audit=self.audit, signer=self.signer, chain_id=CHAIN_ID, into=into
        )

    def close(self) -> None:
        self.db.close()
        self.audit.close()


@pytest.fixture
def node(tmp_path: Path) -> Any:
    made = Node(tmp_path / "node")
    made.blocks(3)
    yield made
    made.close()


def _resign(backup: Path, signer: SoftwareSigner, edit: Any) -> None:
    """Change the manifest with ``edit`` and sign it again with ``signer`` (a forger)."""
    manifest = json.loads((backup / "manifest.json").read_bytes())
    edit(manifest)
    manifest["key"] = signer.public_key.fingerprint
    manifest["public_key"] = signer.public_key.spki_der.hex()
    data = canonical(manifest) + b"\n"
    (backup / "manifest.json").write_bytes(data)
    signature = signer.sign(manifest_digest(data), purpose="backup")
    (backup / "manifest.sig").write_text(signature.raw.hex() + "\n")


def test_a_backup_verifies_and_describes_the_chain(node: Node, tmp_path: Path) -> None:
    result = node.backup(tmp_path / "backups")
    head = node.store.head
    assert head is not None and head.number == 3
    manifest = result.manifest
    assert (manifest["height"], manifest["head"]) == (3, head.block_id.hex())
    assert manifest["trail"]["next_seq"] == node.audit.next_seq
    assert manifest["trail"]["head"] == node.audit.head
    report = verify_backup(result.path, trusted_keys=[node.signer.public_key], chain_id=CHAIN_ID)
    assert report.ok, report.problems
    assert report.blocks_checked == 4
    # The signature is over the domain-separated manifest bytes, by the node key.
    data = (result.path / "manifest.json").read_bytes()
    assert manifest_digest(data) != manifest_digest(MANIFEST_DOMAIN + data)
    assert node.signer.signed[-1] == ("backup", None, manifest_digest(data))
    # The live database goes on; a second backup is another directory, the first unchanged.
    node.blocks(1)
    second = node.backup(tmp_path / "backups")
    assert second.path != result.path and second.manifest["height"] == 4
    assert verify_backup(result.path).ok
    assert not list((tmp_path / "backups").glob(".partial-*"))


def test_checks_in_front_of_the_signature(node: Node, tmp_path: Path) -> None:
    result = node.backup(tmp_path / "backups")
    other = SoftwareSigner()
    report = verify_backup(result.path, trusted_keys=[other.public_key])
    assert any("not by this node's key" in p for p in report.problems)
    report = verify_backup(result.path, chain_id="another-chain")
    assert any("is not this node's 'another-chain'" in p for p in report.problems)

    copy = tmp_path / "copy"
    shutil.copytree(result.path, copy)
    manifest = (copy / "manifest.json").read_bytes()
    (copy / "manifest.json").write_bytes(b"{ " + manifest[1:])
    assert "not canonical JSON" in verify_backup(copy).problems[0]

    shutil.rmtree(copy)
    shutil.copytree(result.path, copy)
    (copy / "chain" / "stray.log").write_bytes(b"x")
    sst = sorted((copy / "chain").glob("*.sst"))[0]
    sst.unlink()
    problems = verify_backup(copy).problems
    assert "chain/stray.log: not listed in the manifest" in problems
    assert f"chain/{sst.name}: listed in the manifest but missing" in problems


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda m: m.update(height=m["height"] - 1), "chain/: head is block 3"),
        (lambda m: m.update(head="00" * 32), "chain/: head is block 3"),
        (
            lambda m: m["trail"].update(next_seq=m["trail"]["next_seq"] + 1),
            "audit/key-usage.jsonl: 5 records, the manifest says 6",
        ),
        (
            lambda m: m["trail"].update(head="11" * 32),
            "audit/key-usage.jsonl: the last record's hash is not the manifest's head",
        ),
        (lambda m: m.update(files=m["files"][1:]), "not listed in the manifest"),
        (lambda m: m.update(version=2), "format/version"),
        (lambda m: m.pop("created_us"), "must be an object with exactly the fields"),
    ],
)
def test_forged_manifests_signed_by_the_forger(
    node: Node, tmp_path: Path, edit: Any, expected: str
) -> None:
    result = node.backup(tmp_path / "backups")
    forger = SoftwareSigner()
    _resign(result.path, forger, edit)
    # Trusting the manifest's own key, the signature holds: the deeper check must catch it.
    problems = verify_backup(result.path).problems
    assert any(expected in p for p in problems), problems
    # And against the node's key, the forger's signature does not count.
    problems = verify_backup(result.path, trusted_keys=[node.signer.public_key]).problems
    assert problems


def test_a_backup_never_overwrites_and_cleans_up_after_failure(node: Node, tmp_path: Path) -> None:
    into = tmp_path / "backups"
    with pytest.raises(InvalidInput, match="exists already"):
        node.db.checkpoint(node.db.path)
    node.db.close()  # a closed database: the backup fails, and leaves nothing behind
    with pytest.raises(Exception, match="closed"):
        node.backup(into)
    assert list(into.iterdir()) == []


def test_retention_removes_only_this_chains_oldest_complete_backups(
    node: Node, tmp_path: Path
) -> None:
    into = tmp_path / "backups"
    made = []
    for _ in range(4):
        made.append(node.backup(into))
        node.blocks(1)
    foreign = into / "backup-another-chain-h3-20260101T000000Z"
    foreign.mkdir()
    unreadable = into / f"backup-{CHAIN_ID}-h9-20260101T000000Z"
    unreadable.mkdir()
    (unreadable / "manifest.json").write_text("not json")
    (into / ".partial-20260101T000000Z-1-000000").mkdir()
    newest = node.backup(into)
    kept = prune_backups(newest, into, CHAIN_ID, keep=3)
    assert kept.pruned == (made[0].path, made[1].path)  # oldest first, by created_us
    assert sorted(p.name for p in into.iterdir()) == sorted(
        [
            made[2].path.name,
            made[3].path.name,
            newest.path.name,
            foreign.name,
            unreadable.name,
            ".partial-20260101T000000Z-1-000000",
        ]
    )
    assert prune_backups(newest, into, CHAIN_ID, keep=1).pruned == (made[2].path, made[3].path)
    assert verify_backup(newest.path).ok
    with pytest.raises(InvalidInput, match="at least 1"):
        prune_backups(newest, into, CHAIN_ID, keep=0)


def test_unchanged_table_files_keep_the_hash_of_the_previous_backup(
    node: Node, tmp_path: Path
) -> None:
    """Hashing is incremental: a table file that is the very file (inode) of the newest
    earlier backup signed by this node keeps its hash; every hash is still the file's."""
    into = tmp_path / "backups"
    first = node.backup(into)
    total = sum(entry["size"] for entry in first.manifest["files"])
    assert (first.reused_from, first.hashed_bytes) == (None, total)
    node.blocks(2)
    second = node.backup(into)
    assert second.reused_from == first.path
    shared = [
        entry
        for entry in second.manifest["files"]
        if entry["path"].endswith(".sst")
        and (second.path / entry["path"]).stat().st_ino == _inode(first.path / entry["path"])
    ]
    assert shared, "the checkpoint hard-linked no table file of the first backup"
    total = sum(entry["size"] for entry in second.manifest["files"])
    assert second.hashed_bytes == total - sum(entry["size"] for entry in shared)
    for entry in second.manifest["files"]:  # taken over or not, every hash is the file's
        assert file_sha256(second.path / entry["path"]) == entry["sha256"], entry["path"]
    assert verify_backup(second.path, trusted_keys=[node.signer.public_key]).ok
    assert second.summary()["hashes_reused_from"] == str(first.path)

    # A table file replaced by a copy (same bytes, another inode) is read again.
    copied = second.path / shared[0]["path"]
    shutil.copyfile(copied, tmp_path / "copy")
    (tmp_path / "copy").replace(copied)
    third = node.backup(into)
    assert third.reused_from == second.path
    assert third.hashed_bytes >= shared[0]["size"]
    assert verify_backup(third.path).ok

    # The newest earlier backup whose signature does not verify is passed over.
    (third.path / "manifest.sig").write_text("00" * 64 + "\n")
    fourth = node.backup(into)
    assert fourth.reused_from == second.path
    assert verify_backup(fourth.path).ok
    # Nor is a backup signed by another key used (a forger's manifest could lie about hashes).
    _resign(fourth.path, SoftwareSigner(), lambda manifest: None)
    (second.path / "manifest.sig").write_text("00" * 64 + "\n")
    fifth = node.backup(into)
    assert fifth.reused_from == first.path
    assert verify_backup(fifth.path).ok


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None
