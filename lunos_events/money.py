"""Money is an integer number of cents everywhere; strings like "3.20" only at the edges."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CURRENCY = "USD"


def parse_amount(text: str) -> int:
    """Parse a decimal amount such as "25" or "3.20" into cents; rejects fractions of a cent."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"amount has fractions of a cent: {text!r}")
    return int(cents)


def format_amount(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def charged(cents: int) -> dict[str, str]:
    """What a submit charged, as its response shows it."""
    return {"cost": format_amount(cents), "currency": CURRENCY}
