"""BIL-04's one rounding function, exact decimals, integer cents."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora import money


@pytest.mark.rule("BIL-04")
def test_rounding_is_half_up_to_the_cent_once() -> None:
    """BIL-04: 0.125 → 0.13, 0.124999 → 0.12, −0.125 → −0.13 (half away from zero)."""
    assert money.round_cents(Decimal("0.125")) == Decimal("0.13")
    assert money.round_cents(Decimal("0.124999")) == Decimal("0.12")
    assert money.round_cents(Decimal("2.675")) == Decimal("2.68")
    assert money.round_cents(Decimal("-0.125")) == Decimal("-0.13")
    assert money.to_cents(Decimal("12.345")) == 1235


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_cents_round_trip(cents: int) -> None:
    assert money.to_cents(money.from_cents(cents)) == cents
    assert money.format_amount(cents) == str(money.from_cents(cents))


@given(st.decimals(min_value=Decimal(-(10**9)), max_value=Decimal(10**9), allow_nan=False, places=6))
def test_rounding_moves_at_most_half_a_cent(amount: Decimal) -> None:
    assert abs(money.round_cents(amount) - amount) <= Decimal("0.005")


@pytest.mark.rule("PRC-01")
def test_prices_parse_exactly_and_floats_are_refused() -> None:
    """PRC-01: exact decimals, never floats."""
    assert money.parse_decimal("0.10") == Decimal("0.10")
    assert money.parse_decimal(3) == Decimal(3)
    with pytest.raises(money.MoneyFormatError, match="float"):
        money.parse_decimal(0.1)
    for bad in ("1.2.3", "abc", "NaN", "Infinity", None, True):
        with pytest.raises(money.MoneyFormatError):
            money.parse_decimal(bad)
    assert money.decimal_places(Decimal("0.125")) == 3
    assert money.decimal_places(Decimal("1.50")) == 1
    assert money.format_amount(5) == "0.05"
