"""Money: prices are exact `Decimal`s, stored amounts are integer cents, and there is one rounding function.

BIL-04: a line amount is computed exactly and rounded once, half-up to the cent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
CURRENCY = "USD"


class MoneyFormatError(ValueError):
    pass


def parse_decimal(value: object) -> Decimal:
    """Read a price exactly. Strings, ints and Decimals are accepted; floats never are."""
    if isinstance(value, bool | float):
        raise MoneyFormatError("must be a decimal string, not a binary float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise MoneyFormatError(f"{value!r} is not a decimal number") from None
    else:
        raise MoneyFormatError(f"must be a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise MoneyFormatError(f"{value!r} is not a finite decimal number")
    return result


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def round_cents(amount: Decimal) -> Decimal:
    """The one rounding function: half-up to the cent."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(amount: Decimal) -> int:
    """Round an exact amount once and express it as integer cents."""
    return int(round_cents(amount) * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def format_amount(cents: int) -> str:
    """Two-place decimal string, as in every JSON output."""
    return str(from_cents(cents))


def format_price(value: Decimal) -> str:
    """A rate as the seller wrote it, without exponent notation or trailing noise."""
    text = format(value, "f")
    return text
