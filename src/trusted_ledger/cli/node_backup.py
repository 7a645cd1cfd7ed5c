"""``trusted-ledger node backup | verify-backup | restore`` (docs/operations.md §8).

``backup`` asks the running node, over its control socket, for an on-line backup (a RocksDB
checkpoint and the key-usage trail, with a manifest the node key signs); ``verify-backup``
checks one offline; ``restore`` puts a backup's chain back into a stopped node.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trusted_ledger.errors import InvalidInput
from trusted_ledger.node.backup import verify_backup
from trusted_ledger.node.config import CONFIG_FILE_NAME, NodeConfig, load_config
from trusted_ledger.node.control import control_request
from trusted_ledger.node.restore import node_public_keys, restore_backup


def register_backup_actions(sub: Any) -> None:
    """Add ``backup``, ``verify-backup`` and ``restore`` to the ``node`` command group."""
    backup = sub.add_parser(
        "backup",
        help="have the running node write an on-line backup (checkpoint, trail, signed manifest)",
    )
    _config_options(backup)
    backup.add_argument(
        "--into",
        type=Path,
        help="directory to write the backup under (default: node.backup_dir)",
    )
    backup.add_argument(
        "--keep",
        type=int,
        metavar="N",
        help="then remove the oldest backups of this chain in that directory until N remain",
    )
    backup.add_argument("--json", action="store_true", help="print the summary as JSON")
    backup.set_defaults(handler=_cmd_backup)

    check = sub.add_parser("verify-backup", help="check a node backup offline")
    check.add_argument("backup", type=Path, help="the backup directory (backup-…)")
    check.add_argument(
        "--key",
        metavar="FINGERPRINT",
        help="the node key the manifest must be signed by (64 hex); without it the key in "
        "the manifest is used and its fingerprint printed, to compare",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=_cmd_verify_backup)

    restore = sub.add_parser(
        "restore",
        help="put a backup's chain back into a STOPPED node (the chain in place is kept aside)",
    )
    _config_options(restore)
    restore.add_argument("--from", dest="source", type=Path, required=True, help="the backup")
    restore.add_argument(
        "--accept-lost-heights",
        action="store_true",
        help="single mode only: restore although the node key signed blocks after the backup",
    )
    restore.set_defaults(handler=_cmd_restore)


def _config_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", type=Path, help=f"node directory (reads DIR/{CONFIG_FILE_NAME})")
    where.add_argument("--config", type=Path, help="configuration file")


def _load(args: argparse.Namespace) -> NodeConfig:
    path = Path(args.config) if args.config is not None else Path(args.dir) / CONFIG_FILE_NAME
    return load_config(path)


def _cmd_backup(args: argparse.Namespace) -> int:
    config = _load(args)
    body: dict[str, Any] = {}
    if args.into is not None:
        body["into"] = str(Path(args.into).resolve())
    if args.keep is not None:
        if args.keep < 1:
            raise InvalidInput(f"--keep {args.keep}: keep at least 1 backup (the new one)")
        body["keep"] = args.keep
    summary = control_request(config.control_socket_path, "POST", "/backup", body)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print(f"backup written: {summary['path']}")
    print(f"  chain     height {summary['height']}, head {summary['head']}")
    print(f"  trail     {summary['trail_records']} records")
    print(f"  files     {summary['files']} ({summary['bytes']} bytes)")
    reused = summary.get("hashes_reused_from")
    print(
        f"  hashed    {summary.get('hashed_bytes', summary['bytes'])} bytes"
        + (f" (unchanged table files' hashes taken from {reused})" if reused else "")
    )
    print(f"  signed by {summary['key']} (the node key, through the HSM; in the audit trail)")
    for path in summary["pruned"]:
        print(f"  removed   {path} (older than the newest {args.keep})")
    return 0


def _cmd_verify_backup(args: argparse.Namespace) -> int:
    report = verify_backup(args.backup)
    if args.key is not None:
        wanted = args.key.lower()
        if len(wanted) != 64 or any(c not in "0123456789abcdef" for c in wanted):
            raise InvalidInput(f"--key {args.key!r} is not a key fingerprint (64 hex)")
        if report.key is not None and report.key.fingerprint != wanted:
            report.problems.append(
                f"manifest.json: signed by key {report.key.fingerprint}, not by {wanted}"
            )
    if args.json:
        print(json.dumps(report.as_json(), indent=2, sort_keys=True))
        return 0 if report.ok else 1
    manifest = report.manifest or {}
    if report.ok:
        print(f"backup verified: {args.backup}")
        print(f"  chain     {manifest['chain_id']}, height {manifest['height']}")
        print(f"  blocks    {report.blocks_checked} checked (links, proposer, certificates)")
        print(f"  trail     {report.trail_records} records, hash chain and checkpoints verified")
        assert report.key is not None
        source = "as given by --key" if args.key else "from the manifest: compare it"
        print(f"  signed by {report.key.fingerprint} ({source})")
        return 0
    print(f"backup NOT verified: {args.backup} ({len(report.problems)} problem(s))")
    for problem in report.problems:
        print(f"  - {problem}")
    return 1


def _cmd_restore(args: argparse.Namespace) -> int:
    config = _load(args)
    report = restore_backup(
        config,
        args.source,
        node_keys=node_public_keys(config),
        accept_lost_heights=args.accept_lost_heights,
    )
    print(f"restored the chain of {args.source} (height {report.height}) into {config.chain_dir}")
    if report.chain_moved_aside is not None:
        print(f"  the chain that was there is kept in {report.chain_moved_aside}")
    print(f"  key-usage trail: {report.trail}")
    print("  signing guard and consensus state: left as they are (never restored)")
    for note in report.notes:
        print(f"  note: {note}")
    print("start the node; in bft mode it catches up from its peers")
    return 0
