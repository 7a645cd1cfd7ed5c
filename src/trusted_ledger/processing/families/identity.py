"""``identity`` 1.0: roles (sets of public keys) and submission policies.

A policy names the roles whose members may submit transactions of one family ("*" as a
role: anyone; "*" as a family: the default for families without a policy of their own).
Members of the ``admin`` role administer roles and policies. The executor enforces the
policies before any handler runs (``IdentitySubmissionPolicy``), reading them at the state
the block starts from. Formats: docs/families.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trusted_ledger.errors import InvalidTransaction, SubmissionNotPermitted
from trusted_ledger.processing.codec import decode_map, encode_canonical
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.state import StateView, namespace_prefix
from trusted_ledger.txn import Transaction

FAMILY_NAME = "identity"
FAMILY_VERSION = "1.0"
IDENTITY_NAMESPACE = namespace_prefix(FAMILY_NAME)
ADMIN_ROLE = "admin"
ANYONE = "*"
DEFAULT_POLICY = "*"
_ROLE_TAG = "00"
_POLICY_TAG = "01"
role_keys_max = 256
policy_roles_max = 32
name_chars_max = 64
_NAME_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}")
_PUBLIC_KEY_PATTERN = re.compile(r"0[23][0-9a-f]{64}")
DEFAULT_POLICIES: Mapping[str, Sequence[str]] = {
    DEFAULT_POLICY: [ANYONE],
    FAMILY_NAME: [ADMIN_ROLE],
    "settings": [ADMIN_ROLE],
}


def _tagged(tag: str, name: str) -> str:
    return IDENTITY_NAMESPACE + tag + hashlib.sha512(name.encode("utf-8")).hexdigest()[:62]


def role_address(role: str) -> str:
    return _tagged(_ROLE_TAG, role)


def policy_address(family: str) -> str:
    return _tagged(_POLICY_TAG, family)


def set_role_payload(role: str, keys: Sequence[str]) -> bytes:
    return encode_canonical({"Action": "set_role", "Role": role, "Keys": list(keys)})


def set_policy_payload(family: str, roles: Sequence[str]) -> bytes:
    return encode_canonical({"Action": "set_policy", "Family": family, "Roles": list(roles)})


def role_record(role: str, keys: Sequence[str]) -> bytes:
    return encode_canonical({"role": role, "keys": sorted(set(keys))})


def policy_record(family: str, roles: Sequence[str]) -> bytes:
    return encode_canonical({"family": family, "roles": sorted(set(roles))})


def identity_genesis_changes(
    admin_keys: Sequence[str],
    policies: Mapping[str, Sequence[str]] = DEFAULT_POLICIES,
    roles: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, bytes]:
    """State changes bootstrapping identity: the first admins, roles and policies."""
    all_roles = {**(roles or {}), ADMIN_ROLE: admin_keys}
    changes = {}
    for role, keys in all_roles.items():
        _check_role(role, keys)
        changes[role_address(role)] = role_record(role, keys)
    for family, allowed in policies.items():
        _check_policy(family, allowed)
        changes[policy_address(family)] = policy_record(family, allowed)
    return changes


def _check_role(role: object, keys: object) -> None:
    if not isinstance(role, str) or not _NAME_PATTERN.fullmatch(role):
        raise InvalidTransaction(f"a role name is 1-{name_chars_max} of a-z, 0-9, '_.-'")
    if not isinstance(keys, list | tuple) or len(keys) > role_keys_max:
        raise InvalidTransaction(f"Keys is a list of at most {role_keys_max} public keys")
    if not all(isinstance(k, str) and _PUBLIC_KEY_PATTERN.fullmatch(k) for k in keys):
        raise InvalidTransaction("Keys holds something other than a compressed public key")
    if role == ADMIN_ROLE and not keys:
        raise InvalidTransaction("the admin role cannot be emptied: nobody could administer")


def _check_policy(family: object, roles: object) -> None:
    if not isinstance(family, str) or not 1 <= len(family) <= name_chars_max:
        raise InvalidTransaction(f"Family is a family name of 1..{name_chars_max} characters")
    if not isinstance(roles, list | tuple) or len(roles) > policy_roles_max:
        raise InvalidTransaction(f"Roles is a list of at most {policy_roles_max} role names")
    for role in roles:
        if role != ANYONE and not (isinstance(role, str) and _NAME_PATTERN.fullmatch(role)):
            raise InvalidTransaction(f"{role!r} is not a role name or {ANYONE!r}")


def _record(data: bytes | None, field: str, name: str) -> list[str]:
    """The list in a role or policy record, checked to belong to ``name``."""
    if data is None:
        return []
    record = decode_map(data, "identity record")
    names = record.get("role", record.get("family"))
    items = record.get(field)
    if names != name or not isinstance(items, list):
        raise InvalidTransaction(f"identity record at the address of {name!r} is another's")
    return items


class IdentityHandler(TransactionHandler):
    """Admins set roles and policies."""

    @property
    def family_name(self) -> str:
        return FAMILY_NAME

    @property
    def family_versions(self) -> tuple[str, ...]:
        return (FAMILY_VERSION,)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        payload = decode_map(transaction.payload, "identity payload")
        admins_at = role_address(ADMIN_ROLE)
        admins = _record(context.get_state([admins_at]).get(admins_at), "keys", ADMIN_ROLE)
        if transaction.header.signer_public_key not in admins:
            raise InvalidTransaction("only members of the admin role administer identity")
        action = payload.get("Action")
        if action == "set_role":
            _set(context, payload, "Role", "Keys", role_address, role_record, _check_role)
        elif action == "set_policy":
            _set(context, payload, "Family", "Roles", policy_address, policy_record, _check_policy)
        else:
            raise InvalidTransaction('Action must be "set_role" or "set_policy"')


def _set(
    context: HandlerContext,
    payload: Mapping[str, Any],
    name_field: str,
    list_field: str,
    address_of: Callable[[str], str],
    record_of: Callable[[str, Sequence[str]], bytes],
    check: Callable[[object, object], None],
) -> None:
    name, items = payload.get(name_field), payload.get(list_field)
    check(name, items)
    assert isinstance(name, str) and isinstance(items, list)
    address = address_of(name)
    if items:
        context.set_state({address: record_of(name, items)})
    else:
        context.delete_state([address])  # an empty role or policy is no role or policy
    context.add_event(f"identity/{name_field.lower()}_set", [(name_field.lower(), name)])


class IdentitySubmissionPolicy:
    """Who may submit to which family, as of one state; cached for the block's duration."""

    def __init__(self, view: StateView) -> None:
        self._view = view
        self._roles: dict[str, frozenset[str]] = {}
        self._policies: dict[str, list[str] | None] = {}

    def _members(self, role: str) -> frozenset[str]:
        if role not in self._roles:
            self._roles[role] = frozenset(_record(self._view.get(role_address(role)), "keys", role))
        return self._roles[role]

    def _policy(self, family: str) -> list[str] | None:
        if family not in self._policies:
            data = self._view.get(policy_address(family))
            self._policies[family] = None if data is None else _record(data, "roles", family)
        return self._policies[family]

    def check(self, signer_public_key: str, family_name: str) -> None:
        roles = self._policy(family_name)
        if roles is None:
            roles = self._policy(DEFAULT_POLICY)
        if roles is None:
            raise SubmissionNotPermitted(
                f"no identity policy covers family {family_name!r}, and there is no default",
                hint=f"an admin sets a policy for {family_name!r} or for {DEFAULT_POLICY!r}",
            )
        if ANYONE in roles or any(signer_public_key in self._members(r) for r in roles):
            return
        raise SubmissionNotPermitted(
            f"signer {signer_public_key[:16]}... may not submit to family {family_name!r}",
            hint=f"allowed roles: {', '.join(roles)}",
        )


def identity_addresses(name: str, *, policy: bool) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of a transaction setting role or policy ``name``."""
    target = policy_address(name) if policy else role_address(name)
    return sorted({role_address(ADMIN_ROLE), target}), [target]
