"""The ``trusted-ledger`` command.

Each command group lives in its own module exposing ``register(subparsers)``; this module only
assembles them and turns the package's errors into one-line messages with an exit status:
1 for errors the operator can fix (input, configuration, verification), 2 for usage errors
(argparse), 3 for a temporarily unavailable resource, 70 for internal errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trusted_ledger._version import __version__
from trusted_ledger.cli import client, custody, members, merkle, net, node, processor, proof
from trusted_ledger.errors import (
    InternalError,
    TemporarilyUnavailable,
    TrustedLedgerError,
)
from trusted_ledger.observability.logging import configure_logging

COMMAND_GROUPS = (merkle, custody, node, net, client, members, processor, proof)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 70


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trusted-ledger",
        description="Trusted Ledger: a consortium ledger whose every key lives in hardware.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs go to stderr, never into output a user may pipe (``--json``); ``node run``
    # reconfigures them from its configuration file.
    configure_logging(json=False, level="warning")
    try:
        status: int = args.handler(args)
    except TemporarilyUnavailable as exc:
        print(f"trusted-ledger: unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except InternalError as exc:
        print(f"trusted-ledger: internal error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except TrustedLedgerError as exc:
        print(f"trusted-ledger: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        return EXIT_OK
    return status


if __name__ == "__main__":
    sys.exit(main())
