"""``trusted-ledger processor run MODULE:HANDLER ... --connect URL``: an external processor.

Each MODULE:HANDLER names a ``processing.TransactionHandler`` subclass, or a factory that
returns one, importable from the processor's Python path; the processor serves them all to
the node at ``--connect`` until SIGTERM or Ctrl-C (the systemd unit in ops/ runs one per
instance). A spec that does not resolve is a configuration error that names what is wrong.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from trusted_ledger.errors import ConfigurationError
from trusted_ledger.observability.logging import configure_logging
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.processor import TransactionProcessor, max_occupancy_default

CONNECT_DEFAULT = "tcp://127.0.0.1:4004"


def register(subparsers: Any) -> None:
    processor = subparsers.add_parser(
        "processor", help="run transaction handlers as an external processor"
    )
    sub = processor.add_subparsers(dest="processor_command", metavar="ACTION", required=True)
    run = sub.add_parser(
        "run",
        help="serve handlers to a node until SIGTERM or Ctrl-C",
        description="Connects to a node's processor endpoint (Sawtooth's TP protocol), "
        "registers each handler's family versions and applies the transactions it is sent.",
    )
    run.add_argument(
        "handlers",
        nargs="+",
        metavar="MODULE:HANDLER",
        help="a TransactionHandler class or factory, e.g. "
        "trusted_ledger.processor.examples.provenance:ProvenanceHandler",
    )
    run.add_argument(
        "--connect",
        default=CONNECT_DEFAULT,
        metavar="URL",
        help=f"the node's processor endpoint (default {CONNECT_DEFAULT})",
    )
    run.add_argument(
        "--max-occupancy",
        type=int,
        default=max_occupancy_default,
        metavar="N",
        help=f"transactions applied at once (default {max_occupancy_default})",
    )
    run.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    run.add_argument("--log-json", action="store_true", help="JSON log lines (for journald)")
    run.set_defaults(handler=_cmd_run)


def load_handler(spec: str) -> TransactionHandler:
    """The handler named by ``MODULE:ATTRIBUTE``: the attribute (a class or a factory) is
    called without arguments and must return a processing ``TransactionHandler``."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(
            f"handler {spec!r} is not MODULE:HANDLER",
            hint="e.g. trusted_ledger.processor.examples.provenance:ProvenanceHandler",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"handler {spec!r}: cannot import module {module_name!r}: {exc}",
            hint="install the package that provides it, or set PYTHONPATH",
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"handler {spec!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(target):
        raise ConfigurationError(f"handler {spec!r} is not a class or a factory")
    try:
        handler = target()
    except TypeError as exc:
        raise ConfigurationError(
            f"handler {spec!r} cannot be created without arguments: {exc}",
            hint="name a factory function that takes none",
        ) from exc
    if not isinstance(handler, TransactionHandler):
        raise ConfigurationError(
            f"handler {spec!r} made a {type(handler).__name__}, "
            "not a trusted_ledger.processing.TransactionHandler",
            hint="for handlers written with sawtooth_sdk, run the SDK's own TransactionProcessor "
            "after importing trusted_ledger.processor.sawtooth_compat (docs/processor-kit.md)",
        )
    return handler


def _cmd_run(args: argparse.Namespace) -> int:
    configure_logging(json=args.log_json, level=args.log_level)
    handlers = [load_handler(spec) for spec in args.handlers]
    processor = TransactionProcessor(args.connect, max_occupancy=args.max_occupancy)
    for handler in handlers:
        processor.add_handler(handler)
    processor.run()
    return 0
