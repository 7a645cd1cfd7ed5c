"""``trusted-ledger members show|propose|vote``: the consortium membership on chain.

The membership is the setting ``tl.consensus.members`` (docs/families.md); it changes like
any setting, by a ``settings`` proposal that authorised admins approve. ``propose`` reads
the membership at the head, applies ``--add NAME=HEX_SPKI``, ``--remove NAME`` and
``--rotate NAME=HEX_SPKI`` (in that order, any number of each), and proposes the result;
an approval committed in block H takes effect from block H + 1 (docs/consortium.md).
Members keep their place in the rotation order; added members go to the end.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trusted_ledger.cli.client_common import ledger_client as tls_client
from trusted_ledger.cli.client_common import node_options as client_node_options
from trusted_ledger.client.http import LedgerClient
from trusted_ledger.client.keys import default_key_dir, resolve_key
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import InvalidInput, InvalidTransaction, NotFound
from trusted_ledger.processing.codec import decode_map
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    NAME_PATTERN,
    ChainMember,
    decode_members_setting,
    encode_members_setting,
)
from trusted_ledger.processing.families.settings import (
    FAMILY_NAME,
    FAMILY_VERSION,
    PROPOSALS,
    proposal_id,
    propose_payload,
    setting_address,
    settings_addresses,
    vote_payload,
)
from trusted_ledger.txn import TransactionBuilder, build_batch

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_PENDING = 3


def register(subparsers: Any) -> None:
    members = subparsers.add_parser(
        "members", help="the consortium membership on chain: show, propose a change, vote"
    )
    sub = members.add_subparsers(dest="members_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="the membership at the head and open proposals")
    _node_options(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_cmd_show)

    propose = sub.add_parser(
        "propose", help="propose the membership with members added, removed or re-keyed"
    )
    propose.add_argument("--add", action="append", default=[], metavar="NAME=HEX_SPKI")
    propose.add_argument("--remove", action="append", default=[], metavar="NAME")
    propose.add_argument(
        "--rotate",
        action="append",
        default=[],
        metavar="NAME=HEX_SPKI",
        help="replace NAME's key (`trusted-ledger node new-key` prints the new one)",
    )
    _write_options(propose)
    propose.set_defaults(handler=_cmd_propose)

    vote = sub.add_parser("vote", help="accept or reject an open membership proposal")
    vote.add_argument("proposal", metavar="PROPOSAL_ID", help="64 hex (propose prints it)")
    choice = vote.add_mutually_exclusive_group(required=True)
    choice.add_argument("--accept", action="store_true")
    choice.add_argument("--reject", action="store_true")
    _write_options(vote)
    vote.set_defaults(handler=_cmd_vote)


def _node_options(parser: argparse.ArgumentParser) -> None:
    """The same node options as every other client command: --url, --timeout and, for an
    https node, --ca-file / --cert-file / --key-file (or their environment variables)."""
    client_node_options(parser)


def _write_options(parser: argparse.ArgumentParser) -> None:
    _node_options(parser)
    parser.add_argument(
        "--key", required=True, help="an authorised settings admin: NAME in the key dir or .priv"
    )
    parser.add_argument("--key-dir", type=Path, help="client key directory")
    parser.add_argument("--no-wait", action="store_true", help="return once the node accepts")
    parser.add_argument("--wait-timeout", type=float, default=60.0, metavar="S")


def _client(args: argparse.Namespace) -> LedgerClient:
    return tls_client(args)


# --- the change itself (pure, tested on its own) -----------------------------------------------


def _named_key(text: str, option: str) -> tuple[str, PublicKey]:
    name, sep, key_hex = text.partition("=")
    if not sep or not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"{option} {text[:40]!r} is not NAME=HEX_SPKI",
            hint="e.g. --rotate bank-b=3059301306072a8648ce3d02... (node new-key prints it)",
        )
    try:
        der = bytes.fromhex(key_hex)
    except ValueError:
        raise InvalidInput(f"{option} {name}: the key is not hex") from None
    try:
        return name, PublicKey.from_spki(der)
    except InvalidInput as exc:
        raise InvalidInput(f"{option} {name}: not a usable public key: {exc}") from None


def changed_membership(
    current: Sequence[ChainMember],
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    rotate: Sequence[str] = (),
) -> tuple[ChainMember, ...]:
    """``current`` with ``add`` (NAME=HEX) appended, ``remove`` (NAME) dropped and
    ``rotate`` (NAME=HEX) re-keyed in place; ``InvalidInput`` naming a bad change."""
    members = list(current)
    names = {m.name for m in members}
    for text in add:
        name, key = _named_key(text, "--add")
        if name in names:
            raise InvalidInput(f"--add {name}: already a member", hint="use --rotate to re-key")
        members.append(ChainMember(name, key))
        names.add(name)
    for name in remove:
        if name not in names:
            raise InvalidInput(f"--remove {name}: not a member", hint="see `members show`")
        members = [m for m in members if m.name != name]
        names.discard(name)
    for text in rotate:
        name, key = _named_key(text, "--rotate")
        if name not in names:
            raise InvalidInput(f"--rotate {name}: not a member", hint="see `members show`")
        members = [ChainMember(name, key) if m.name == name else m for m in members]
    if not members:
        raise InvalidInput("the change leaves no member")
    if tuple(members) == tuple(current):
        raise InvalidInput("nothing to propose: give --add, --remove or --rotate")
    try:
        encode_members_setting(members)  # every rule the settings handler applies
    except InvalidTransaction as exc:
        raise InvalidInput(str(exc), hint=exc.hint) from None
    return tuple(members)


# --- reading the chain -------------------------------------------------------------------------


def _setting_entries(client: LedgerClient, address: str) -> dict[str, Any]:
    data = client.state(address)
    return {} if data is None else decode_map(data, "settings record")


def current_members(client: LedgerClient) -> tuple[ChainMember, ...]:
    value = _setting_entries(client, setting_address(MEMBERS_SETTING)).get(MEMBERS_SETTING)
    if not isinstance(value, str):
        raise NotFound(
            f"no {MEMBERS_SETTING} on this chain",
            hint="the chain takes its membership from the members file (made before on-chain "
            "membership, or a single-node chain)",
        )
    return decode_members_setting(value)


def open_proposals(client: LedgerClient) -> dict[str, Any]:
    proposals = _setting_entries(client, setting_address(PROPOSALS))
    return {i: p for i, p in proposals.items() if p.get("key") == MEMBERS_SETTING}


def _cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        members = current_members(client)
        proposals = open_proposals(client)
    if args.json:
        document = {
            "members": [
                {
                    "name": m.name,
                    "public_key": m.public_key.spki_der.hex(),
                    "fingerprint": m.fingerprint,
                }
                for m in members
            ],
            "proposals": {
                i: {
                    "members": [m.name for m in decode_members_setting(p["value"])],
                    "votes": p["votes"],
                }
                for i, p in proposals.items()
            },
        }
        print(json.dumps(document, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"{len(members)} members (rotation order):")
    for member in members:
        print(f"  {member.name:<20} {member.fingerprint}")
    for identifier, proposal in proposals.items():
        names = ", ".join(m.name for m in decode_members_setting(proposal["value"]))
        accepts = sum(1 for v in proposal["votes"].values() if v == "accept")
        print(f"open proposal {identifier}: [{names}], {accepts} accept(s)")
    return EXIT_OK


# --- writing -------------------------------------------------------------------------------------


def _submit(args: argparse.Namespace, client: LedgerClient, payload: bytes) -> int:
    key = resolve_key(
        args.key, Path(args.key_dir).expanduser() if args.key_dir else default_key_dir()
    )
    inputs, outputs = settings_addresses(MEMBERS_SETTING)
    transaction = TransactionBuilder(key, FAMILY_NAME, FAMILY_VERSION).build(
        payload, inputs=inputs, outputs=outputs
    )
    (batch_id,) = client.submit([build_batch(key, [transaction])])
    if args.no_wait:
        print(f"submitted as batch {batch_id}")
        return EXIT_OK
    (report,) = client.wait_committed([batch_id], args.wait_timeout)
    if report.status == "COMMITTED":
        print(f"COMMITTED in block {report.block_num} (batch {batch_id})")
        return EXIT_OK
    if report.status == "INVALID":
        print(f"INVALID: {report.reason} (batch {batch_id})")
        return EXIT_FAILURE
    print(f"{report.status} after {args.wait_timeout:g} s (batch {batch_id})")
    return EXIT_PENDING


def _cmd_propose(args: argparse.Namespace) -> int:
    with _client(args) as client:
        members = changed_membership(
            current_members(client), add=args.add, remove=args.remove, rotate=args.rotate
        )
        value = encode_members_setting(members)
        nonce = secrets.token_hex(16)
        print(f"proposal {proposal_id(MEMBERS_SETTING, value, nonce)}")
        print(f"  members: {', '.join(m.name for m in members)}")
        status = _submit(args, client, propose_payload(MEMBERS_SETTING, value, nonce))
        if status == EXIT_OK and not args.no_wait:
            if current_members(client) == members:
                print("approved: the new membership decides every block after that one")
            else:
                print(
                    "open: other admins approve it with `trusted-ledger members vote ID --accept`"
                )
    return status


def _cmd_vote(args: argparse.Namespace) -> int:
    proposal = args.proposal.lower()
    if len(proposal) != 64 or any(c not in "0123456789abcdef" for c in proposal):
        raise InvalidInput(f"proposal id {args.proposal[:20]!r} is not 64 hex characters")
    with _client(args) as client:
        return _submit(args, client, vote_payload(proposal, accept=bool(args.accept)))
