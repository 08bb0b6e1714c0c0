"""Properties of the pure money arithmetic (no database)."""

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing.fees import CENT, buy_reservation, fee_for, is_cents, max_fee, to_cents, trade_value

# Prices on the 0.01 tick within the market's bounds (0.00-200.00 EUR/GPUh).
prices = st.integers(min_value=0, max_value=20_000).map(lambda cents: Decimal(cents) * CENT)
# Fee rates with sub-cent digits, like the rule book's 0.005 and 0.015.
rates = st.integers(min_value=0, max_value=50_000).map(lambda tenths_of_millicent: Decimal(tenths_of_millicent)
                                                       / Decimal(1_000_000))
quantities = st.integers(min_value=1, max_value=10_000)
# 1 (spot hour) up to a year of hours (futures).
hours = st.integers(min_value=1, max_value=8_784)


def whole_cents(amount: Decimal) -> bool:
    return amount == amount.quantize(CENT) and amount.as_tuple().exponent == -2


@given(price=prices, quantity=quantities, n_hours=hours)
def test_trade_value_is_exact_whole_cents(price: Decimal, quantity: int, n_hours: int) -> None:
    value = trade_value(price, quantity, n_hours)
    assert whole_cents(value)
    assert value == price * quantity * n_hours


@given(rate=rates, quantity=quantities, n_hours=hours)
def test_fees_are_always_whole_cents_and_the_maximum_covers_the_fee(rate: Decimal, quantity: int,
                                                                      n_hours: int) -> None:
    fee = fee_for(rate, quantity, n_hours)
    ceiling = max_fee(rate, quantity, n_hours)
    assert whole_cents(fee)
    assert whole_cents(ceiling)
    assert abs(fee - rate * quantity * n_hours) <= Decimal("0.005")
    assert ceiling >= fee


@st.composite
def orders_and_fills(draw: st.DrawFn) -> tuple[Decimal, int, int, Decimal, list[tuple[int, Decimal, Decimal]]]:
    """A buy order (limit, quantity, hours, taker rate) and fills it can get:
    each fill of some GPUs at a price at or below the limit, paying a rate at
    or below the taker rate (maker or taker), all fills together at most the
    order's quantity."""
    limit = draw(prices)
    quantity = draw(st.integers(min_value=1, max_value=200))
    n_hours = draw(hours)
    taker = draw(rates)
    fills: list[tuple[int, Decimal, Decimal]] = []
    left = quantity
    while left and draw(st.booleans()):
        size = draw(st.integers(min_value=1, max_value=left))
        price = draw(st.integers(min_value=0, max_value=int(limit / CENT)).map(lambda c: Decimal(c) * CENT))
        rate = draw(st.sampled_from([taker, Decimal(0), taker / 3])).quantize(Decimal("0.000001"))
        rate = min(rate, taker)
        fills.append((size, price, rate))
        left -= size
    if not fills:
        # Always at least the worst case: one-GPU fills at the limit and the taker rate.
        fills = [(1, limit, taker)] * quantity
    return limit, quantity, n_hours, taker, fills


@given(orders_and_fills())
def test_the_reservation_covers_value_and_fees_of_any_fills(
    case: tuple[Decimal, int, int, Decimal, list[tuple[int, Decimal, Decimal]]],
) -> None:
    limit, quantity, n_hours, taker, fills = case
    reserved = buy_reservation(limit, quantity, n_hours, taker)
    cost = sum((trade_value(price, size, n_hours) + fee_for(rate, size, n_hours) for size, price, rate in fills),
               Decimal("0.00"))
    assert whole_cents(reserved)
    assert reserved >= cost
    assert reserved >= trade_value(limit, quantity, n_hours) + fee_for(taker, quantity, n_hours)


@given(price=prices, quantity=quantities, n_hours=hours, taker=rates)
def test_the_reservation_is_monotone_in_quantity(price: Decimal, quantity: int, n_hours: int,
                                                 taker: Decimal) -> None:
    smaller = buy_reservation(price, quantity, n_hours, taker)
    larger = buy_reservation(price, quantity + 1, n_hours, taker)
    assert larger >= smaller
    assert larger - smaller >= trade_value(price, 1, n_hours)


def test_rounding_the_total_up_would_not_cover_partial_fills() -> None:
    # Why max_fee rounds up per GPU: two 1-GPU fills at the maker rate pay
    # 0.01 each, while the total fee rounded up is only 0.01.
    rate = Decimal("0.005")
    assert fee_for(rate, 1, 1) + fee_for(rate, 1, 1) == Decimal("0.02")
    assert (rate * 2).quantize(CENT, rounding="ROUND_UP") == Decimal("0.01")
    assert max_fee(rate, 2, 1) == Decimal("0.02")


def test_rule_book_rates_give_the_expected_fees() -> None:
    # Intraday taker 0.015 EUR/GPUh: 7 GPUs for one hour = 0.105 -> 0.11 (HALF_UP).
    assert fee_for(Decimal("0.015"), 7, 1) == Decimal("0.11")
    # Maker 0.005: 1 GPU, 1 hour = 0.005 -> 0.01 (HALF_UP, not banker's rounding to 0.00).
    assert fee_for(Decimal("0.005"), 1, 1) == Decimal("0.01")
    # Futures 0.002 for a 31-day month (744 h) and 10 GPUs = 14.88.
    assert fee_for(Decimal("0.002"), 10, 744) == Decimal("14.88")
    # Buy 10 H100 for an hour at 2.50 with taker 0.015: 25.00 + 10 x 0.02.
    assert buy_reservation(Decimal("2.50"), 10, 1, Decimal("0.015")) == Decimal("25.20")


def test_to_cents_rounds_half_up() -> None:
    assert to_cents(Decimal("0.005")) == Decimal("0.01")
    assert to_cents(Decimal("0.0049")) == Decimal("0.00")
    assert to_cents(Decimal("-0.005")) == Decimal("-0.01")
    assert to_cents(Decimal("2.345")) == Decimal("2.35")


def test_is_cents_accepts_only_finite_decimals_without_sub_cent_digits() -> None:
    assert is_cents(Decimal("5"))
    assert is_cents(Decimal("5.10"))
    assert is_cents(Decimal("5.100"))
    assert not is_cents(Decimal("5.001"))
    assert not is_cents(Decimal("NaN"))
    assert not is_cents(Decimal("Infinity"))
    assert not is_cents(5.1)
    assert not is_cents("5.10")


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (trade_value, (Decimal("2.505"), 1, 1)),  # off the tick
        (trade_value, (Decimal("-1.00"), 1, 1)),
        (trade_value, (2.5, 1, 1)),  # float
        (fee_for, (Decimal("0.01"), 0, 1)),
        (fee_for, (Decimal("0.01"), 1, True)),
        (fee_for, (Decimal("-0.01"), 1, 1)),
        (max_fee, (Decimal("0.01"), 1.5, 1)),
        (buy_reservation, (Decimal("1.00"), 1, 1, Decimal("NaN"))),
    ],
)
def test_bad_inputs_are_refused_not_rounded(call: Callable[..., Decimal], args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        call(*args)
