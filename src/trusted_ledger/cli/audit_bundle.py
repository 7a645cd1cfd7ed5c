"""``trusted-ledger audit export --config node.toml --out BUNDLE`` and ``audit verify-bundle
BUNDLE``: the offline compliance bundle (docs/formats.md §9, docs/operations.md).

``audit export LOG`` (one trail as JSON Lines or CSV) keeps working: the bundle export is
chosen by ``--config``. The node's chain database is opened read-only, so the export runs
on the node host while the node keeps committing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trusted_ledger.audit import (
    BundleReport,
    ReadOnlyRocksDatabase,
    check_trail_name,
    export_bundle,
    verify_bundle,
)
from trusted_ledger.chain import ChainStore
from trusted_ledger.chain.membership import ChainMember
from trusted_ledger.errors import InvalidInput
from trusted_ledger.node.config import load_config
from trusted_ledger.node.members import load_members

EXIT_OK = 0
EXIT_FINDINGS = 1


def register_bundle(audit_actions: Any, export: argparse.ArgumentParser) -> None:
    """Add the bundle options to ``audit export`` and the ``verify-bundle`` action."""
    trail_export = export.get_default("handler")
    export.add_argument("--config", type=Path, help="bundle: the node's node.toml")
    export.add_argument("--out", type=Path, help="bundle: the file to write")
    export.add_argument("--from", dest="from_height", type=int, default=0, metavar="N")
    export.add_argument("--to", dest="to_height", type=int, metavar="M", help="default: head")
    export.add_argument(
        "--trail", action="append", default=[], metavar="NAME=PATH",
        help="bundle: another member's key-usage trail, as its bank handed it over",
    )  # fmt: skip
    export.add_argument("--json", action="store_true", help="bundle: machine-readable summary")
    export.set_defaults(handler=_export_handler(trail_export))
    verify = audit_actions.add_parser(
        "verify-bundle", help="check a compliance bundle offline (no node, no database)"
    )
    verify.add_argument("bundle", type=Path, help="the file `audit export --config` wrote")
    verify.add_argument(
        "--trusted-genesis", metavar="HEX", help="the genesis block id your consortium published"
    )
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.set_defaults(handler=_cmd_verify_bundle)


def _export_handler(
    trail_export: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        if args.config is None:
            if args.log is None:
                raise InvalidInput(
                    "audit export needs a trail file, or --config and --out for a bundle",
                    hint="trusted-ledger audit export --config node.toml --out bundle.tar",
                )
            return trail_export(args)
        return _cmd_export_bundle(args)

    return handler


def _trails(values: list[str]) -> dict[str, bytes]:
    trails: dict[str, bytes] = {}
    for value in values:
        name, separator, path = value.partition("=")
        if not separator or not path:
            raise InvalidInput(
                f"--trail {value!r} is not NAME=PATH", hint="e.g. --trail bank-b=bank-b.jsonl"
            )
        check_trail_name(name)
        if name in trails:
            raise InvalidInput(f"--trail {name} is given twice")
        try:
            trails[name] = Path(path).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"--trail {name}: cannot read {path}: {exc.strerror}") from exc
    return trails


def _own_trail(path: Path) -> bytes | None:
    """The running node's trail up to its last whole record (it may be appending one)."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def _cmd_export_bundle(args: argparse.Namespace) -> int:
    if args.out is None:
        raise InvalidInput("--out is required with --config", hint="--out bundle.tar")
    if args.log is not None:
        raise InvalidInput("give either a trail file or --config, not both")
    config = load_config(args.config)
    bootstrap = None
    if config.consensus.mode == "bft" and config.consensus.members_file:
        members = load_members(config.resolve(config.consensus.members_file))
        bootstrap = [ChainMember(member.name, member.public_key) for member in members]
    # The database first, then the trails: every anchor in the database's view was made
    # from a checkpoint already in the trail files when they are read after it.
    database = ReadOnlyRocksDatabase(config.chain_dir)
    try:
        trails = _trails(args.trail)
        own = _own_trail(config.audit_path)
        summary = export_bundle(
            ChainStore(database, config.node.chain_id), args.out, bootstrap=bootstrap,
            trails=trails, own_trail=own, from_height=args.from_height, to_height=args.to_height,
        )  # fmt: skip
    finally:
        database.close()
    facts = {
        "bundle": str(summary.path),
        "from_height": summary.from_height,
        "to_height": summary.to_height,
        "parts": summary.parts,
        "membership_proofs": summary.membership_proofs,
        "anchor_proofs": summary.anchor_proofs,
        "trails": list(summary.trails),
        "bytes": summary.bytes,
    }
    if args.json:
        print(json.dumps(facts, indent=2, sort_keys=True))
        return EXIT_OK
    print(
        f"wrote {summary.path}: blocks {summary.from_height}..{summary.to_height}, "
        f"{summary.parts} parts, {summary.bytes} bytes"
    )
    print(f"membership proofs: {summary.membership_proofs}, anchor proofs: {summary.anchor_proofs}")
    print(f"trails: {', '.join(summary.trails) or 'none'}")
    return EXIT_OK


def _cmd_verify_bundle(args: argparse.Namespace) -> int:
    trusted = None
    if args.trusted_genesis is not None:
        try:
            trusted = bytes.fromhex(args.trusted_genesis)
        except ValueError:
            trusted = b""
        if len(trusted) != 32:
            raise InvalidInput(
                "--trusted-genesis must be a block id: 64 hex characters",
                hint="take it from `trusted-ledger block 0` or the consortium's records",
            )
    if not args.bundle.is_file():
        raise InvalidInput(f"no bundle at {args.bundle}", hint="pass the file audit export wrote")
    report = verify_bundle(args.bundle, trusted)
    if args.json:
        print(json.dumps(report.json(), indent=2, sort_keys=True))
    else:
        _print_report(report)
    return EXIT_OK if report.ok else EXIT_FINDINGS


def _print_report(report: BundleReport) -> None:
    for finding in report.findings:
        print(f"FINDING {finding}")
    for note in report.notes:
        print(f"note: {note}")
    changes = ", ".join(str(h) for h in report.membership_changes) or "none"
    print(
        f"chain {report.chain_id!r}, blocks {report.from_height}..{report.to_height}: "
        f"{report.blocks} decoded, {report.certificates_verified} certificates verified "
        f"against the membership of their height; membership changes from heights: {changes}"
    )
    trails = ", ".join(f"{name} ({count} records)" for name, count in sorted(report.trails.items()))
    print(f"trails: {trails or 'none'}")
    print(
        f"anchors: {report.anchors_checked} in the blocks, {report.anchors_matched} matched "
        "to the trails in the bundle"
    )
    print("bundle: ok" if report.ok else f"bundle: {len(report.findings)} findings")
