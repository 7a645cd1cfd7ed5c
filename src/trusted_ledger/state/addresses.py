"""Sawtooth-style state addresses: 35 bytes, written as 70 lowercase hex characters.

The first 6 hex characters are the transaction family's namespace: the first 6 hex
characters of SHA-512 of the family name, exactly as in Sawtooth, so that addresses built by
Sawtooth clients and transaction processors land in the same place here. The remaining 64
characters are the family's to choose.

Addresses are handled as ``str`` at the API (what transactions declare and clients send) and
as 35 ``bytes`` inside the tree.
"""

from __future__ import annotations

# SHA-512 is what Sawtooth's address convention is defined with; the project's hashing
# package provides SHA-256/SM3 only, and this digest is a naming convention, not a
# commitment, so the standard library is the right tool here.
import hashlib
import re
import string

from trusted_ledger.errors import InvalidAddress

ADDRESS_BYTES = 35
ADDRESS_HEX_CHARS = 2 * ADDRESS_BYTES
NAMESPACE_HEX_CHARS = 6
family_name_chars_max = 128

_HEX_DIGITS = frozenset(string.hexdigits.lower()) - frozenset("ABCDEF")
_ADDRESS_PATTERN = re.compile(f"[0-9a-f]{{{ADDRESS_HEX_CHARS}}}")
_PREFIX_PATTERN = re.compile(f"[0-9a-f]{{0,{ADDRESS_HEX_CHARS}}}")


def _check_hex(text: object, what: str, max_chars: int) -> str:
    if not isinstance(text, str):
        raise InvalidAddress(f"{what} must be a hex string, not {type(text).__name__}")
    if len(text) > max_chars:
        raise InvalidAddress(f"{what} has {len(text)} hex characters, at most {max_chars} allowed")
    for position, char in enumerate(text):
        if char not in _HEX_DIGITS:
            hint = "write hex in lowercase" if char in "ABCDEF" else "use only 0-9 and a-f"
            raise InvalidAddress(
                f"{what} {text!r} has {char!r} at position {position}, not a lowercase hex digit",
                hint=hint,
            )
    return text


def validate_address(address: object) -> str:
    """Return ``address`` if it is 70 lowercase hex characters, else raise ``InvalidAddress``."""
    if isinstance(address, str) and _ADDRESS_PATTERN.fullmatch(address):
        return address  # the common case, in one regex call; the slow path explains failures
    _check_hex(address, "state address", ADDRESS_HEX_CHARS)
    assert isinstance(address, str)
    if len(address) != ADDRESS_HEX_CHARS:
        raise InvalidAddress(
            f"state address {address!r} has {len(address)} hex characters, "
            f"needs exactly {ADDRESS_HEX_CHARS} ({ADDRESS_BYTES} bytes)",
            hint="a namespace prefix (6 characters) followed by 64 characters chosen by the family",
        )
    return address


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is 0..70 lowercase hex characters (a full address included)."""
    if isinstance(prefix, str) and _PREFIX_PATTERN.fullmatch(prefix):
        return prefix  # the common case, in one regex call; the slow path explains failures
    _check_hex(prefix, "address prefix", ADDRESS_HEX_CHARS)
    assert isinstance(prefix, str)
    return prefix


def address_to_bytes(address: str) -> bytes:
    return bytes.fromhex(validate_address(address))


def address_from_bytes(raw: bytes) -> str:
    if len(raw) != ADDRESS_BYTES:
        raise InvalidAddress(f"a state address is {ADDRESS_BYTES} bytes, got {len(raw)}")
    return raw.hex()


def _sha512_hex(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def namespace_prefix(family_name: str) -> str:
    """The family's 6-hex-character namespace, as Sawtooth computes it."""
    if not isinstance(family_name, str) or not 1 <= len(family_name) <= family_name_chars_max:
        raise InvalidAddress(
            f"a family name is 1..{family_name_chars_max} characters, got {family_name!r}"
        )
    return _sha512_hex(family_name.encode("utf-8"))[:NAMESPACE_HEX_CHARS]


def make_address(namespace: str, suffix: str) -> str:
    """Join a 6-character namespace and a 64-character suffix into an address."""
    _check_hex(namespace, "namespace prefix", NAMESPACE_HEX_CHARS)
    if len(namespace) != NAMESPACE_HEX_CHARS:
        raise InvalidAddress(
            f"a namespace prefix is {NAMESPACE_HEX_CHARS} hex characters, got {namespace!r}",
            hint="compute it with namespace_prefix(family_name)",
        )
    return validate_address(namespace + suffix)


def hashed_address(family_name: str, key: bytes) -> str:
    """The family namespace followed by the last 64 hex characters of SHA-512(key).

    Sawtooth intkey's convention, so intkey addresses match: spreads keys evenly over the tree.
    """
    if not isinstance(key, bytes):
        raise InvalidAddress(f"an address key is bytes, not {type(key).__name__}")
    suffix_chars = ADDRESS_HEX_CHARS - NAMESPACE_HEX_CHARS
    return namespace_prefix(family_name) + _sha512_hex(key)[-suffix_chars:]
