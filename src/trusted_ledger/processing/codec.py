"""Canonical CBOR for payloads and state values of the built-in families.

State values are always written in canonical CBOR (RFC 8949 section 4.2.3 "length-first" map
key order, shortest integer forms): every node must produce byte-identical state, or the
state roots would differ. Payloads are read leniently (any well-formed CBOR of the allowed
types), because Sawtooth's intkey clients encode maps in insertion order.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from trusted_ledger.errors import InvalidTransaction

cbor_nesting_depth_max = 8
"""Deepest nesting a payload or state value may use; the families need 3 at most."""

CborValue = Any  # int | str | bytes | bool | None | list[CborValue] | dict[str, CborValue]

_SCALARS = (int, str, bytes, bool, type(None))


def encode_canonical(value: CborValue) -> bytes:
    """Canonical CBOR bytes of ``value``; the same value always gives the same bytes."""
    return cbor2.dumps(value, canonical=True)


def _check_plain(value: object, depth: int) -> None:
    """Reject tagged values (dates, bignums...) that the decoder turns into other types."""
    if depth > cbor_nesting_depth_max:
        raise InvalidTransaction(f"CBOR nesting deeper than {cbor_nesting_depth_max}")
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, list):
        for item in value:
            _check_plain(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, depth + 1)
            _check_plain(item, depth + 1)
        return
    raise InvalidTransaction(f"CBOR value of type {type(value).__name__} is not allowed")


def decode(data: bytes, what: str) -> CborValue:
    """Decode exactly one CBOR item filling ``data``; raise ``InvalidTransaction`` otherwise."""
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream, allow_duplicate_keys=False, max_depth=cbor_nesting_depth_max
        )
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, RecursionError) as exc:
        # The decoder's wording goes in the hint: verdict reasons must not depend on the
        # version of the CBOR library a node runs.
        raise InvalidTransaction(f"{what} is not valid CBOR", hint=str(exc)) from exc
    if stream.tell() != len(data):
        raise InvalidTransaction(f"{what} has {len(data) - stream.tell()} bytes after its CBOR")
    _check_plain(value, 0)
    return value


def decode_map(data: bytes, what: str) -> dict[str, CborValue]:
    """Decode a CBOR map with text keys."""
    value = decode(data, what)
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise InvalidTransaction(f"{what} must be a CBOR map with text keys")
    return value
