"""``trusted-ledger node new-key`` and ``node finish-rotation``: the first and the last step
of rotating a member's key.

Generates a non-extractable key on the node's own token (through custody, like ``node
init``), creates its signing guard under the node's data directory, and prints the key's
SPKI for the membership proposal. With ``--write-config`` it also sets
``custody.next_key_label`` in the node's configuration (rewritten in full, as ``node init``
writes it); the node loads the key on its next start and signs with it from the height the
approved membership takes effect (docs/local-consortium.md, "Rotating a member's key").
``node finish-rotation`` ends it: once the chain's membership has the new key and not the old,
the new key becomes ``custody.key_label`` (the key that signs the trail's checkpoints).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from trusted_ledger.chain import ChainStore, Membership
from trusted_ledger.chain.membership import ChainMember, MemberList, MembershipSchedule
from trusted_ledger.custody import KeyAlgorithm, PublicKey, SigningGuard
from trusted_ledger.errors import ConfigurationError, InvalidInput
from trusted_ledger.node.config import CONFIG_FILE_NAME, NodeConfig, load_config, render_config
from trusted_ledger.node.custody_setup import open_token
from trusted_ledger.node.members import load_members
from trusted_ledger.storage.rocks_readonly import ReadOnlyRocksDatabase


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

    finish = sub.add_parser(
        "finish-rotation",
        help="after the chain made the next key the member's: make it the node key "
        "(custody.key_label), so the trail's checkpoints and anchors are signed by it",
    )
    where = finish.add_mutually_exclusive_group()
    where.add_argument("--dir", type=Path, help=f"node directory (reads DIR/{CONFIG_FILE_NAME})")
    where.add_argument("--config", type=Path, help="configuration file")
    finish.set_defaults(handler=_cmd_finish_rotation)


def _cmd_new_key(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args, "new-key"))
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
        "then `trusted-ledger node finish-rotation` makes it the node key (and restart)"
    )
    return 0


def _config_path(args: argparse.Namespace, command: str) -> Path:
    if args.config is not None:
        return Path(args.config)
    if args.dir is not None:
        return Path(args.dir) / CONFIG_FILE_NAME
    raise InvalidInput(f"node {command} needs --config FILE or --dir DIR")


def _cmd_finish_rotation(args: argparse.Namespace) -> int:
    """custody.key_label := next_key_label, once the chain's membership has the new key and
    no longer the old one (read from the node's database, read-only: the node may run)."""
    config = load_config(_config_path(args, "finish-rotation"))
    old_label, new_label = config.custody.key_label, config.custody.next_key_label
    if not new_label:
        raise InvalidInput(
            "no key rotation is under way: custody.next_key_label is empty",
            hint="a rotation starts with `trusted-ledger node new-key` (docs/operations.md §6)",
        )
    pool = open_token(config)
    try:
        old_key = pool.key_info(old_label).public_key
        new_key = pool.key_info(new_label).public_key
    finally:
        pool.close()
    height, members = _next_membership(config, old_key)
    if new_key not in members:
        raise InvalidInput(
            f"the rotation has not taken effect: the membership of height {height} does not "
            f"list the new key {new_key.fingerprint[:16]} ({new_label!r}) yet",
            hint="the admins' --rotate proposal must be approved and committed first "
            "(`trusted-ledger members show`); nothing was changed",
        )
    if old_key in members:
        raise InvalidInput(
            f"the old key {old_key.fingerprint[:16]} ({old_label!r}) is still a member at "
            f"height {height}",
            hint="finish a rotation once the chain replaced the old key; nothing was changed",
        )
    updated = replace(
        config, custody=replace(config.custody, key_label=new_label, next_key_label="")
    )
    config.path.write_text(render_config(updated), encoding="utf-8")
    print(f"{config.path}: custody.key_label = {new_label!r}, next_key_label emptied")
    print(f"  the chain's membership of height {height} has {new_key.fingerprint} and not")
    print(f"  the old key {old_key.fingerprint} ({old_label!r}), which stays on the token;")
    print(f"  keep its guard {config.guard_path_of(old_label)} and the audit trail")
    print("restart the node: the trail's checkpoints and its anchors are then signed by the")
    print("new key (before, the old key, no longer a member, kept signing them)")
    return 0


def _next_membership(config: NodeConfig, node_key: PublicKey) -> tuple[int, MemberList]:
    """The membership deciding the height after the node's chain head."""
    bootstrap: list[ChainMember] | Membership = Membership([node_key])
    if config.consensus.members_file:
        members = load_members(config.resolve(config.consensus.members_file))
        bootstrap = [ChainMember(member.name, member.public_key) for member in members]
    database = ReadOnlyRocksDatabase(config.chain_dir)
    try:
        store = ChainStore(database, config.node.chain_id)
        head = store.head
        if head is None:
            raise InvalidInput(f"the chain database {config.chain_dir} has no head")
        return head.number + 1, MembershipSchedule(store, bootstrap).next()
    finally:
        database.close()


def _member_name(config: NodeConfig, fingerprint: str) -> str:
    """This node's name in its members file, for the printed command (NAME if unknown)."""
    if not config.consensus.members_file:
        return "NAME"
    try:
        members = load_members(config.resolve(config.consensus.members_file))
    except ConfigurationError:
        return "NAME"
    return next((m.name for m in members if m.fingerprint == fingerprint), "NAME")
