from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from shared.money import (
    Price,
    Usage,
    compute_cost,
    compute_hold,
    format_usd,
    parse_usd,
    usd_to_nanos,
)


def test_compute_cost_prices_each_bucket() -> None:
    price = Price(input=Decimal("3"), cached_input=Decimal("0.3"), output=Decimal("15"))
    usage = Usage(input_tokens=21503, cached_input_tokens=20000, output_tokens=50)

    # (1503 x 3 + 20000 x 0.3 + 50 x 15) / 1e6 USD = 0.011259 USD
    assert compute_cost(usage, price, Decimal(1)) == 11_259_000


def test_compute_cost_bills_cached_tokens_at_input_price_without_a_cache_price() -> None:
    price = Price(input=Decimal("2"), output=Decimal("8"))
    usage = Usage(input_tokens=10000, cached_input_tokens=8000, output_tokens=100)

    assert compute_cost(usage, price, Decimal(1)) == (10000 * 2 + 100 * 8) * 1000


def test_compute_cost_applies_group_ratio() -> None:
    price = Price(input=Decimal("2"), output=Decimal("8"))
    usage = Usage(input_tokens=1000, output_tokens=1000)

    assert compute_cost(usage, price, Decimal("0.8")) == 8_000_000


def test_compute_cost_rounds_half_up_once() -> None:
    price = Price(input=Decimal("0.0005"), output=Decimal("0"))

    assert compute_cost(Usage(input_tokens=1), price, Decimal(1)) == 1  # 0.5 nano -> 1
    assert compute_cost(Usage(input_tokens=3), price, Decimal("0.1")) == 0  # 0.15 nano -> 0


def test_compute_hold_rounds_up_and_assumes_the_dearer_input() -> None:
    price = Price(input=Decimal("1"), cached_input=Decimal("3"), output=Decimal("0.0001"))

    assert compute_hold(0, 1, price, Decimal(1)) == 1  # 0.1 nano -> 1
    assert compute_hold(1000, 0, price, Decimal(1)) == 3_000_000


@given(
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.integers(0, 10**6),
    st.decimals(0, 100, places=6),
    st.decimals(0, 100, places=6),
)
def test_compute_hold_bounds_compute_cost(
    input_tokens: int, cached: int, output: int, input_price: Decimal, output_price: Decimal
) -> None:
    price = Price(input=input_price, output=output_price, cached_input=input_price / 10)
    usage = Usage(
        input_tokens=input_tokens,
        cached_input_tokens=min(cached, input_tokens),
        output_tokens=output,
    )

    assert compute_hold(input_tokens, output, price, Decimal(1)) >= compute_cost(
        usage, price, Decimal(1)
    )


@pytest.mark.parametrize(
    ("text", "nanos"),
    [("0", 0), ("12.5", 12_500_000_000), ("0.000000001", 1), (" 3 ", 3_000_000_000)],
)
def test_usd_round_trip(text: str, nanos: int) -> None:
    assert usd_to_nanos(parse_usd(text)) == nanos
    assert usd_to_nanos(parse_usd(format_usd(nanos))) == nanos


@pytest.mark.parametrize("text", ["abc", "-1", "NaN", "Infinity", "1e400"])
def test_parse_usd_refuses_bad_amounts(text: str) -> None:
    with pytest.raises(ValueError, match=r"`.*`"):
        parse_usd(text)


def test_usd_to_nanos_refuses_sub_nano_amounts() -> None:
    with pytest.raises(ValueError, match="more than nine decimal places"):
        usd_to_nanos(Decimal("0.0000000001"))


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0"),
        (1, "0.000000001"),
        (1_500_000_000, "1.5"),
        (10_000_000_000, "10"),
        (-25, "-0.000000025"),
    ],
)
def test_format_usd_is_plain_decimal(nanos: int, text: str) -> None:
    assert format_usd(nanos) == text
