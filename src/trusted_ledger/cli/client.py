"""Client commands: ``keygen``, ``asset …``, ``batch status``, ``block …``, ``state …``,
``status`` and ``submit``, all speaking to a node's REST API (docs/api.md).

The node is ``--url``, else ``$TL_URL``, else http://127.0.0.1:8008; client keys are found in
``--key-dir``, else ``$TL_KEY_DIR``, else ~/.trusted-ledger/keys. Commands that write wait
for the outcome by default, because "submitted" is not "done": they print COMMITTED with the
block number, or INVALID with the node's reason and exit 1; still pending after
``--wait-timeout`` exits 3 (try again later). Data goes to stdout (``--json`` for scripts),
progress to stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trusted_ledger.client.asset import (
    AssetClient,
    Payment,
    asset_info,
    format_amount,
    holding,
    parse_amount,
    parse_payments,
)
from trusted_ledger.client.http import (
    CA_FILE_ENV,
    CERT_FILE_ENV,
    DEFAULT_URL,
    KEY_FILE_ENV,
    URL_ENV,
    BatchStatusReport,
    LedgerClient,
    client_tls_context,
)
from trusted_ledger.client.keys import (
    default_key_dir,
    resolve_account,
    resolve_key,
    write_key_files,
)
from trusted_ledger.client.progress import ProgressBar
from trusted_ledger.errors import InvalidInput, NotFound
from trusted_ledger.processing.families.asset import KINDS, decimals_max
from trusted_ledger.txn import SigningKey

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_PENDING = 3  # cli's EXIT_UNAVAILABLE: the outcome is not known yet, ask again later
WAIT_TIMEOUT_DEFAULT_S = 60.0
payment_file_bytes_max = 64 * 1024 * 1024


def register(subparsers: Any) -> None:
    _register_keygen(subparsers)
    _register_asset(subparsers)
    _register_batch(subparsers)
    _register_block(subparsers)
    _register_state(subparsers)
    _register_node_status(subparsers)
    _register_submit(subparsers)


# --- options ---------------------------------------------------------------------------------


def _node_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help=f"the node's REST API (default: ${URL_ENV}, else {DEFAULT_URL})"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for each answer"
    )
    parser.add_argument(
        "--ca-file", help=f"https: PEM CA of the node's certificate (default: ${CA_FILE_ENV})"
    )
    parser.add_argument(
        "--cert-file", help=f"https: this client's PEM certificate (default: ${CERT_FILE_ENV})"
    )
    parser.add_argument("--key-file", help=f"https: its PEM private key (default: ${KEY_FILE_ENV})")


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _key_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-dir",
        type=Path,
        help="client key directory (default: $TL_KEY_DIR, else ~/.trusted-ledger/keys)",
    )


def _key_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--key", required=required, help="signing key: a NAME in the key dir or a .priv path"
    )
    _key_dir_option(parser)


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="return once the node accepts")
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=WAIT_TIMEOUT_DEFAULT_S,
        metavar="S",
        help=f"seconds to wait for the commit (default {WAIT_TIMEOUT_DEFAULT_S:g})",
    )


def _write_command(parser: argparse.ArgumentParser) -> None:
    _node_options(parser)
    _key_option(parser)
    _wait_options(parser)
    _json_option(parser)


def _client(args: argparse.Namespace) -> LedgerClient:
    url = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    context = None
    if url.startswith("https://"):
        context = client_tls_context(
            args.ca_file or os.environ.get(CA_FILE_ENV),
            args.cert_file or os.environ.get(CERT_FILE_ENV),
            args.key_file or os.environ.get(KEY_FILE_ENV),
        )
    return LedgerClient(url, timeout_s=args.timeout, ssl_context=context)


def _key_dir(args: argparse.Namespace) -> Path:
    return Path(args.key_dir).expanduser() if args.key_dir else default_key_dir()


def _signing_key(args: argparse.Namespace) -> SigningKey:
    return resolve_key(args.key, _key_dir(args))


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


# --- keygen ----------------------------------------------------------------------------------


def _register_keygen(subparsers: Any) -> None:
    keygen = subparsers.add_parser(
        "keygen", help="create a client key pair (NAME.priv mode 600, NAME.pub)"
    )
    keygen.add_argument("name", metavar="NAME", help="key name: 1-64 of A-Z a-z 0-9 _ . -")
    _key_dir_option(keygen)
    keygen.add_argument("--force", action="store_true", help="replace existing key files")
    _json_option(keygen)
    keygen.set_defaults(handler=_cmd_keygen)


def _cmd_keygen(args: argparse.Namespace) -> int:
    files = write_key_files(_key_dir(args), args.name, SigningKey.generate(), force=args.force)
    if args.json:
        _print_json(
            {
                "private_key_file": str(files.private_path),
                "public_key_file": str(files.public_path),
                "public_key": files.public_key_hex,
            }
        )
    else:
        print(f"wrote {files.private_path} and {files.public_path}")
        print(f"public key (account): {files.public_key_hex}")
    return EXIT_OK


# --- asset -----------------------------------------------------------------------------------


def _register_asset(subparsers: Any) -> None:
    asset = subparsers.add_parser("asset", help="issued assets: create, issue, transfer, pay…")
    sub = asset.add_subparsers(dest="asset_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create an asset class; you become its issuer")
    create.add_argument("code", metavar="CODE")
    create.add_argument("--kind", required=True, choices=KINDS)
    create.add_argument(
        "--decimals", required=True, type=int, help=f"decimal places, 0..{decimals_max}"
    )
    _write_command(create)
    create.set_defaults(handler=_cmd_create)
    for action, what in (
        ("issue", "issue new units to an account (issuer only)"),
        ("transfer", "send units from your account"),
    ):
        command = sub.add_parser(action, help=what)
        command.add_argument("code", metavar="CODE")
        command.add_argument("--to", required=True, help="account (66 hex) or key NAME")
        command.add_argument("--amount", required=True, help="in display units, e.g. 12.50")
        _write_command(command)
        command.set_defaults(handler=_cmd_move, action=action)
    redeem = sub.add_parser("redeem", help="burn units from the issuer's own holding")
    redeem.add_argument("code", metavar="CODE")
    redeem.add_argument("--amount", required=True, help="in display units, e.g. 12.50")
    _write_command(redeem)
    redeem.set_defaults(handler=_cmd_move, action="redeem")
    for action in ("freeze", "unfreeze"):
        command = sub.add_parser(action, help=f"{action} an account's holding (issuer only)")
        command.add_argument("code", metavar="CODE")
        command.add_argument("--account", required=True, help="account (66 hex) or key NAME")
        _write_command(command)
        command.set_defaults(handler=_cmd_freeze, action=action)
    _register_asset_reads(sub)
    pay = sub.add_parser("pay", help="bulk transfers from a CSV file of to,amount rows")
    pay.add_argument("code", metavar="CODE")
    pay.add_argument("--file", required=True, type=Path, help="CSV rows: to,amount")
    _write_command(pay)
    pay.set_defaults(handler=_cmd_pay)


def _register_asset_reads(sub: Any) -> None:
    balance = sub.add_parser("balance", help="an account's balance and frozen flag")
    balance.add_argument("code", metavar="CODE")
    balance.add_argument("--account", help="account (66 hex) or key NAME")
    _key_option(balance, required=False)
    _node_options(balance)
    _json_option(balance)
    balance.set_defaults(handler=_cmd_balance)
    info = sub.add_parser("info", help="an asset class: kind, decimals, issuer, supply")
    info.add_argument("code", metavar="CODE")
    _node_options(info)
    _json_option(info)
    info.set_defaults(handler=_cmd_info)


def _cmd_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        assets = AssetClient(client, _signing_key(args))
        batch_id = assets.create(args.code, args.kind, args.decimals)
        return _report_outcome(client, batch_id, args, f"create {args.code}")


def _cmd_move(args: argparse.Namespace) -> int:
    key = _signing_key(args)
    with _client(args) as client:
        info = asset_info(client, args.code)
        units = parse_amount(args.amount, info.decimals, code=args.code)
        assets = AssetClient(client, key)
        shown = f"{format_amount(units, info.decimals)} {args.code}"
        if args.action == "redeem":
            batch_id = assets.redeem(args.code, units)
            return _report_outcome(client, batch_id, args, f"redeem {shown}")
        to = resolve_account(args.to, _key_dir(args))
        if args.action == "issue":
            batch_id = assets.issue(args.code, to, units)
        else:
            batch_id = assets.transfer(args.code, to, units)
        return _report_outcome(client, batch_id, args, f"{args.action} {shown} to {to}")


def _cmd_freeze(args: argparse.Namespace) -> int:
    key = _signing_key(args)
    account = resolve_account(args.account, _key_dir(args))
    with _client(args) as client:
        assets = AssetClient(client, key)
        if args.action == "freeze":
            batch_id = assets.freeze(args.code, account)
        else:
            batch_id = assets.unfreeze(args.code, account)
        return _report_outcome(client, batch_id, args, f"{args.action} {args.code} {account}")


def _cmd_balance(args: argparse.Namespace) -> int:
    if args.account:
        account = resolve_account(args.account, _key_dir(args))
    elif args.key:
        account = _signing_key(args).public_key_hex
    else:
        raise InvalidInput("whose balance? give --account ACCOUNT_OR_NAME or --key K")
    with _client(args) as client:
        info = asset_info(client, args.code)
        units, frozen = holding(client, args.code, account)
    shown = format_amount(units, info.decimals)
    if args.json:
        _print_json(
            {
                "asset": info.code,
                "account": account,
                "balance": units,
                "balance_display": shown,
                "decimals": info.decimals,
                "frozen": frozen,
            }
        )
    else:
        print(f"{shown} {info.code}{' (FROZEN)' if frozen else ''}  account {account}")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = asset_info(client, args.code)
    if args.json:
        _print_json(
            {
                "code": info.code,
                "kind": info.kind,
                "decimals": info.decimals,
                "issuer": info.issuer,
                "supply": info.supply,
                "supply_display": format_amount(info.supply, info.decimals),
            }
        )
    else:
        print(f"asset: {info.code} ({info.kind}, {info.decimals} decimals)")
        print(f"issuer: {info.issuer}")
        print(f"supply: {format_amount(info.supply, info.decimals)} ({info.supply} units)")
    return EXIT_OK


def _cmd_pay(args: argparse.Namespace) -> int:
    key = _signing_key(args)
    key_dir = _key_dir(args)
    text = _read_payment_file(args.file)
    with _client(args) as client:
        info = asset_info(client, args.code)
        payments = parse_payments(
            text,
            info.decimals,
            resolve_account=lambda spec: resolve_account(spec, key_dir),
            sender=key.public_key_hex,
            code=info.code,
            source=str(args.file),
        )
        _check_funds(client, info.code, info.decimals, key.public_key_hex, payments)
        assets = AssetClient(client, key)
        sent = ProgressBar(len(payments), "submitted")
        ids = assets.transfer_many(
            info.code, [(p.to, p.units) for p in payments], on_submitted=sent.update
        )
        sent.finish()
        if args.no_wait:
            return _print_pay_submitted(args, ids)
        committed = ProgressBar(len(ids), "committed")
        reports = client.wait_committed(
            ids, args.wait_timeout, on_progress=lambda done, _total: committed.update(done)
        )
        committed.finish()
    return _print_pay_outcome(args, payments, reports, info.decimals)


def _read_payment_file(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(payment_file_bytes_max + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read payment file {path}: {exc.strerror}") from exc
    if len(data) > payment_file_bytes_max:
        raise InvalidInput(f"payment file {path} is larger than {payment_file_bytes_max} bytes")
    try:
        return data.decode("utf-8-sig")  # spreadsheets write a byte-order mark
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"payment file {path} is not UTF-8 text") from exc


def _check_funds(
    client: LedgerClient, code: str, decimals: int, sender: str, payments: Sequence[Payment]
) -> None:
    """Refuse a file the sender cannot cover, before sending anything: otherwise the last
    transfers would fail one by one after the first ones had gone through."""
    balance, frozen = holding(client, code, sender)
    if frozen:
        raise InvalidInput(f"your {code} holding is frozen", hint="nothing was sent")
    total = sum(payment.units for payment in payments)
    if total > balance:
        raise InvalidInput(
            f"the payments total {format_amount(total, decimals)} {code} but your balance is "
            f"{format_amount(balance, decimals)} {code}",
            hint="nothing was sent",
        )


def _print_pay_submitted(args: argparse.Namespace, ids: Sequence[str]) -> int:
    if args.json:
        _print_json({"submitted": len(ids), "batch_ids": list(ids)})
    else:
        print(f"submitted {len(ids)} transfers; check with `trusted-ledger batch status ID…`")
    return EXIT_OK


def _print_pay_outcome(
    args: argparse.Namespace,
    payments: Sequence[Payment],
    reports: Sequence[BatchStatusReport],
    decimals: int,
) -> int:
    rows = [
        {
            "line": payment.line,
            "to": payment.to,
            "amount": format_amount(payment.units, decimals),
            **report.to_json(),
        }
        for payment, report in zip(payments, reports, strict=True)
    ]
    counts = {status: 0 for status in ("COMMITTED", "INVALID", "PENDING", "UNKNOWN")}
    for report in reports:
        counts[report.status] = counts.get(report.status, 0) + 1
    unfinished = len(reports) - counts["COMMITTED"] - counts["INVALID"]
    if args.json:
        _print_json({"counts": counts, "transfers": rows})
    else:
        for row in rows:
            if row["status"] != "COMMITTED":
                reason = f": {row['reason']}" if row["reason"] else ""
                print(
                    f"line {row['line']}: {row['amount']} to {row['to']}: {row['status']}"
                    f"{reason} (batch {row['id']})"
                )
        print(
            f"{len(reports)} transfers: {counts['COMMITTED']} committed, "
            f"{counts['INVALID']} invalid, {unfinished} not final"
        )
    if counts["INVALID"]:
        return EXIT_FAILURE
    return EXIT_PENDING if unfinished else EXIT_OK


def _report_outcome(
    client: LedgerClient, batch_id: str, args: argparse.Namespace, what: str
) -> int:
    """Print a one-batch outcome: submitted, or (by default) its final status."""
    if args.no_wait:
        if args.json:
            _print_json({"id": batch_id, "status": "PENDING"})
        else:
            print(f"{what}: submitted as batch {batch_id}")
        return EXIT_OK
    (report,) = client.wait_committed([batch_id], args.wait_timeout)
    if args.json:
        _print_json(report.to_json())
    else:
        print(f"{what}: {_outcome_text(report, args.wait_timeout)}")
        print(f"batch {batch_id}")
    return _outcome_status(report)


def _outcome_text(report: BatchStatusReport, waited_s: float) -> str:
    if report.status == "COMMITTED":
        return f"COMMITTED in block {report.block_num}"
    if report.status == "INVALID":
        return f"INVALID: {report.reason}"
    return (
        f"{report.status} after {waited_s:g} s; ask again with "
        f"`trusted-ledger batch status {report.id} --wait 30`"
    )


def _outcome_status(report: BatchStatusReport) -> int:
    if report.status == "COMMITTED":
        return EXIT_OK
    return EXIT_FAILURE if report.status == "INVALID" else EXIT_PENDING


# --- batch, block, state, status, submit -------------------------------------------------------


def _register_batch(subparsers: Any) -> None:
    batch = subparsers.add_parser("batch", help="submitted batches")
    sub = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    status = sub.add_parser("status", help="COMMITTED / INVALID / PENDING / UNKNOWN per batch")
    status.add_argument("ids", nargs="+", metavar="ID", help="batch ids (128 hex)")
    status.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="wait up to S s for all to finish"
    )
    _node_options(status)
    _json_option(status)
    status.set_defaults(handler=_cmd_batch_status)


def _cmd_batch_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.wait > 0:
            reports = client.wait_committed(args.ids, args.wait)
        else:
            reports = client.batch_statuses(args.ids)
    if args.json:
        _print_json([report.to_json() for report in reports])
    else:
        for report in reports:
            print(f"{report.id}: {_outcome_text(report, args.wait)}")
    return EXIT_OK


def _register_block(subparsers: Any) -> None:
    block = subparsers.add_parser("block", help="committed blocks")
    sub = block.add_subparsers(dest="block_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="one block by id, number, or head")
    show.add_argument("ref", nargs="?", default="head", metavar="ID|NUM|head")
    _node_options(show)
    _json_option(show)
    show.set_defaults(handler=_cmd_block_show)
    listing = sub.add_parser("list", help="the newest blocks, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many (1..1000)")
    _node_options(listing)
    _json_option(listing)
    listing.set_defaults(handler=_cmd_block_list)


def _cmd_block_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.ref == "head":
            newest = client.blocks(limit=1)
            if not newest:
                raise NotFound("the chain has no blocks yet")
            block = newest[0]
        else:
            block = client.block(args.ref)
    if args.json:
        _print_json(block)
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
    with _client(args) as client:
        blocks = client.blocks(limit=args.limit)
    if args.json:
        _print_json(blocks)
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
    _node_options(get)
    _json_option(get)
    get.set_defaults(handler=_cmd_state_get)
    listing = sub.add_parser("list", help="addresses and sizes under a prefix")
    listing.add_argument("prefix", nargs="?", default="", metavar="PREFIX")
    listing.add_argument("--head", help="read at this block id (default: the chain head)")
    listing.add_argument("--limit", type=int, help="stop after this many entries")
    _node_options(listing)
    _json_option(listing)
    listing.set_defaults(handler=_cmd_state_list)


def _cmd_state_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        data = client.state(args.address, head=args.head)
    if data is None:
        raise NotFound(f"no value at address {args.address}")
    if args.json:
        _print_json({"address": args.address, "data": base64.b64encode(data).decode()})
    else:
        print(data.hex())
    return EXIT_OK


def _cmd_state_list(args: argparse.Namespace) -> int:
    entries = []
    with _client(args) as client:
        for entry in client.state_list(args.prefix, head=args.head):
            entries.append(entry)
            if args.limit is not None and len(entries) >= args.limit:
                break
    if args.json:
        _print_json(
            [{"address": e.address, "data": base64.b64encode(e.data).decode()} for e in entries]
        )
    else:
        for entry in entries:
            print(f"{entry.address}  {len(entry.data)} bytes")
    return EXIT_OK


def _register_node_status(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="the node's chain head, pool and identity")
    _node_options(status)
    _json_option(status)
    status.set_defaults(handler=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.status()
    if args.json:
        _print_json(status.raw)
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
    _node_options(submit)
    _wait_options(submit)
    _json_option(submit)
    submit.set_defaults(handler=_cmd_submit)


def _cmd_submit(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {args.file}: {exc.strerror}") from exc
    with _client(args) as client:
        ids = client.submit_batch_list_bytes(data)
        if args.no_wait:
            reports = [BatchStatusReport(batch_id, "PENDING") for batch_id in ids]
        else:
            reports = client.wait_committed(ids, args.wait_timeout)
    if args.json:
        _print_json([report.to_json() for report in reports])
    else:
        for report in reports:
            text = "submitted" if args.no_wait else _outcome_text(report, args.wait_timeout)
            print(f"{report.id}: {text}")
    if args.no_wait:
        return EXIT_OK
    outcomes = {_outcome_status(report) for report in reports}
    return EXIT_FAILURE if EXIT_FAILURE in outcomes else max(outcomes, default=EXIT_OK)
