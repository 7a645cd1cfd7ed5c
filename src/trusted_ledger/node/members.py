"""The members file: the consortium's address book and bootstrap membership.

Who decides each height is on chain (the setting ``tl.consensus.members``, read through
chain/membership.py); this file says where each member's node is (name -> address), and it
is the membership of a chain that does not hold the setting (one made before it existed).
For that bootstrap role all members must agree on the list *and its order* (the proposer
rotation: proposer(h, r) is member (h + r) mod n), so it is written once by whoever sets the
consortium up (``trusted-ledger net init``, or the banks' operators by hand) and copied to
every node (each node may hold its own addresses for the same names and keys)::

    [[member]]
    name = "bank-a"
    public_key = "3059301306072a8648ce3d0201..."   # DER SubjectPublicKeyInfo, hex
    address = "10.0.0.1:7000"                       # that node's [network] bind

Validation is complete before anything starts, and every error names the entry (its index
and, when it has one, its name), because a members file that differs between nodes or holds
a typo is a consortium that cannot decide: better refused at start than debugged later.
docs/consortium.md is the reference of the format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import ConfigurationError, InvalidInput

members_max = 256
"""Members in one file. The consensus counts every member's vote each round and each node
keeps a connection to every other, so a consortium is tens of banks, not thousands; the bound
keeps a corrupt file from costing memory."""
members_file_bytes_max = 1024 * 1024
"""Bytes of a members file (256 members of ~300 bytes each fit many times over)."""
member_name_chars_max = 64
public_key_hex_chars_max = 1024
"""Hex characters of an SPKI (a P-256 SPKI is 91 bytes = 182 hex characters)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEYS = ("name", "public_key", "address")


@dataclass(frozen=True)
class Member:
    """One member node: its name (for people), custody key (for machines) and peer address."""

    name: str
    public_key: PublicKey
    address: str
    """``HOST:PORT`` where the member's node accepts peers (its ``[network] bind``)."""

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint


def load_members(path: Path) -> list[Member]:
    """Read and validate the members file at ``path``; the list in file order.

    ``ConfigurationError`` (naming the file and the entry) for anything wrong: unreadable,
    not TOML, unknown keys, a missing or badly typed field, an unparseable key, a bad
    address, duplicate names, keys or addresses, no member or too many.
    """
    try:
        size = path.stat().st_size
        if size > members_file_bytes_max:
            raise ConfigurationError(
                f"members file {path} has {size} bytes, more than {members_file_bytes_max}"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"members file {path} does not exist",
            hint="set consensus.members_file to the consortium's members file "
            "(`trusted-ledger net init` writes one)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read members file {path}: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"members file {path} is not valid TOML: {exc}") from exc
    return members_from_mapping(raw, str(path))


def members_from_mapping(raw: dict[str, Any], source: str) -> list[Member]:
    """Validate parsed TOML (``source`` names it in errors); the members in order."""
    unknown = sorted(set(raw) - {"member"})
    if unknown:
        raise ConfigurationError(
            f"{source}: unknown key {unknown[0]!r}", hint="the file holds [[member]] tables only"
        )
    entries = raw.get("member")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(
            f"{source}: no [[member]] entry", hint="list every member as a [[member]] table"
        )
    if len(entries) > members_max:
        raise ConfigurationError(f"{source}: {len(entries)} members, at most {members_max}")
    members = [_member(source, index, entry) for index, entry in enumerate(entries)]
    _check_unique(source, members)
    return members


def _member(source: str, index: int, entry: object) -> Member:
    where = f"{source}: member {index}"
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be a [[member]] table")
    name = entry.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name!r})"
    unknown = sorted(set(entry) - set(_KEYS))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key {unknown[0]!r}", hint=f"a member has {', '.join(_KEYS)}"
        )
    for key in _KEYS:
        if not isinstance(entry.get(key), str):
            raise ConfigurationError(f"{where}: {key} must be a string, got {entry.get(key)!r}")
    assert isinstance(name, str)
    if len(name) > member_name_chars_max or not _NAME.match(name):
        raise ConfigurationError(
            f"{where}: name must be 1..{member_name_chars_max} characters of "
            "[A-Za-z0-9._-], starting with a letter or digit"
        )
    return Member(name, _public_key(where, entry["public_key"]), _address(where, entry["address"]))


def _public_key(where: str, text: str) -> PublicKey:
    if len(text) > public_key_hex_chars_max:
        raise ConfigurationError(
            f"{where}: public_key has {len(text)} hex characters, at most "
            f"{public_key_hex_chars_max}"
        )
    try:
        der = bytes.fromhex(text)
    except ValueError:
        raise ConfigurationError(
            f"{where}: public_key is not hex", hint="the DER SubjectPublicKeyInfo in hex"
        ) from None
    try:
        return PublicKey.from_spki(der)
    except InvalidInput as exc:
        raise ConfigurationError(f"{where}: public_key is not a usable key: {exc}") from exc


def _address(where: str, text: str) -> str:
    host, _, port = text.rpartition(":")
    if (
        not host.strip("[]")
        or not (port.isascii() and port.isdigit())
        or not 1 <= int(port) <= 65535
    ):
        raise ConfigurationError(
            f"{where}: address must be HOST:PORT with a port in 1..65535, got {text!r}"
        )
    return text


def _check_unique(source: str, members: Sequence[Member]) -> None:
    columns: dict[str, list[str]] = {
        "name": [m.name for m in members],
        "public_key": [m.public_key.spki_der.hex() for m in members],
        "address": [m.address for m in members],
    }
    for what, values in columns.items():
        first: dict[str, int] = {}
        for index, (member, value) in enumerate(zip(members, values, strict=True)):
            earlier = first.setdefault(value, index)
            if earlier != index:
                raise ConfigurationError(
                    f"{source}: member {index} ({member.name!r}) has the same {what} as "
                    f"member {earlier} ({members[earlier].name!r})"
                )


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_members(members: Sequence[Member]) -> str:
    """The members file's text for ``members`` (what ``load_members`` reads back)."""
    if not members:
        raise InvalidInput("a members file lists at least one member")
    lines = [
        "# Trusted Ledger consortium members (docs/consortium.md). The same file on every",
        "# node; the order is the proposer rotation.",
    ]
    for member in members:
        lines += [
            "",
            "[[member]]",
            f"name = {_quoted(member.name)}",
            f"public_key = {_quoted(member.public_key.spki_der.hex())}",
            f"address = {_quoted(member.address)}",
        ]
    text = "\n".join(lines) + "\n"
    members_from_mapping(tomllib.loads(text), "rendered members")  # paired check
    return text


def write_members(path: Path, members: Sequence[Member]) -> None:
    """Write the members file for ``members`` at ``path``."""
    path.write_text(render_members(members), encoding="utf-8")
