"""Addresses: Sawtooth's namespace convention, and clear errors for malformed ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trusted_ledger.errors import InvalidAddress, InvalidInput
from trusted_ledger.state import (
    address_from_bytes,
    address_to_bytes,
    addresses,
    hashed_address,
    make_address,
    namespace_prefix,
    validate_address,
    validate_prefix,
)


def test_namespaces_match_sawtooth() -> None:
    # Published in Sawtooth's docs: intkey's and xo's namespaces. (Sawtooth's settings
    # family is the one exception, with a fixed "000000"; that family's module sets it.)
    assert namespace_prefix("intkey") == "1cf126"
    assert namespace_prefix("xo") == "5b7349"


def test_hashed_address_follows_intkey() -> None:
    address = hashed_address("intkey", b"alice")
    assert address.startswith("1cf126")
    assert len(address) == 70
    # The suffix is the last 64 hex characters of SHA-512("alice").
    assert address == "1cf126" + "5272c90c8d3385d47ede5420a7a9623aad817d9f8a70bd100a0acea7400daa59"
    assert address_from_bytes(address_to_bytes(address)) == address
    assert hashed_address("intkey", b"alice") != hashed_address("intkey", b"bob")


def test_make_address_joins_namespace_and_suffix() -> None:
    assert make_address("1cf126", "0" * 64) == "1cf126" + "0" * 64
    with pytest.raises(InvalidAddress, match=r"namespace prefix is 6"):
        make_address("1cf1", "0" * 66)
    with pytest.raises(InvalidAddress, match=r"needs exactly 70"):
        make_address("1cf126", "0" * 63)


@pytest.mark.parametrize(
    ("address", "complaint"),
    [
        ("ab" * 34, "has 68 hex characters, needs exactly 70"),
        ("ab" * 36, "has 72 hex characters, at most 70"),
        ("AB" * 35, "'A' at position 0.*write hex in lowercase"),
        ("ab" * 34 + "ag", "'g' at position 69.*only 0-9 and a-f"),
        ("ab" * 34 + " a", "' ' at position 68"),
        (b"\xab" * 35, "must be a hex string, not bytes"),
        (None, "not NoneType"),
    ],
)
def test_bad_addresses_say_what_is_wrong(address: object, complaint: str) -> None:
    with pytest.raises(InvalidAddress, match=complaint):
        validate_address(address)
    assert issubclass(InvalidAddress, InvalidInput)


def test_prefixes() -> None:
    assert validate_prefix("") == ""
    assert validate_prefix("1cf12") == "1cf12"  # odd lengths are fine
    with pytest.raises(InvalidAddress, match=r"lowercase"):
        validate_prefix("1CF")
    with pytest.raises(InvalidAddress, match=r"at most 70"):
        validate_prefix("0" * 71)
    with pytest.raises(InvalidAddress, match=r"35 bytes, got 3"):
        address_from_bytes(b"abc")
    with pytest.raises(InvalidAddress, match=r"family name"):
        namespace_prefix("")


def test_valid_prefix_takes_the_regex_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_path(*args: object) -> str:
        raise AssertionError("the per-character check ran for a valid prefix")

    monkeypatch.setattr(addresses, "_check_hex", slow_path)
    for prefix in ("", "1cf12", "1cf126" + "0" * 64, "0123456789abcdef"):
        assert validate_prefix(prefix) == prefix


@given(
    st.one_of(
        st.text(alphabet="0123456789abcdefABCDEFg \n\u0660", max_size=75),
        st.binary(max_size=4),
        st.none(),
    )
)
def test_prefix_verdicts_and_messages_match_the_slow_path(prefix: object) -> None:
    # The slow path alone is the specification: same accepted set, same error text.
    try:
        expected: object = addresses._check_hex(prefix, "address prefix", 70)
    except InvalidAddress as exc:
        expected = (exc.message, exc.hint)
    try:
        actual: object = validate_prefix(prefix)
    except InvalidAddress as exc:
        actual = (exc.message, exc.hint)
    assert actual == expected
