"""The on-chain consortium membership: the value of the setting ``tl.consensus.members``.

The value is canonical JSON text (no spaces, object keys sorted, ASCII only): a list, in
proposer-rotation order, of ``{"name": NAME, "public_key": HEX_SPKI}``. Canonical means one
membership has exactly one text, so every node writes and compares the same bytes; a value
that parses but is not in that form is refused rather than silently normalised.

The settings handler validates a proposal for this key with ``decode_members_setting`` before
it is recorded, so an approved membership is always usable by the chain and consensus layers,
which read it back through the same function. Format: docs/families.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import InvalidInput, InvalidTransaction

MEMBERS_SETTING = "tl.consensus.members"
members_setting_chars_max = 96 * 1024
"""Characters of the value: 256 members of a P-256 key (182 hex) and a 64-character name
take ~67 KiB; the generic settings value limit (4096) is far too small for this one key."""
consortium_members_max = 256
"""Members on chain; the same bound as the members file (node/members.py)."""
member_name_chars_max = 64
public_key_hex_chars_max = 1024
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FIELDS = ("name", "public_key")


@dataclass(frozen=True)
class ChainMember:
    """One member as the chain knows it: a name for people, a custody key for machines."""

    name: str
    public_key: PublicKey

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint


def encode_members_setting(members: Iterable[ChainMember]) -> str:
    """The canonical value for ``members`` (in rotation order); checked by decoding it back."""
    entries = [{"name": m.name, "public_key": m.public_key.spki_der.hex()} for m in members]
    text = _canonical(entries)
    decode_members_setting(text)  # paired check: what we write, we accept
    return text


def _canonical(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def _bad(problem: str) -> InvalidTransaction:
    return InvalidTransaction(
        f"{MEMBERS_SETTING}: {problem}",
        hint='the value is canonical JSON: [{"name":NAME,"public_key":HEX_SPKI},...] with no '
        "spaces and keys sorted (`trusted-ledger members propose` writes it)",
    )


def decode_members_setting(text: str) -> tuple[ChainMember, ...]:
    """Parse and validate a ``tl.consensus.members`` value; ``InvalidTransaction`` naming
    the first problem (and the entry, by index and name)."""
    if len(text) > members_setting_chars_max:
        raise _bad(f"{len(text)} characters, at most {members_setting_chars_max}")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"not JSON ({exc})") from None
    if not isinstance(raw, list):
        raise _bad("must be a JSON list of members")
    if not 1 <= len(raw) <= consortium_members_max:
        raise _bad(f"{len(raw)} members, a membership has 1..{consortium_members_max}")
    if _canonical(raw) != text:
        raise _bad("not in canonical form (no spaces, keys sorted, ASCII escapes)")
    members = tuple(_member(index, entry) for index, entry in enumerate(raw))
    _check_unique(members)
    return members


def _member(index: int, entry: object) -> ChainMember:
    where = f"member {index}"
    if not isinstance(entry, dict):
        raise _bad(f"{where} must be an object with {', '.join(_FIELDS)}")
    name = entry.get("name")
    if isinstance(name, str):
        where = f"{where} ({name[:member_name_chars_max]!r})"
    if sorted(entry) != sorted(_FIELDS):
        raise _bad(f"{where} has fields {sorted(entry)}, it must have exactly {list(_FIELDS)}")
    key_hex = entry["public_key"]
    if not isinstance(name, str) or not isinstance(key_hex, str):
        raise _bad(f"{where}: name and public_key must be strings")
    if len(name) > member_name_chars_max or not NAME_PATTERN.fullmatch(name):
        raise _bad(
            f"{where}: name must be 1..{member_name_chars_max} characters of [A-Za-z0-9._-], "
            "starting with a letter or digit"
        )
    if len(key_hex) > public_key_hex_chars_max or key_hex != key_hex.lower():
        raise _bad(f"{where}: public_key must be lower-case hex of at most 1024 characters")
    try:
        der = bytes.fromhex(key_hex)
    except ValueError:
        raise _bad(f"{where}: public_key is not hex") from None
    try:
        key = PublicKey.from_spki(der)
    except InvalidInput as exc:
        raise _bad(f"{where}: public_key is not a usable key: {exc}") from None
    return ChainMember(name, key)


def _check_unique(members: tuple[ChainMember, ...]) -> None:
    for what, values in (
        ("name", [m.name for m in members]),
        ("public_key", [m.fingerprint for m in members]),
    ):
        first: dict[str, int] = {}
        for index, value in enumerate(values):
            earlier = first.setdefault(value, index)
            if earlier != index:
                raise _bad(
                    f"member {index} ({members[index].name!r}) has the same {what} as member "
                    f"{earlier} ({members[earlier].name!r})"
                )
