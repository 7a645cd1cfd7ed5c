"""Client commands: ``keygen`` and ``asset …`` here; ``batch status``, ``block …``,
``state …``, ``status`` and ``submit`` in cli/chain_reads.py; all speak to a node's REST API
(docs/api.md), with the options and outcome reporting of cli/client_common.py.

The node is ``--url``, else ``$TL_URL``, else http://127.0.0.1:8008; client keys are found in
``--key-dir``, else ``$TL_KEY_DIR``, else ~/.trusted-ledger/keys. Commands that write wait
for the outcome by default, because "submitted" is not "done": they print COMMITTED with the
block number, or INVALID with the node's reason and exit 1; still pending after
``--wait-timeout`` exits 3 (try again later). Data goes to stdout (``--json`` for scripts),
progress to stderr.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trusted_ledger.cli import chain_reads
from trusted_ledger.cli.client_common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PENDING,
    client_key_dir,
    client_signing_key,
    json_option,
    key_dir_option,
    key_option,
    ledger_client,
    node_options,
    print_json,
    report_outcome,
    write_command,
)
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
    BatchStatusReport,
    LedgerClient,
)
from trusted_ledger.client.keys import (
    resolve_account,
    write_key_files,
)
from trusted_ledger.client.progress import ProgressBar
from trusted_ledger.errors import InvalidInput
from trusted_ledger.processing.families.asset import KINDS, decimals_max
from trusted_ledger.txn import SigningKey

payment_file_bytes_max = 64 * 1024 * 1024


def register(subparsers: Any) -> None:
    _register_keygen(subparsers)
    _register_asset(subparsers)
    chain_reads.register(subparsers)  # batch, block, state, status, submit


# --- keygen ----------------------------------------------------------------------------------

# --- keygen ----------------------------------------------------------------------------------


def _register_keygen(subparsers: Any) -> None:
    keygen = subparsers.add_parser(
        "keygen", help="create a client key pair (NAME.priv mode 600, NAME.pub)"
    )
    keygen.add_argument("name", metavar="NAME", help="key name: 1-64 of A-Z a-z 0-9 _ . -")
    key_dir_option(keygen)
    keygen.add_argument("--force", action="store_true", help="replace existing key files")
    json_option(keygen)
    keygen.set_defaults(handler=_cmd_keygen)


def _cmd_keygen(args: argparse.Namespace) -> int:
    files = write_key_files(
        client_key_dir(args), args.name, SigningKey.generate(), force=args.force
    )
    if args.json:
        print_json(
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
    write_command(create)
    create.set_defaults(handler=_cmd_create)
    for action, what in (
        ("issue", "issue new units to an account (issuer only)"),
        ("transfer", "send units from your account"),
    ):
        command = sub.add_parser(action, help=what)
        command.add_argument("code", metavar="CODE")
        command.add_argument("--to", required=True, help="account (66 hex) or key NAME")
        command.add_argument("--amount", required=True, help="in display units, e.g. 12.50")
        write_command(command)
        command.set_defaults(handler=_cmd_move, action=action)
    redeem = sub.add_parser("redeem", help="burn units from the issuer's own holding")
    redeem.add_argument("code", metavar="CODE")
    redeem.add_argument("--amount", required=True, help="in display units, e.g. 12.50")
    write_command(redeem)
    redeem.set_defaults(handler=_cmd_move, action="redeem")
    for action in ("freeze", "unfreeze"):
        command = sub.add_parser(action, help=f"{action} an account's holding (issuer only)")
        command.add_argument("code", metavar="CODE")
        command.add_argument("--account", required=True, help="account (66 hex) or key NAME")
        write_command(command)
        command.set_defaults(handler=_cmd_freeze, action=action)
    _register_asset_reads(sub)
    pay = sub.add_parser("pay", help="bulk transfers from a CSV file of to,amount rows")
    pay.add_argument("code", metavar="CODE")
    pay.add_argument("--file", required=True, type=Path, help="CSV rows: to,amount")
    write_command(pay)
    pay.set_defaults(handler=_cmd_pay)


def _register_asset_reads(sub: Any) -> None:
    balance = sub.add_parser("balance", help="an account's balance and frozen flag")
    balance.add_argument("code", metavar="CODE")
    balance.add_argument("--account", help="account (66 hex) or key NAME")
    key_option(balance, required=False)
    node_options(balance)
    json_option(balance)
    balance.set_defaults(handler=_cmd_balance)
    info = sub.add_parser("info", help="an asset class: kind, decimals, issuer, supply")
    info.add_argument("code", metavar="CODE")
    node_options(info)
    json_option(info)
    info.set_defaults(handler=_cmd_info)


def _cmd_create(args: argparse.Namespace) -> int:
    with ledger_client(args) as client:
        assets = AssetClient(client, client_signing_key(args))
        batch_id = assets.create(args.code, args.kind, args.decimals)
        return report_outcome(client, batch_id, args, f"create {args.code}")


def _cmd_move(args: argparse.Namespace) -> int:
    key = client_signing_key(args)
    with ledger_client(args) as client:
        info = asset_info(client, args.code)
        units = parse_amount(args.amount, info.decimals, code=args.code)
        assets = AssetClient(client, key)
        shown = f"{format_amount(units, info.decimals)} {args.code}"
        if args.action == "redeem":
            batch_id = assets.redeem(args.code, units)
            return report_outcome(client, batch_id, args, f"redeem {shown}")
        to = resolve_account(args.to, client_key_dir(args))
        if args.action == "issue":
            batch_id = assets.issue(args.code, to, units)
        else:
            batch_id = assets.transfer(args.code, to, units)
        return report_outcome(client, batch_id, args, f"{args.action} {shown} to {to}")


def _cmd_freeze(args: argparse.Namespace) -> int:
    key = client_signing_key(args)
    account = resolve_account(args.account, client_key_dir(args))
    with ledger_client(args) as client:
        assets = AssetClient(client, key)
        if args.action == "freeze":
            batch_id = assets.freeze(args.code, account)
        else:
            batch_id = assets.unfreeze(args.code, account)
        return report_outcome(client, batch_id, args, f"{args.action} {args.code} {account}")


def _cmd_balance(args: argparse.Namespace) -> int:
    if args.account:
        account = resolve_account(args.account, client_key_dir(args))
    elif args.key:
        account = client_signing_key(args).public_key_hex
    else:
        raise InvalidInput("whose balance? give --account ACCOUNT_OR_NAME or --key K")
    with ledger_client(args) as client:
        info = asset_info(client, args.code)
        units, frozen = holding(client, args.code, account)
    shown = format_amount(units, info.decimals)
    if args.json:
        print_json(
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
    with ledger_client(args) as client:
        info = asset_info(client, args.code)
    if args.json:
        print_json(
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
    key = client_signing_key(args)
    key_dir = client_key_dir(args)
    text = _read_payment_file(args.file)
    with ledger_client(args) as client:
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
        print_json({"submitted": len(ids), "batch_ids": list(ids)})
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
        print_json({"counts": counts, "transfers": rows})
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
