"""Offline checks of a stopped (or killed) node's directory, shared by the crash campaign
(tests/node/test_node_process.py) and the hardware-fault tests.

- ``ChainAudit``: the committed chain is whole. Every block from genesis is read from a
  *copy* of the node's RocksDB (so the node's own crash recovery still runs on the real
  directory at its next start) and committed into a fresh in-memory store through the
  ``BlockValidator``: hash links, proposer signature, batch root, commit certificate against
  the node's key, and re-execution (serial) of every batch on a fresh state, whose root must
  equal the header's and, at the head, the node's own (invariant 2). The audit is
  incremental: blocks checked once stay checked, and later runs must still hold them at
  the same heights.
- ``check_trail``: the key-usage trail verifies offline (``custody.verify_trail``), no
  (height, round, step) position carries two different digests signed "ok" (no double
  signature, invariant 3), no position in the trail (signed, or failed in the HSM after the
  guard let it through) lies above the guard file's watermark (the guard persisted it
  first), and every committed block's id has an "ok" record of purpose "block"
  (invariant 4).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    Block,
    BlockValidator,
    ChainStore,
    CommitCertificate,
    Membership,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.custody import PublicKey, SigningGuard, verify_trail
from trusted_ledger.custody.guard import Position
from trusted_ledger.node.bootstrap import genesis_state
from trusted_ledger.processing.families import IdentitySubmissionPolicy, builtin_registry
from trusted_ledger.storage import MemoryDatabase, RocksDatabase


def node_chain_id(node_dir: Path) -> str:
    for line in (node_dir / "node.toml").read_text().splitlines():
        if line.startswith("chain_id = "):
            return str(json.loads(line.split("=", 1)[1].strip()))
    raise AssertionError(f"no chain_id in {node_dir / 'node.toml'}")


def node_admin_keys(node_dir: Path) -> list[str]:
    return [(node_dir / "keys" / "admin.pub").read_text().strip()]


@dataclass
class ChainAudit:
    """Replays a node's committed chain into a fresh store, block by block, once each."""

    node_dir: Path
    node_key: PublicKey
    chain_id: str = ""
    checked_ids: list[bytes] = field(default_factory=list)  # block id at each height
    blocks_checked: int = 0
    batches_checked: int = 0

    def __post_init__(self) -> None:
        self.chain_id = self.chain_id or node_chain_id(self.node_dir)
        self._fresh = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), self.chain_id)
        executor = ProcessingBlockExecutor(
            builtin_registry(), self._fresh.state, policy_factory=IdentitySubmissionPolicy
        )
        self._validator = BlockValidator(self._fresh, executor, Membership([self.node_key]))

    def check(self) -> int:
        """Check every block committed since the last call; the node's height. The node
        must not be running (its database directory is copied first)."""
        with tempfile.TemporaryDirectory(prefix="tl-chain-copy-") as scratch:
            copy = Path(scratch) / "chain"
            shutil.copytree(self.node_dir / "chain", copy)
            db = RocksDatabase(copy, CHAIN_COLUMN_FAMILIES)
            try:
                return self._check_store(ChainStore(db, self.chain_id))
            finally:
                db.close()

    def _check_store(self, store: ChainStore) -> int:
        head = store.head
        assert head is not None, "the node's chain has no head"
        assert head.number + 1 >= len(self.checked_ids), (
            f"the head went back from {len(self.checked_ids) - 1} to {head.number}"
        )
        for height, block_id in enumerate(self.checked_ids):
            assert store.block_id_at(height) == block_id, f"block {height} changed"
        for height in range(len(self.checked_ids), head.number + 1):
            block = store.block_at(height, verify_batch_signatures=True)
            assert block is not None, f"block {height} missing below head {head.number}"
            certificate = store.certificate(block.id)
            assert certificate is not None, f"block {height} has no commit certificate"
            if height == 0:
                self._commit_genesis(block, certificate)
            else:
                # Links, proposer signature, batch root, certificate, re-execution.
                self._validator.commit(block, certificate)
            self.checked_ids.append(block.id)
            self.blocks_checked += 1
            self.batches_checked += len(block.batches)
        fresh_head = self._fresh.head
        assert fresh_head is not None
        assert fresh_head.block_id == head.block_id
        assert fresh_head.state_root == head.state_root, "re-executed state root differs"
        return head.number

    def _commit_genesis(self, block: Block, certificate: CommitCertificate) -> None:
        initial = genesis_state(self._fresh, node_admin_keys(self.node_dir))
        assert block.header.state_root == initial.root, "genesis state root differs"
        block.verify_proposer_signature()
        certificate.verify(Membership([self.node_key]), block)
        self._fresh.commit(block, certificate, initial, {})


@dataclass(frozen=True)
class TrailSummary:
    records: int
    signatures_ok: int
    errors: int
    positions: int


def check_trail(node_dir: Path, node_key: PublicKey, block_ids: list[bytes]) -> TrailSummary:
    """The trail verifies offline; no position signed twice; every block id audited."""
    lines = (node_dir / "audit" / "key-usage.jsonl").read_bytes().splitlines(keepends=True)
    report = verify_trail(lines, node_key)
    assert report.ok, report.problems[:3]
    digests_at: dict[tuple[int, ...], set[str]] = {}
    block_digests: set[str] = set()
    ok = errors = 0
    highest: Position | None = None
    for line in lines:
        record = json.loads(line)
        if record.get("kind") != "use":
            continue
        if record["position"] is not None and record["result"] != "refused":
            position = Position(*record["position"])
            highest = position if highest is None or position > highest else highest
        if record["result"] != "ok":
            errors += record["result"] == "error"
            continue
        ok += 1
        if record["purpose"] == "block":
            block_digests.add(record["digest"])
        if record["position"] is not None:
            digests_at.setdefault(tuple(record["position"]), set()).add(record["digest"])
    twice = {position: d for position, d in digests_at.items() if len(d) > 1}
    assert not twice, f"positions signed with two digests: {sorted(twice)[:5]}"
    (guard_file,) = (node_dir / "guard").glob("*.guard")
    watermark = SigningGuard.open(guard_file, node_key.fingerprint).watermark
    assert watermark is not None
    assert highest is None or highest <= watermark.position, (highest, watermark.position)
    unaudited = [i for i in block_ids if i.hex() not in block_digests]
    assert not unaudited, f"{len(unaudited)} committed blocks have no audit record"
    return TrailSummary(report.records, ok, errors, len(digests_at))
