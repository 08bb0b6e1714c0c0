"""Properties of the pure money arithmetic (no database)."""

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing.fees import (
    CENT,
    VAT,
    buy_reservation,
    exact_fee,
    fee_held,
    fee_step,
    fee_step_cap,
    is_cents,
    max_fee,
    min_sell_price,
    split_rounded,
    to_cents,
    trade_value,
)

# Prices on the 0.01 tick within the market's bounds (0.00-200.00 EUR/GPUh).
prices = st.integers(min_value=0, max_value=20_000).map(lambda cents: Decimal(cents) * CENT)
# Fee rates with sub-cent digits, like the rule book's 0.005 and 0.015.
rates = st.integers(min_value=0, max_value=50_000).map(lambda tenths_of_millicent: Decimal(tenths_of_millicent)
                                                       / Decimal(1_000_000))
quantities = st.integers(min_value=1, max_value=10_000)
# 1 (spot hour) up to a year of hours (futures).
hours = st.integers(min_value=1, max_value=8_784)


def fee_for(rate: Decimal, quantity: int, n_hours: int) -> Decimal:
    """What one fill alone in a fresh month costs in cents (its step from 0)."""
    return fee_step(Decimal("0"), exact_fee(rate, quantity, n_hours))


def whole_cents(amount: Decimal) -> bool:
    return amount == amount.quantize(CENT) and amount.as_tuple().exponent == -2


@given(price=prices, quantity=quantities, n_hours=hours)
def test_trade_value_is_exact_whole_cents(price: Decimal, quantity: int, n_hours: int) -> None:
    value = trade_value(price, quantity, n_hours)
    assert whole_cents(value)
    assert value == price * quantity * n_hours


# What a member has accrued in the month before a fill: any exact amount.
accrued_states = st.integers(min_value=0, max_value=10**10).map(lambda micro: Decimal(micro) / Decimal(1_000_000))


@given(rate=rates, quantity=quantities, n_hours=hours, accrued=accrued_states)
def test_a_fee_step_is_whole_cents_and_at_most_the_cap(rate: Decimal, quantity: int, n_hours: int,
                                                        accrued: Decimal) -> None:
    fee = exact_fee(rate, quantity, n_hours)
    step = fee_step(accrued, fee)
    assert fee == rate * quantity * n_hours  # exact, nothing rounded
    assert whole_cents(max_fee(rate, quantity, n_hours))
    assert is_cents(step) and step >= 0
    assert step <= fee_step_cap(fee) <= max_fee(rate, quantity, n_hours)


@given(steps=st.lists(st.tuples(rates, st.integers(1, 50)), max_size=30))
def test_the_steps_of_a_month_add_up_to_its_charge_rounded_once(steps: list[tuple[Decimal, int]]) -> None:
    accrued = held = Decimal("0")
    for rate, quantity in steps:
        fee = exact_fee(rate, quantity, 1)
        held += fee_step(accrued, fee)
        accrued += fee
    net = to_cents(accrued)
    assert held == fee_held(accrued) == net + to_cents(net * Decimal("0.19"))


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
    assert reserved >= trade_value(limit, quantity, n_hours) + fee_held(exact_fee(taker, quantity, n_hours))


@given(orders_and_fills(), accrued_states, st.lists(accrued_states, max_size=5))
def test_the_reservation_covers_the_fee_steps_of_any_fills_from_any_month_state(
    case: tuple[Decimal, int, int, Decimal, list[tuple[int, Decimal, Decimal]]], accrued: Decimal,
    between: list[Decimal],
) -> None:
    """The guarantee: whatever the member has accrued this month, and
    whatever other trades accrue between the order's fills, the fee steps
    of its fills never exceed the fee part of its reservation."""
    limit, quantity, n_hours, taker, fills = case
    fee_part = buy_reservation(limit, quantity, n_hours, taker) - trade_value(limit, quantity, n_hours)
    assert fee_part == max_fee(taker, quantity, n_hours)
    steps = Decimal("0.00")
    for index, (size, _price, rate) in enumerate(fills):
        fee = exact_fee(rate, size, n_hours)
        steps += fee_step(accrued, fee)
        accrued += fee + (between[index] if index < len(between) else 0)
    assert steps <= fee_part


@given(taker=rates, maker_share=st.sampled_from([Decimal(0), Decimal("0.3333"), Decimal(1)]),
       quantity=quantities, accrued=accrued_states, extra_ticks=st.integers(0, 3))
def test_at_or_above_the_sell_floor_the_fee_step_never_exceeds_the_value(
    taker: Decimal, maker_share: Decimal, quantity: int, accrued: Decimal, extra_ticks: int,
) -> None:
    price = min_sell_price(taker) + extra_ticks * CENT
    for rate in (taker, (taker * maker_share).quantize(Decimal("0.000001"))):
        assert fee_step(accrued, exact_fee(rate, quantity, 1)) <= trade_value(price, quantity, 1)


@given(price=prices, quantity=quantities, n_hours=hours, taker=rates)
def test_the_reservation_is_monotone_in_quantity(price: Decimal, quantity: int, n_hours: int,
                                                 taker: Decimal) -> None:
    smaller = buy_reservation(price, quantity, n_hours, taker)
    larger = buy_reservation(price, quantity + 1, n_hours, taker)
    assert larger >= smaller
    assert larger - smaller >= trade_value(price, 1, n_hours)


def test_rounding_the_total_up_would_not_cover_partial_fills() -> None:
    # Why max_fee rounds up per GPU: two 1-GPU fills at the maker rate with
    # another trade of the member in between (0.004 -> 0.009 -> 0.010 ->
    # 0.015) move the net up a cent each, 0.02 in all, while the order's total
    # fee 0.01 rounded up is only 0.01.
    rate, no_vat = Decimal("0.005"), Decimal("0")
    one = exact_fee(rate, 1, 1)
    assert fee_step(Decimal("0.004"), one, no_vat) + fee_step(Decimal("0.010"), one, no_vat) == Decimal("0.02")
    assert (rate * 2).quantize(CENT, rounding="ROUND_UP") == Decimal("0.01")
    assert max_fee(rate, 2, 1, no_vat) == Decimal("0.02")
    # With VAT: per GPU 0.01 + ROUND_UP(0.0019) = 0.02.
    assert max_fee(rate, 2, 1) == Decimal("0.04")


def test_rule_book_rates_give_the_expected_fees() -> None:
    # Fees are exact: taker 0.015 x 7 GPUs = 0.105, maker 0.005 x 1 = 0.005.
    assert exact_fee(Decimal("0.015"), 7, 1) == Decimal("0.105")
    assert exact_fee(Decimal("0.005"), 1, 1) == Decimal("0.005")
    # Futures 0.002 for a 31-day month (744 h) and 10 GPUs = 14.88.
    assert exact_fee(Decimal("0.002"), 10, 744) == Decimal("14.88")
    # A month of 0.035: net 0.04 (HALF_UP), VAT 0.19 x 0.04 = 0.0076 -> 0.01.
    assert fee_held(Decimal("0.035")) == Decimal("0.05")
    # m(0.015) = 0.02 + ROUND_UP(0.0038) = 0.03 per GPU-hour: the reservation's
    # fee part and the sell floor. Buy 10 H100 for an hour at 2.50: 25.00 + 10 x 0.03.
    assert buy_reservation(Decimal("2.50"), 10, 1, Decimal("0.015")) == Decimal("25.30")
    assert min_sell_price(Decimal("0.015")) == Decimal("0.03")
    assert VAT == Decimal("0.19")


def test_split_rounded_gives_the_rounded_total_by_largest_remainder() -> None:
    assert split_rounded(Decimal("0.04"), [Decimal("0.015"), Decimal("0.02")]) == [Decimal("0.02"), Decimal("0.02")]
    assert split_rounded(Decimal("0.03"), [Decimal("0.005"), Decimal("0.025")]) == [Decimal("0.01"), Decimal("0.02")]
    assert split_rounded(Decimal("0.00"), [Decimal("0.004")]) == [Decimal("0.00")]
    with pytest.raises(ValueError):
        split_rounded(Decimal("0.10"), [Decimal("0.01")])


@given(st.lists(accrued_states, min_size=1, max_size=8))
def test_split_rounded_parts_sum_to_the_rounded_total_and_stay_within_a_cent(parts: list[Decimal]) -> None:
    total = to_cents(sum(parts, Decimal("0")))
    split = split_rounded(total, parts)
    assert sum(split, Decimal("0.00")) == total
    assert all(abs(share - part) < CENT for share, part in zip(split, parts, strict=True))


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
        (exact_fee, (Decimal("0.01"), 0, 1)),
        (exact_fee, (Decimal("0.01"), 1, True)),
        (exact_fee, (Decimal("-0.01"), 1, 1)),
        (exact_fee, (Decimal("0.0000001"), 1, 1)),  # beyond the six places a fee is stored with
        (fee_held, (Decimal("-0.01"),)),
        (max_fee, (Decimal("0.01"), 1.5, 1)),
        (buy_reservation, (Decimal("1.00"), 1, 1, Decimal("NaN"))),
    ],
)
def test_bad_inputs_are_refused_not_rounded(call: Callable[..., Decimal], args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        call(*args)
