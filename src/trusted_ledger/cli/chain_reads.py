"""Client commands that read the chain or send ready-made batch lists: ``batch status``,
``block show|list``, ``state get|list``, ``status`` and ``submit`` (docs/api.md)."""

from __future__ import annotations

import argparse
import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trusted_ledger.cli.client_common import (
    EXIT_FAILURE,
    EXIT_OK,
    json_option,
    ledger_client,
    node_options,
    outcome_status,
    outcome_text,
    print_json,
    wait_options,
)
from trusted_ledger.client.http import (
    BatchStatusReport,
)
from trusted_ledger.errors import InvalidInput, NotFound


def register(subparsers: Any) -> None:
    _register_batch(subparsers)
    _register_block(subparsers)
    _register_state(subparsers)
    _register_node_status(subparsers)
    _register_submit(subparsers)


# --- batch, block, state, status, submit -------------------------------------------------------


def _register_batch(subparsers: Any) -> None:
    batch = subparsers.add_parser("batch", help="submitted batches")
    sub = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    status = sub.add_parser("status", help="COMMITTED / INVALID / PENDING / UNKNOWN per batch")
    status.add_argument("ids", nargs="+", metavar="ID", help="batch ids (128 hex)")
    status.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="wait up to S s for all to finish"
    )
    node_options(status)
    json_option(status)
    status.set_defaults(handler=_cmd_batch_status)


def _cmd_batch_status(args: argparse.Namespace) -> int:
    with ledger_client(args) as client:
        if args.wait > 0:
            reports = client.wait_committed(args.ids, args.wait)
        else:
            reports = client.batch_statuses(args.ids)
    if args.json:
        print_json([report.to_json() for report in reports])
    else:
        for report in reports:
            print(f"{report.id}: {outcome_text(report, args.wait)}")
    return EXIT_OK


def _register_block(subparsers: Any) -> None:
    block = subparsers.add_parser("block", help="committed blocks")
    sub = block.add_subparsers(dest="block_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="one block by id, number, or head")
    show.add_argument("ref", nargs="?", default="head", metavar="ID|NUM|head")
    node_options(show)
    json_option(show)
    show.set_defaults(handler=_cmd_block_show)
    listing = sub.add_parser("list", help="the newest blocks, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many (1..1000)")
    node_options(listing)
    json_option(listing)
    listing.set_defaults(handler=_cmd_block_list)


def _cmd_block_show(args: argparse.Namespace) -> int:
    with ledger_client(args) as client:
        if args.ref == "head":
            newest = client.blocks(limit=1)
            if not newest:
                raise NotFound("the chain has no blocks yet")
            block = newest[0]
        else:
            block = client.block(args.ref)
    if args.json:
        print_json(block)
        return EXIT_OK
    header = block.get("header", {})
    proposer = header.get("proposer", {})
    print(f"block {header.get('block_num')}  {block.get('header_signature')}")
    print(f"previous:   {header.get('previous_block_id')}")
    print(f"state root: {header.get('state_root_hash')}")
    print(f"time:       {_timestamp(header.get('timestamp_ms'))}")
    print(f"proposer:   {proposer.get('fingerprint')} ({proposer.get('algorithm')})")
    certificate = block.get("certificate") or {}
    print(f"round {header.get('consensus_round')}, votes: {len(certificate.get('votes', []))}")
    batches = block.get("batches", [])
    print(f"batches:    {len(batches)}")
    for batch in batches:
        families = sorted(
            {t.get("header", {}).get("family_name", "?") for t in batch.get("transactions", [])}
        )
        count = len(batch.get("transactions", []))
        print(f"  {batch.get('header_signature')}  {count} txn  {','.join(families)}")
    return EXIT_OK


def _cmd_block_list(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        raise InvalidInput(f"--limit must be in 1..1000, got {args.limit}")
    with ledger_client(args) as client:
        blocks = client.blocks(limit=args.limit)
    if args.json:
        print_json(blocks)
        return EXIT_OK
    print(f"{'num':>8}  {'block id':64}  {'batches':>7}  time")
    for block in blocks:
        header = block.get("header", {})
        print(
            f"{header.get('block_num', '?'):>8}  {block.get('header_signature', '')!s:64}  "
            f"{header.get('batch_count', len(block.get('batches', []))):>7}  "
            f"{_timestamp(header.get('timestamp_ms'))}"
        )
    return EXIT_OK


def _timestamp(milliseconds: object) -> str:
    if not isinstance(milliseconds, int):
        return "?"
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="milliseconds")


def _register_state(subparsers: Any) -> None:
    state = subparsers.add_parser("state", help="raw state values by address")
    sub = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    get = sub.add_parser("get", help="the value at one address (hex)")
    get.add_argument("address", metavar="ADDRESS", help="70 hex chars")
    get.add_argument("--head", help="read at this block id (default: the chain head)")
    node_options(get)
    json_option(get)
    get.set_defaults(handler=_cmd_state_get)
    listing = sub.add_parser("list", help="addresses and sizes under a prefix")
    listing.add_argument("prefix", nargs="?", default="", metavar="PREFIX")
    listing.add_argument("--head", help="read at this block id (default: the chain head)")
    listing.add_argument("--limit", type=int, help="stop after this many entries")
    node_options(listing)
    json_option(listing)
    listing.set_defaults(handler=_cmd_state_list)


def _cmd_state_get(args: argparse.Namespace) -> int:
    with ledger_client(args) as client:
        data = client.state(args.address, head=args.head)
    if data is None:
        raise NotFound(f"no value at address {args.address}")
    if args.json:
        print_json({"address": args.address, "data": base64.b64encode(data).decode()})
    else:
        print(data.hex())
    return EXIT_OK


def _cmd_state_list(args: argparse.Namespace) -> int:
    entries = []
    with ledger_client(args) as client:
        for entry in client.state_list(args.prefix, head=args.head):
            entries.append(entry)
            if args.limit is not None and len(entries) >= args.limit:
                break
    if args.json:
        print_json(
            [{"address": e.address, "data": base64.b64encode(e.data).decode()} for e in entries]
        )
    else:
        for entry in entries:
            print(f"{entry.address}  {len(entry.data)} bytes")
    return EXIT_OK


def _register_node_status(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="the node's chain head, pool and identity")
    node_options(status)
    json_option(status)
    status.set_defaults(handler=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    with ledger_client(args) as client:
        status = client.status()
    if args.json:
        print_json(status.raw)
        return EXIT_OK
    print(f"node:      {status.node_fingerprint} (version {status.version})")
    print(f"chain:     {status.chain_id}")
    print(f"head:      block {status.head_block_num}  {status.head_block_id}")
    print(f"           {_timestamp(status.head_timestamp_ms)}, state root {status.state_root}")
    print(f"pending:   {status.pending_batches} batches, {status.pending_bytes} bytes")
    print(f"scheduler: {status.scheduler}")
    return EXIT_OK


def _register_submit(subparsers: Any) -> None:
    submit = subparsers.add_parser("submit", help="send a serialized BatchList file")
    submit.add_argument("file", type=Path, metavar="FILE")
    node_options(submit)
    wait_options(submit)
    json_option(submit)
    submit.set_defaults(handler=_cmd_submit)


def _cmd_submit(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {args.file}: {exc.strerror}") from exc
    with ledger_client(args) as client:
        ids = client.submit_batch_list_bytes(data)
        if args.no_wait:
            reports = [BatchStatusReport(batch_id, "PENDING") for batch_id in ids]
        else:
            reports = client.wait_committed(ids, args.wait_timeout)
    if args.json:
        print_json([report.to_json() for report in reports])
    else:
        for report in reports:
            text = "submitted" if args.no_wait else outcome_text(report, args.wait_timeout)
            print(f"{report.id}: {text}")
    if args.no_wait:
        return EXIT_OK
    outcomes = {outcome_status(report) for report in reports}
    return EXIT_FAILURE if EXIT_FAILURE in outcomes else max(outcomes, default=EXIT_OK)
