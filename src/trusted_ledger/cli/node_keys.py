"""``trusted-ledger node new-key``: the first step of rotating a member's key.

Generates a non-extractable key on the node's own token (through custody, like ``node
init``), creates its signing guard under the node's data directory, and prints the key's
SPKI for the membership proposal. With ``--write-config`` it also sets
``custody.next_key_label`` in the node's configuration (rewritten in full, as ``node init``
writes it); the node loads the key on its next start and signs with it from the height the
approved membership takes effect (docs/local-consortium.md, "Rotating a member's key").
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from trusted_ledger.custody import KeyAlgorithm, SigningGuard
from trusted_ledger.errors import ConfigurationError, InvalidInput
from trusted_ledger.node.config import CONFIG_FILE_NAME, NodeConfig, load_config, render_config
from trusted_ledger.node.custody_setup import open_token
from trusted_ledger.node.members import load_members


def register_node_actions(sub: Any) -> None:
    """Add ``new-key`` to the ``node`` command group (cli/node.py calls this)."""
    new_key = sub.add_parser(
        "new-key",
        help="generate the next node key on the token (key rotation) and its signing guard",
    )
    where = new_key.add_mutually_exclusive_group()
    where.add_argument("--dir", type=Path, help=f"node directory (reads DIR/{CONFIG_FILE_NAME})")
    where.add_argument("--config", type=Path, help="configuration file")
    new_key.add_argument("--label", required=True, help="label of the new key on the token")
    new_key.add_argument(
        "--key-algorithm",
        choices=[a.value for a in KeyAlgorithm],
        default=KeyAlgorithm.EC_P256.value,
    )
    new_key.add_argument(
        "--write-config",
        action="store_true",
        help="also set custody.next_key_label = LABEL in the configuration file",
    )
    new_key.set_defaults(handler=_cmd_new_key)


def _cmd_new_key(args: argparse.Namespace) -> int:
    if args.config is not None:
        path = Path(args.config)
    elif args.dir is not None:
        path = Path(args.dir) / CONFIG_FILE_NAME
    else:
        raise InvalidInput("node new-key needs --config FILE or --dir DIR")
    config = load_config(path)
    label: str = args.label
    if label in (config.custody.key_label, config.custody.next_key_label):
        raise InvalidInput(
            f"the node already uses a key labelled {label!r}",
            hint="choose a new label, e.g. node-signing-2",
        )
    guard_path = config.guard_path_of(label)
    if guard_path.exists():
        raise InvalidInput(
            f"{guard_path} exists: a key labelled {label!r} was made before",
            hint="choose a new label; never reuse a guard for another key",
        )
    pool = open_token(config)
    try:
        current = pool.key_info(config.custody.key_label).fingerprint
        key = pool.generate_key(label, KeyAlgorithm(args.key_algorithm))
    finally:
        pool.close()
    guard_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    SigningGuard.create(guard_path, key.fingerprint)
    if args.write_config:
        updated = replace(config, custody=replace(config.custody, next_key_label=label))
        config.path.write_text(render_config(updated), encoding="utf-8")
    spki = key.public_key.spki_der.hex()
    name = _member_name(config, current)
    print(f"new key {label!r} on token {config.custody.token} (not extractable)")
    print(f"  fingerprint  {key.fingerprint}")
    print(f"  public key   {spki}")
    print(f"  guard        {guard_path}")
    print("next steps:")
    step = 1
    if not args.write_config:
        print(f"  {step}. set custody.next_key_label = {label!r} in {config.path}")
        step += 1
    print(f"  {step}. restart the node so it loads both keys (it keeps signing with the old one)")
    print(
        f"  {step + 1}. an admin proposes the rotation: trusted-ledger members propose "
        f"--rotate {name}={spki} --key ADMIN"
    )
    print(
        f"  {step + 2}. once approved in block H, this node signs with the new key from H + 1; "
        "later, key_label may be set to the new label and next_key_label emptied"
    )
    return 0


def _member_name(config: NodeConfig, fingerprint: str) -> str:
    """This node's name in its members file, for the printed command (NAME if unknown)."""
    if not config.consensus.members_file:
        return "NAME"
    try:
        members = load_members(config.resolve(config.consensus.members_file))
    except ConfigurationError:
        return "NAME"
    return next((m.name for m in members if m.fingerprint == fingerprint), "NAME")
