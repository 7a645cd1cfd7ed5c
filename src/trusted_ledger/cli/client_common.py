"""What the client commands share (cli/client.py, cli/chain_reads.py, and the other
commands that talk to a node's REST API): the node and key options, the HTTP client they
make, and how a submitted batch's outcome is printed and turned into an exit status."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

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
    resolve_key,
)
from trusted_ledger.txn import SigningKey

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_PENDING = 3  # cli's EXIT_UNAVAILABLE: the outcome is not known yet, ask again later
WAIT_TIMEOUT_DEFAULT_S = 60.0


def node_options(parser: argparse.ArgumentParser) -> None:
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


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def key_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-dir",
        type=Path,
        help="client key directory (default: $TL_KEY_DIR, else ~/.trusted-ledger/keys)",
    )


def key_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--key", required=required, help="signing key: a NAME in the key dir or a .priv path"
    )
    key_dir_option(parser)


def wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="return once the node accepts")
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=WAIT_TIMEOUT_DEFAULT_S,
        metavar="S",
        help=f"seconds to wait for the commit (default {WAIT_TIMEOUT_DEFAULT_S:g})",
    )


def write_command(parser: argparse.ArgumentParser) -> None:
    node_options(parser)
    key_option(parser)
    wait_options(parser)
    json_option(parser)


def ledger_client(args: argparse.Namespace) -> LedgerClient:
    url = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    context = None
    if url.startswith("https://"):
        context = client_tls_context(
            args.ca_file or os.environ.get(CA_FILE_ENV),
            args.cert_file or os.environ.get(CERT_FILE_ENV),
            args.key_file or os.environ.get(KEY_FILE_ENV),
        )
    return LedgerClient(url, timeout_s=args.timeout, ssl_context=context)


def client_key_dir(args: argparse.Namespace) -> Path:
    return Path(args.key_dir).expanduser() if args.key_dir else default_key_dir()


def client_signing_key(args: argparse.Namespace) -> SigningKey:
    return resolve_key(args.key, client_key_dir(args))


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def report_outcome(client: LedgerClient, batch_id: str, args: argparse.Namespace, what: str) -> int:
    """Print a one-batch outcome: submitted, or (by default) its final status."""
    if args.no_wait:
        if args.json:
            print_json({"id": batch_id, "status": "PENDING"})
        else:
            print(f"{what}: submitted as batch {batch_id}")
        return EXIT_OK
    (report,) = client.wait_committed([batch_id], args.wait_timeout)
    if args.json:
        print_json(report.to_json())
    else:
        print(f"{what}: {outcome_text(report, args.wait_timeout)}")
        print(f"batch {batch_id}")
    return outcome_status(report)


def outcome_text(report: BatchStatusReport, waited_s: float) -> str:
    if report.status == "COMMITTED":
        return f"COMMITTED in block {report.block_num}"
    if report.status == "INVALID":
        return f"INVALID: {report.reason}"
    return (
        f"{report.status} after {waited_s:g} s; ask again with "
        f"`trusted-ledger batch status {report.id} --wait 30`"
    )


def outcome_status(report: BatchStatusReport) -> int:
    if report.status == "COMMITTED":
        return EXIT_OK
    return EXIT_FAILURE if report.status == "INVALID" else EXIT_PENDING
