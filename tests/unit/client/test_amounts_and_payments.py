"""Display amounts to smallest units and back, exactly; payment files checked in full."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trusted_ledger.client.asset import format_amount, parse_amount, parse_payments
from trusted_ledger.errors import InvalidInput
from trusted_ledger.processing.families.asset import decimals_max, units_max

ALICE = "02" + "a1" * 32
BOB = "03" + "b2" * 32
CAROL = "02" + "c3" * 32


@given(st.integers(1, units_max), st.integers(0, decimals_max))
def test_format_then_parse_round_trips(units: int, decimals: int) -> None:
    assert parse_amount(format_amount(units, decimals), decimals) == units


@given(st.integers(1, 10**12), st.integers(1, decimals_max))
def test_fewer_written_places_scale_up(whole: int, decimals: int) -> None:
    if whole * 10**decimals > units_max:
        return
    assert parse_amount(str(whole), decimals) == whole * 10**decimals


@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("12.50", 2, 1250),
        ("12.5", 2, 1250),
        ("12", 2, 1200),
        ("0.01", 2, 1),
        ("7", 0, 7),
        (" 3.000 ", 3, 3000),
        ("007", 0, 7),
    ],
)
def test_examples(text: str, decimals: int, units: int) -> None:
    assert parse_amount(text, decimals) == units


def test_too_many_decimals_names_the_limit() -> None:
    with pytest.raises(InvalidInput, match=r"12\.505 has 3 decimal places but USD allows 2"):
        parse_amount("12.505", 2, code="USD")
    with pytest.raises(InvalidInput, match="allows 0 decimal places"):
        parse_amount("1.0", 0, code="PTS")


@pytest.mark.parametrize("text", ["", "-1", "1e3", "1,5", "0", "0.00", ".5", "5.", "+1", "NaN"])
def test_malformed_or_non_positive_amounts(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_amount(text, 2)


def test_amount_above_the_family_bound_is_refused() -> None:
    parse_amount(str(units_max), 0)
    with pytest.raises(InvalidInput, match="out of range"):
        parse_amount(str(units_max + 1), 0)


def test_format_pads_small_amounts() -> None:
    assert format_amount(5, 3) == "0.005"
    assert format_amount(0, 2) == "0.00"
    assert format_amount(1250, 0) == "1250"


def _resolve(spec: str) -> str:
    names = {"bob": BOB, "carol": CAROL}
    if spec in names:
        return names[spec]
    if len(spec) == 66:
        return spec
    raise InvalidInput(f"{spec!r} is neither an account nor a key name")


def test_payments_with_header_comments_and_names() -> None:
    text = f"to,amount\n# salaries\n{BOB},12.50\n\ncarol, 1\n"
    payments = parse_payments(text, 2, resolve_account=_resolve, sender=ALICE)
    assert [(p.line, p.to, p.units) for p in payments] == [(3, BOB, 1250), (5, CAROL, 100)]


def test_every_bad_line_is_named_and_nothing_is_returned() -> None:
    text = f"{BOB},1\nmallory,2\n{CAROL},1.234\n{ALICE},1\n{BOB}\n{BOB},3\n"
    with pytest.raises(InvalidInput) as caught:
        parse_payments(text, 2, resolve_account=_resolve, sender=ALICE, source="pay.csv")
    message = str(caught.value)
    assert "pay.csv line 2:" in message and "mallory" in message
    assert "pay.csv line 3:" in message and "decimal places" in message
    assert "pay.csv line 4:" in message and "own account" in message
    assert "pay.csv line 5:" in message and "2 fields" in message
    assert "line 1:" not in message and "line 6:" not in message
    assert "nothing was sent" in message


def test_empty_payment_file_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="no payments"):
        parse_payments("to,amount\n\n", 2, resolve_account=_resolve)


def test_quoted_csv_fields_are_read_as_csv() -> None:
    # "1,000" is one quoted field, not two: the grouping comma is refused, never guessed at.
    with pytest.raises(InvalidInput, match=r"line 1: amount '1,000'"):
        parse_payments(f'"{BOB}","1,000"\n', 0, resolve_account=_resolve)
    payments = parse_payments(f'"{BOB}","1000"\n', 0, resolve_account=_resolve)
    assert [(p.to, p.units) for p in payments] == [(BOB, 1000)]
