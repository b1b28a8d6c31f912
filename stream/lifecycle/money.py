"""Money as the engine holds it: integer minor units of an ISO 4217 currency.

Amounts arrive in major units in files (`12.50` EUR) and leave in major units in reports and
exports; everything between is an integer of the currency's minor unit, so sums are exact.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .events import MAX_AMOUNT_MINOR

# ISO 4217 currencies whose minor unit is not a hundredth.
MINOR_DIGITS: dict[str, int] = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "HUF": 2,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


def to_minor_units(amount: str, currency: str) -> int:
    """`12.50` EUR is 1250; a ValueError says why a text is not an amount of `currency`."""
    digits = MINOR_DIGITS.get(currency.upper(), 2)
    try:
        major = Decimal(amount.strip())
    except InvalidOperation:
        raise ValueError(f"amount `{_shown(amount)}` is not a decimal number") from None
    # checked before scaling: `1e999999999` is a Decimal, and as an int a billion digits
    if not major.is_finite() or major.adjusted() > 18:
        raise ValueError(f"amount `{_shown(amount)}` is over the limit of {MAX_AMOUNT_MINOR} minor units")
    value = major.scaleb(digits)
    if value != value.to_integral_value():
        raise ValueError(f"amount `{_shown(amount)}` has more decimals than {currency} allows")
    if abs(value) > MAX_AMOUNT_MINOR:
        raise ValueError(f"amount `{_shown(amount)}` is over the limit of {MAX_AMOUNT_MINOR} minor units")
    return int(value)


def _shown(text: str, limit: int = 40) -> str:
    """A value quoted in a reason, cut short: a reason names the value, it does not carry it."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def to_major_units(minor: int, currency: str) -> str:
    """`1250` EUR is `12.50`; `1000` JPY is `1000`."""
    digits = MINOR_DIGITS.get(currency.upper(), 2)
    return str(Decimal(minor).scaleb(-digits))
