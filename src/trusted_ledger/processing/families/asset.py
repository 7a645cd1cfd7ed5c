"""``asset`` 1.0: issued assets (currencies, equities, loyalty points) moved point to point.

An issuer creates an asset class, issues units to accounts and may freeze an account; holders
transfer units to other accounts. Total supply changes only by ``issue`` and ``redeem`` (the
issuer burning units it holds): every other action conserves the sum of balances, which is
the property the tests check. Accounts are holders' secp256k1 public keys (66 hex chars).
Payload and state formats: docs/families.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing.codec import decode_map, encode_canonical
from trusted_ledger.state import namespace_prefix

FAMILY_NAME = "asset"
FAMILY_VERSION = "1.0"
ASSET_NAMESPACE = namespace_prefix(FAMILY_NAME)
_CLASS_TAG = "00"
_HOLDING_TAG = "01"
_SUFFIX_HEX_CHARS = 62  # 70 - 6 (namespace) - 2 (record tag)

KINDS = ("currency", "equity", "loyalty")
ACTIONS = ("create", "issue", "transfer", "redeem", "freeze", "unfreeze")
decimals_max = 18
units_max = 2**63 - 1
"""Largest amount, balance and supply in smallest units: fits a signed 64-bit integer, what
most banking systems and other SDKs can hold."""
_CODE_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{0,15}")
_ACCOUNT_PATTERN = re.compile(r"0[23][0-9a-f]{64}")


def asset_class_address(code: str) -> str:
    digest = hashlib.sha512(code.encode("utf-8")).hexdigest()
    return ASSET_NAMESPACE + _CLASS_TAG + digest[:_SUFFIX_HEX_CHARS]


def holding_address(code: str, account: str) -> str:
    digest = hashlib.sha512(code.encode("utf-8") + b"\x00" + account.encode("ascii")).hexdigest()
    return ASSET_NAMESPACE + _HOLDING_TAG + digest[:_SUFFIX_HEX_CHARS]


@dataclass(frozen=True, slots=True)
class AssetOperation:
    """A payload with the inputs and outputs its transaction must declare."""

    payload: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def create_operation(code: str, kind: str, decimals: int) -> AssetOperation:
    address = asset_class_address(code)
    payload = {"Action": "create", "Asset": code, "Kind": kind, "Decimals": decimals}
    return AssetOperation(encode_canonical(payload), (address,), (address,))


def issue_operation(code: str, to: str, amount: int) -> AssetOperation:
    addresses = (asset_class_address(code), holding_address(code, to))
    payload = {"Action": "issue", "Asset": code, "To": to, "Amount": amount}
    return AssetOperation(encode_canonical(payload), addresses, addresses)


def transfer_operation(code: str, sender: str, to: str, amount: int) -> AssetOperation:
    holdings = (holding_address(code, sender), holding_address(code, to))
    payload = {"Action": "transfer", "Asset": code, "To": to, "Amount": amount}
    # The class is only read: transfers of one asset do not conflict through it.
    return AssetOperation(
        encode_canonical(payload), (asset_class_address(code), *holdings), holdings
    )


def redeem_operation(code: str, issuer: str, amount: int) -> AssetOperation:
    addresses = (asset_class_address(code), holding_address(code, issuer))
    payload = {"Action": "redeem", "Asset": code, "Amount": amount}
    return AssetOperation(encode_canonical(payload), addresses, addresses)


def freeze_operation(code: str, account: str, *, frozen: bool = True) -> AssetOperation:
    holding = holding_address(code, account)
    action = "freeze" if frozen else "unfreeze"
    payload = {"Action": action, "Asset": code, "Account": account}
    return AssetOperation(
        encode_canonical(payload), (asset_class_address(code), holding), (holding,)
    )


# --- state records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetClass:
    code: str
    kind: str
    decimals: int
    issuer: str
    supply: int

    def encode(self) -> bytes:
        return encode_canonical(
            {
                "code": self.code,
                "kind": self.kind,
                "decimals": self.decimals,
                "issuer": self.issuer,
                "supply": self.supply,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> AssetClass:
        record = decode_map(data, "asset class record")
        return cls(
            code=text_field(record, "code"),
            kind=text_field(record, "kind"),
            decimals=integer_field(record, "decimals", 0, decimals_max),
            issuer=text_field(record, "issuer"),
            supply=integer_field(record, "supply", 0, units_max),
        )


@dataclass(frozen=True, slots=True)
class Holding:
    balance: int = 0
    frozen: bool = False

    def encode(self) -> bytes:
        return encode_canonical({"balance": self.balance, "frozen": self.frozen})

    @classmethod
    def decode(cls, data: bytes) -> Holding:
        record = decode_map(data, "holding record")
        frozen = record.get("frozen")
        if not isinstance(frozen, bool):
            raise InvalidTransaction("holding record's frozen flag is not a boolean")
        return cls(integer_field(record, "balance", 0, units_max), frozen)


def text_field(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str):
        raise InvalidTransaction(f"{field} must be a text string")
    return value


def integer_field(record: Mapping[str, Any], field: str, low: int, high: int) -> int:
    value = record.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidTransaction(f"{field} must be an integer in {low}..{high}")
    return value


def code_field(payload: Mapping[str, Any]) -> str:
    code = text_field(payload, "Asset")
    if not _CODE_PATTERN.fullmatch(code):
        raise InvalidTransaction(
            f"asset code {code!r} must be 1-16 of A-Z, 0-9 and '-', not starting with '-'"
        )
    return code


def account_field(payload: Mapping[str, Any], field: str) -> str:
    account = text_field(payload, field)
    if not _ACCOUNT_PATTERN.fullmatch(account):
        raise InvalidTransaction(
            f"{field} must be a compressed secp256k1 public key (66 lowercase hex chars)"
        )
    return account
