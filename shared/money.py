"""Exact money: amounts, prices and the one rounding rule.

Amounts are integers in **nano-dollars** (10⁻⁹ USD), stored as ``BIGINT``. Prices are
``NUMERIC`` USD per million tokens, read as :class:`decimal.Decimal`. A charge is computed
exactly in decimal arithmetic and rounded **once**, at the end, to a whole nano-dollar with
ROUND_HALF_UP. Nothing in this module touches a float.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

import msgspec

NANOS_PER_USD: Final = 1_000_000_000
"""Nano-dollars in one US dollar."""

TOKENS_PER_PRICE_UNIT: Final = 1_000_000
"""Prices are quoted per this many tokens."""

_NANO: Final = Decimal(1)
_MAX_USD: Final = Decimal(9_000_000_000)


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """A model's price in USD per million tokens."""

    input: Decimal
    """USD per million uncached input tokens."""
    output: Decimal
    """USD per million output tokens (reasoning included)."""
    cached_input: Decimal | None = None
    """USD per million cached input tokens; the input price when unset."""


class Usage(msgspec.Struct, kw_only=True):
    """Token counts of one request, in the billing layer's terms."""

    input_tokens: int = 0
    """All input tokens, cached ones included."""
    cached_input_tokens: int = 0
    """The part of ``input_tokens`` read from a provider cache."""
    cache_write_tokens: int = 0
    """The part of ``input_tokens`` written to a provider cache."""
    output_tokens: int = 0
    """All output tokens, reasoning included."""
    reasoning_tokens: int = 0
    """The part of ``output_tokens`` spent on reasoning."""
    estimated: bool = False
    """True when counted locally instead of reported by the upstream."""


def parse_usd(text: str | int | Decimal) -> Decimal:
    """Return a non-negative USD amount parsed exactly from a decimal string.

    Raises:
        ValueError: when the text is not a decimal number, is negative, or is absurdly large.
    """
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        msg = f"`{text}` is not a decimal amount of US dollars (for example `12.50`)"
        raise ValueError(msg) from None
    if not value.is_finite() or value < 0 or value > _MAX_USD:
        msg = f"`{text}` is out of range: expected a finite amount between 0 and {_MAX_USD}"
        raise ValueError(msg)
    return value


def usd_to_nanos(amount: Decimal) -> int:
    """Convert USD to nano-dollars, refusing amounts finer than a nano-dollar.

    Raises:
        ValueError: when the amount has more than nine decimal places.
    """
    nanos = amount * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        msg = f"`{amount}` has more than nine decimal places; the smallest unit is 0.000000001"
        raise ValueError(msg)
    return int(nanos)


def format_usd(nanos: int) -> str:
    """Render nano-dollars as a plain decimal string of USD, with no exponent."""
    text = format(Decimal(nanos).scaleb(-9), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def compute_cost(usage: Usage, price: Price, ratio: Decimal) -> int:
    """Return the exact charge in nano-dollars for ``usage`` at ``price`` times ``ratio``.

    cost = ((input - cached) * input price + cached * cached price + output * output price)
    * ratio / 10^6, rounded once, half up, to a whole nano-dollar.
    """
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cached_price = price.input if price.cached_input is None else price.cached_input
    usd = (
        (usage.input_tokens - cached) * price.input
        + cached * cached_price
        + usage.output_tokens * price.output
    ) * ratio
    nanos = usd * NANOS_PER_USD / TOKENS_PER_PRICE_UNIT
    return int(nanos.quantize(_NANO, rounding=ROUND_HALF_UP))


def compute_hold(input_tokens: int, output_tokens: int, price: Price, ratio: Decimal) -> int:
    """Return the worst-case charge, rounded up, for a request not yet served.

    Cached input is assumed uncached and billed at the higher of the two input prices.
    """
    cached_price = price.input if price.cached_input is None else price.cached_input
    usd = (input_tokens * max(price.input, cached_price) + output_tokens * price.output) * ratio
    nanos = usd * NANOS_PER_USD / TOKENS_PER_PRICE_UNIT
    return int(nanos.to_integral_value(rounding=ROUND_CEILING))
