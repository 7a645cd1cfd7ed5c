"""Format rules for header fields, shared by the decoder (what the node accepts) and the
builders (so a client cannot build what the node would reject).

Every hex field must be lowercase. Ids are compared as strings, and an id that also had an
uppercase spelling would let the same signed transaction in twice under two ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from trusted_ledger.errors import (
    BatchListFault,
    DuplicateTransaction,
    InvalidField,
    SizeLimitExceeded,
)
from trusted_ledger.txn.limits import TxnLimits

PUBLIC_KEY_HEX_CHARS = 66  # 33-byte compressed SEC1 point
SIGNATURE_HEX_CHARS = 128  # 64-byte compact r || s
SHA512_HEX_CHARS = 128
ADDRESS_HEX_CHARS_MAX = 70  # a full Sawtooth address: 35 bytes

_LOWER_HEX = re.compile(r"[0-9a-f]*")
# Sawtooth's own families use names like "intkey" and "sawtooth_settings".
_FAMILY_NAME = re.compile(r"[a-z][a-z0-9_-]*")
# "1.0" style; up to three numeric components.
_FAMILY_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,2}")
# Printable ASCII without space: nonces are usually hex or decimal counters.
_NONCE = re.compile(r"[!-~]+")


_E = TypeVar("_E", bound=BatchListFault)


class Where:
    """Where a field sits in a batch list, for error messages."""

    __slots__ = ("batch_index", "transaction_index")

    def __init__(self, batch_index: int | None = None, transaction_index: int | None = None):
        self.batch_index = batch_index
        self.transaction_index = transaction_index

    def error(self, kind: type[_E], field: str | None, message: str, hint: str | None = None) -> _E:
        """An error of class ``kind`` located here (raise it)."""
        return kind(
            message,
            batch_index=self.batch_index,
            transaction_index=self.transaction_index,
            field=field,
            hint=hint,
        )

    def invalid(self, field: str, message: str) -> InvalidField:
        return self.error(InvalidField, field, message)

    def too_many(self, field: str, message: str) -> SizeLimitExceeded:
        return self.error(SizeLimitExceeded, field, message)


def _is_lower_hex(value: str) -> bool:
    return _LOWER_HEX.fullmatch(value) is not None


def _shown(value: str) -> str:
    # Echo enough of a bad value to recognise it, never a megabyte of it.
    return repr(value) if len(value) <= 80 else repr(value[:77] + "...")


def check_public_key_hex(value: str, field: str, where: Where) -> None:
    """66 lowercase hex chars starting 02 or 03 (whether it is a point is checked on use)."""
    if len(value) != PUBLIC_KEY_HEX_CHARS or not _is_lower_hex(value):
        raise where.invalid(
            field,
            f"public key must be {PUBLIC_KEY_HEX_CHARS} lowercase hex chars "
            f"(33-byte compressed secp256k1), got {_shown(value)}",
        )
    if value[:2] not in ("02", "03"):
        raise where.invalid(field, f"public key must start with 02 or 03, got {_shown(value)}")


def check_signature_hex(value: str, field: str, where: Where) -> None:
    """128 lowercase hex chars: a compact signature, also the form of every id."""
    if len(value) != SIGNATURE_HEX_CHARS or not _is_lower_hex(value):
        raise where.invalid(
            field,
            f"must be {SIGNATURE_HEX_CHARS} lowercase hex chars (a 64-byte compact signature), "
            f"got {_shown(value)}",
        )


def check_sha512_hex(value: str, field: str, where: Where) -> None:
    if len(value) != SHA512_HEX_CHARS or not _is_lower_hex(value):
        raise where.invalid(
            field, f"must be {SHA512_HEX_CHARS} lowercase hex chars, got {_shown(value)}"
        )


def check_family(name: str, version: str, limits: TxnLimits, where: Where) -> None:
    if not (len(name) <= limits.family_name_chars_max and _FAMILY_NAME.fullmatch(name)):
        raise where.invalid(
            "header.family_name",
            f"must be 1..{limits.family_name_chars_max} chars of a-z, 0-9, '_' or '-', "
            f"starting with a letter, got {_shown(name)}",
        )
    if not (len(version) <= limits.family_version_chars_max and _FAMILY_VERSION.fullmatch(version)):
        raise where.invalid(
            "header.family_version",
            f"must be 1..{limits.family_version_chars_max} chars like '1.0' "
            f"(1 to 3 dot-separated numbers), got {_shown(version)}",
        )


def check_nonce(nonce: str, limits: TxnLimits, where: Where) -> None:
    """Present, bounded, printable: the nonce is what makes two identical requests distinct."""
    if not nonce:
        raise where.invalid("header.nonce", "must not be empty")
    if len(nonce) > limits.nonce_chars_max or not _NONCE.fullmatch(nonce):
        raise where.invalid(
            "header.nonce",
            f"must be 1..{limits.nonce_chars_max} printable ASCII chars without spaces, "
            f"got {_shown(nonce)}",
        )


def check_addresses(addresses: Sequence[str], field: str, limits: TxnLimits, where: Where) -> None:
    """State addresses or prefixes: lowercase hex, even length, 2..70 chars."""
    if len(addresses) > limits.addresses_per_transaction_max:
        raise where.too_many(
            field,
            f"{len(addresses)} addresses, at most {limits.addresses_per_transaction_max} allowed",
        )
    for i, address in enumerate(addresses):
        if not (
            2 <= len(address) <= ADDRESS_HEX_CHARS_MAX
            and len(address) % 2 == 0
            and _is_lower_hex(address)
        ):
            raise where.invalid(
                f"{field}[{i}]",
                f"address must be lowercase hex of even length 2..{ADDRESS_HEX_CHARS_MAX} "
                f"(a full address or a prefix), got {_shown(address)}",
            )


def check_dependencies(dependencies: Sequence[str], limits: TxnLimits, where: Where) -> None:
    """Each a transaction id (128 lowercase hex chars), none twice."""
    field = "header.dependencies"
    if len(dependencies) > limits.dependencies_per_transaction_max:
        raise where.too_many(
            field,
            f"{len(dependencies)} dependencies, "
            f"at most {limits.dependencies_per_transaction_max} allowed",
        )
    for i, dependency in enumerate(dependencies):
        check_signature_hex(dependency, f"{field}[{i}]", where)
    if len(set(dependencies)) != len(dependencies):
        seen: set[str] = set()
        for i, dependency in enumerate(dependencies):
            if dependency in seen:
                raise where.error(
                    DuplicateTransaction,
                    f"{field}[{i}]",
                    f"dependency {dependency[:16]}... is listed twice",
                )
            seen.add(dependency)
