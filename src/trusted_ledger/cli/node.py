"""``trusted-ledger node init|run|config``: create a node directory and run the node.

``node init --dir DIR`` makes a whole node (key on the token, guard, genesis, ``node.toml``);
``node run --dir DIR`` (or ``--config FILE``) serves it until SIGTERM/SIGINT. Both read and
write nothing outside the node directory except the HSM named by ``--token``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from trusted_ledger.cli.node_backup import register_backup_actions
from trusted_ledger.cli.node_keys import register_node_actions
from trusted_ledger.custody import KeyAlgorithm
from trusted_ledger.errors import InvalidInput
from trusted_ledger.node import (
    CONFIG_FILE_NAME,
    InitOptions,
    init_node,
    load_config,
    render_config,
)
from trusted_ledger.node.config import SCHEDULERS
from trusted_ledger.observability.logging import configure_logging

NODE_DIR_DEFAULT = Path("var/node")


def register(subparsers: Any) -> None:
    node = subparsers.add_parser("node", help="create and run a ledger node")
    sub = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)

    init = sub.add_parser(
        "init",
        help="create a node: key on the HSM, signing guard, genesis block, node.toml",
        description="Without --token the node gets its own embedded SoftHSM token "
        "(development); with --token it generates its key on an existing token.",
    )
    init.add_argument("--dir", type=Path, default=NODE_DIR_DEFAULT, help="new node directory")
    init.add_argument("--chain-id", default="trusted-ledger-dev", help="name of the chain")
    init.add_argument("--api-bind", default="127.0.0.1:8008", help="REST API HOST:PORT")
    init.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        default="serial",
        help="serial (default; fastest for built-in families) or parallel (overlaps "
        "external processors' round trips)",
    )
    init.add_argument(
        "--processors-bind",
        default="tcp://127.0.0.1:4004",
        help="where external transaction processors connect (empty: none)",
    )
    init.add_argument(
        "--admin-key",
        action="append",
        default=[],
        metavar="PUBKEY",
        help="compressed secp256k1 public key of a first admin (repeatable; default: "
        "a new key in DIR/keys/admin.priv)",
    )
    init.add_argument("--token", help="use this existing token instead of an embedded SoftHSM")
    init.add_argument("--profile", help="HSM profile of --token (default softhsm2)")
    init.add_argument("--pin-env", metavar="VAR", help="user PIN of --token from $VAR")
    init.add_argument("--pin-file", type=Path, help="user PIN of --token from a mode-600 file")
    init.add_argument("--key-label", default="node-signing", help="label of the node key")
    init.add_argument(
        "--key-algorithm",
        choices=[a.value for a in KeyAlgorithm],
        default=KeyAlgorithm.EC_P256.value,
    )
    init.set_defaults(handler=_cmd_init)

    run = sub.add_parser("run", help="serve the node until SIGTERM or Ctrl-C")
    _config_options(run)
    run.set_defaults(handler=_cmd_run)

    show = sub.add_parser("config", help="validate the configuration and print it in full")
    _config_options(show)
    show.set_defaults(handler=_cmd_config)

    register_node_actions(sub)  # node new-key (cli/node_keys.py)
    register_backup_actions(sub)  # node backup | verify-backup | restore (cli/node_backup.py)


def _config_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dir", type=Path, help=f"node directory (reads DIR/{CONFIG_FILE_NAME})")
    where.add_argument("--config", type=Path, help="configuration file")


def _config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return Path(args.config)
    directory = args.dir if args.dir is not None else NODE_DIR_DEFAULT
    return Path(directory) / CONFIG_FILE_NAME


def _cmd_init(args: argparse.Namespace) -> int:
    options = InitOptions(
        directory=args.dir,
        chain_id=args.chain_id,
        api_bind=args.api_bind,
        scheduler=args.scheduler,
        processors_bind=args.processors_bind,
        admin_keys=tuple(args.admin_key),
        profile=args.profile,
        token=args.token,
        pin_env=args.pin_env,
        pin_file=args.pin_file,
        key_label=args.key_label,
        key_algorithm=KeyAlgorithm(args.key_algorithm),
    )
    for key in options.admin_keys:
        if len(key) != 66 or key[:2] not in ("02", "03"):
            raise InvalidInput(
                f"--admin-key {key[:20]}... is not a compressed secp256k1 public key",
                hint="66 hex characters starting 02 or 03 (trusted-ledger keygen prints one)",
            )
    result = init_node(options)
    print(f"node created in {args.dir}")
    print(f"  configuration  {result.config_path}")
    print(f"  chain          {args.chain_id}, genesis {result.genesis_block_id.hex()}")
    print(f"  node key       {result.node_fingerprint} (on the token, not extractable)")
    if result.admin_key_file is not None:
        print(f"  admin key      {result.admin_key_file} (client key of the first admin)")
    print(f"start it with:   trusted-ledger node run --dir {args.dir}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args))
    configure_logging(json=config.logging.format == "json", level=config.logging.level)

    from trusted_ledger.node.runtime import Endpoints, serve  # noqa: PLC0415 - loads the API

    def ready(endpoints: Endpoints) -> None:
        # The processor endpoint first: "node ready" is the last line a supervisor waits for.
        if endpoints.processors:
            print(f"processors: {endpoints.processors}", flush=True)
        if endpoints.peers:
            print(f"peers: {endpoints.peers}", flush=True)
        print(f"node ready: {endpoints.api_url} (chain {config.node.chain_id})", flush=True)

    return asyncio.run(serve(config, on_ready=ready))


def _cmd_config(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args))
    sys.stdout.write(render_config(config))
    return 0
