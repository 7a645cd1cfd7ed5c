"""Restoring a node's chain from an on-line backup (node/backup.py; docs/operations.md §8).

The node must be stopped. Nothing is deleted: the chain directory in place (if any) is moved
aside to ``chain.replaced-<UTC time>``. What is restored and what is not:

- the chain: a verified copy of the backup's checkpoint (the backup itself stays untouched);
- the key-usage trail: only when the node has none. A trail in place is never replaced by
  the backup's (older) one: it is checked to continue the backup's, and kept either way;
- the signing guard and the consensus round state: never. They must be the newest ones, and
  the guard must exist: a node key without its guard cannot sign safely (give the node a new
  key instead).

In ``bft`` mode the restored node catches up from its peers at start. In ``single`` mode no
one else holds the blocks after the backup, and the guard keeps the key from signing those
heights again, so a restore that would leave the node behind its own key's watermark is
refused unless the operator says ``--accept-lost-heights`` (the node then cannot make blocks
until it is given a new key: docs/operations.md §6).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trusted_ledger.custody import PublicKey, SigningGuard
from trusted_ledger.errors import (
    ConfigurationError,
    InvalidInput,
    TrustedLedgerError,
    VerificationFailed,
)
from trusted_ledger.node.backup import CHAIN_DIR, TRAIL_PATH, verify_backup
from trusted_ledger.node.config import NodeConfig
from trusted_ledger.node.custody_setup import open_token
from trusted_ledger.storage.rocks import database_in_use


@dataclass
class RestoreReport:
    backup: Path
    height: int
    chain_moved_aside: Path | None = None
    trail: str = ""
    notes: list[str] = field(default_factory=list)


def node_public_keys(config: NodeConfig) -> list[PublicKey]:
    """The node's keys (``key_label`` and, if set, ``next_key_label``) read from its token."""
    pool = open_token(config)
    try:
        labels = [config.custody.key_label, config.custody.next_key_label]
        return [pool.key_info(label).public_key for label in labels if label]
    finally:
        pool.close()


def ensure_stopped(config: NodeConfig) -> None:
    """Refuse while the node runs: its control socket answers, or its database is locked."""
    control = config.control_socket_path
    if control.exists() and _answers(control):
        raise InvalidInput(
            f"the node is running (its control socket {control} answers)",
            hint="stop it first (systemctl stop trusted-ledger-node@NAME), then restore",
        )
    if database_in_use(config.chain_dir):
        raise InvalidInput(
            f"the chain database {config.chain_dir} is open in another process",
            hint="stop the node first, then restore",
        )


def _answers(control: Path) -> bool:
    """Whether a process listens on the Unix socket ``control`` (False for the stale file
    a killed node leaves behind)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(control))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def restore_backup(
    config: NodeConfig,
    backup: Path,
    *,
    node_keys: Sequence[PublicKey],
    accept_lost_heights: bool = False,
    clock: float | None = None,
) -> RestoreReport:
    """Put the backup's chain in place of the node's; see the module text for the rules.
    Every refusal happens before anything is changed."""
    if not node_keys:
        raise InvalidInput("restore needs the node's public key(s) to check the backup with")
    checked = verify_backup(backup, trusted_keys=node_keys, chain_id=config.node.chain_id)
    if not checked.ok or checked.manifest is None:
        shown = "; ".join(checked.problems[:5])
        raise VerificationFailed(
            f"backup {backup} does not verify ({len(checked.problems)} problem(s)): {shown}",
            hint="nothing was changed; `trusted-ledger node verify-backup` lists every problem",
        )
    ensure_stopped(config)
    height = int(checked.manifest["height"])
    report = RestoreReport(backup, height)
    _check_guard(config, node_keys[0], height, accept_lost_heights, report)
    trail_action = _plan_trail(config, backup, report)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock))
    staging = config.data_dir / f"chain.restoring-{stamp}"
    shutil.copytree(backup / CHAIN_DIR, staging, copy_function=shutil.copy2)
    _fsync_tree(staging)
    if config.chain_dir.exists():
        aside = config.data_dir / f"chain.replaced-{stamp}"
        config.chain_dir.rename(aside)
        report.chain_moved_aside = aside
    staging.rename(config.chain_dir)
    if trail_action == "copy":
        config.audit_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copyfile(backup / TRAIL_PATH, config.audit_path)
        os.chmod(config.audit_path, 0o600)
        _fsync_file(config.audit_path)
    _fsync_file(config.data_dir)
    return report


def _check_guard(
    config: NodeConfig,
    key: PublicKey,
    height: int,
    accept_lost_heights: bool,
    report: RestoreReport,
) -> None:
    if not config.guard_path.is_file():
        raise ConfigurationError(
            f"no signing guard at {config.guard_path}: the node key cannot sign safely "
            "(it may have signed positions the guard no longer knows)",
            hint="never restore or recreate a guard; give the node a new key "
            "(`trusted-ledger node new-key`, docs/operations.md §6), then restore",
        )
    try:
        watermark = SigningGuard.open(config.guard_path, key.fingerprint).watermark
    except TrustedLedgerError as exc:
        raise ConfigurationError(f"the signing guard cannot be read: {exc}") from exc
    signed_to = watermark.position.height if watermark is not None else 0
    if signed_to <= height:
        return
    if config.consensus.mode == "bft":
        report.notes.append(
            f"the key signed up to height {signed_to}; heights {height + 1}..{signed_to} are "
            "caught up from the peers at start (their certificates, not this key, decide)"
        )
        return
    lost = f"heights {height + 1}..{signed_to}"
    if not accept_lost_heights:
        raise InvalidInput(
            f"the backup ends at height {height}, but this single-mode node's key has "
            f"signed blocks up to height {signed_to}: {lost} would be lost, and the guard "
            "will not let the key sign them again",
            hint="restore a newer backup; or, knowingly, --accept-lost-heights (the node "
            "then needs a new key to make blocks, docs/operations.md §6)",
        )
    report.notes.append(f"{lost} are lost; the node key cannot sign them again")


def _plan_trail(config: NodeConfig, backup: Path, report: RestoreReport) -> str:
    current = config.audit_path
    if not current.exists():
        report.trail = "restored from the backup (records after the backup are lost)"
        report.notes.append(
            "the node had no key-usage trail: the backup's is restored; its anchors in the "
            "ledger will show the records lost after the backup"
        )
        return "copy"
    saved = (backup / TRAIL_PATH).read_bytes()
    with current.open("rb") as handle:
        prefix = handle.read(len(saved))
    if prefix == saved:
        report.trail = "kept the node's trail (it continues the backup's)"
    else:
        report.trail = "kept the node's trail"
        report.notes.append(
            f"the node's trail {current} does not continue the backup's: kept as it is "
            "(a trail is never replaced); check it with `trusted-ledger audit verify`"
        )
    return "keep"


def _fsync_file(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        _fsync_file(path)
    _fsync_file(root)
