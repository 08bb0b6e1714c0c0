"""The pure futures arithmetic (market/futures.py): hand-computed cases and properties."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.futures import (
    Layer,
    Leg,
    Period,
    Source,
    cascade,
    children,
    default_fund,
    final_settlement,
    maintenance,
    margin_requirement,
    settlement_price,
    split_pro_rata,
    stress_loss,
    variation_margin,
    waterfall,
)

D = Decimal
cents = st.integers(min_value=1, max_value=20_000).map(lambda c: D(c).scaleb(-2))


# --- the daily settlement price ------------------------------------------------------------


def test_the_dsp_is_the_vwap_of_the_window_half_up():
    # (2.41 x 10 + 2.44 x 5) / 15 = 36.30 / 15 = 2.42
    assert settlement_price(trades=[(D("2.41"), 10), (D("2.44"), 5)], best_bid=D("1"), best_ask=D("9"),
                            previous=D("2.00")) == (D("2.42"), Source.VWAP)
    # (2.41 + 2.44 x 2) / 3 = 2.43 exactly; (2.40 + 2.45) / 2 = 2.425 -> 2.43 half up
    assert settlement_price(trades=[(D("2.40"), 1), (D("2.45"), 1)], best_bid=None, best_ask=None,
                            previous=None) == (D("2.43"), Source.VWAP)


def test_without_trades_the_mid_then_the_previous_then_nothing():
    assert settlement_price(trades=[], best_bid=D("2.40"), best_ask=D("2.45"), previous=D("2.00")) == (
        D("2.43"), Source.MID)
    assert settlement_price(trades=[], best_bid=D("2.40"), best_ask=None, previous=D("2.00")) == (
        D("2.00"), Source.PREVIOUS)
    assert settlement_price(trades=[], best_bid=None, best_ask=None, previous=None) is None


@given(st.lists(st.tuples(cents, st.integers(1, 500)), min_size=1, max_size=30))
def test_the_vwap_lies_between_the_lowest_and_highest_trade(trades):
    price, source = settlement_price(trades=trades, best_bid=None, best_ask=None, previous=None)
    assert source == Source.VWAP
    assert min(p for p, _q in trades) <= price <= max(p for p, _q in trades)
    assert price == price.quantize(D("0.01"))


# --- margin --------------------------------------------------------------------------------


def test_initial_margin_of_a_quarter_hand_computed():
    # Q2027-2: 91 days x 24 h = 2,184 h; 10 GPUs long at DSP 2.40, rate 15 %:
    # 0.15 x 2.40 x 10 x 2184 = 7,862.40
    leg = Leg(position=10, open_buy=0, open_sell=0, price=D("2.40"), hours=2184)
    assert margin_requirement(legs=[leg], rate=D("0.15")) == D("7862.40")
    assert maintenance(D("7862.40")) == D("5896.80")


def test_open_orders_count_at_their_worst_case():
    # Long 10, resting buys of 5 and sells of 30: the worst is short 20.
    leg = Leg(position=10, open_buy=5, open_sell=30, price=D("2.00"), hours=744)
    assert leg.worst_quantity == 20
    assert margin_requirement(legs=[leg], rate=D("0.15")) == D("4464.00")  # 0.15 x 2 x 20 x 744


def test_requirements_round_up_to_the_cent():
    leg = Leg(position=1, open_buy=0, open_sell=0, price=D("0.01"), hours=1)
    assert margin_requirement(legs=[leg], rate=D("0.15")) == D("0.01")  # 0.0015 -> 0.01
    assert maintenance(D("0.01")) == D("0.01")


@given(st.lists(st.tuples(st.integers(-100, 100), st.integers(0, 50), st.integers(0, 50), cents,
                          st.sampled_from([672, 720, 744, 2160, 8760])), max_size=6),
       st.integers(0, 100).map(lambda r: D(r) / 100))
def test_the_requirement_covers_every_fill_of_the_open_orders(raw, rate):
    legs = [Leg(*row) for row in raw]
    required = margin_requirement(legs=legs, rate=rate)
    assert required >= 0
    # Whatever part of the open orders fills, the position's own requirement is not larger.
    for fill_share in (0, 1):
        filled = [Leg(leg.position + fill_share * leg.open_buy, 0, 0, leg.price, leg.hours) for leg in legs]
        assert margin_requirement(legs=filled, rate=rate) <= required
        filled = [Leg(leg.position - fill_share * leg.open_sell, 0, 0, leg.price, leg.hours) for leg in legs]
        assert margin_requirement(legs=filled, rate=rate) <= required


# --- variation and final settlement --------------------------------------------------------


def test_variation_margin_of_three_days_hand_computed():
    # Long 10 GPUs of a 744-hour month: 2.40 -> 2.46 -> 2.43 -> 2.50.
    hours, q = 744, 10
    flows = [variation_margin(quantity=q, hours=hours, price_then=a, price_now=b)
             for a, b in ((D("2.40"), D("2.46")), (D("2.46"), D("2.43")), (D("2.43"), D("2.50")))]
    assert flows == [D("446.40"), D("-223.20"), D("520.80")]
    # The short side mirrors it exactly.
    assert variation_margin(quantity=-q, hours=hours, price_then=D("2.40"), price_now=D("2.46")) == D("-446.40")
    assert final_settlement(quantity=q, hours=hours, last_dsp=D("2.50"), final_price=D("2.47")) == D("-223.20")


@given(st.lists(cents, min_size=2, max_size=10), st.integers(-50, 50), st.sampled_from([672, 744]))
def test_daily_flows_add_up_to_the_move_from_entry_to_final(prices, quantity, hours):
    flows = [variation_margin(quantity=quantity, hours=hours, price_then=a, price_now=b)
             for a, b in zip(prices, prices[1:], strict=False)]
    assert sum(flows, D("0")) == (prices[-1] - prices[0]) * quantity * hours


# --- cascading -----------------------------------------------------------------------------


def test_a_year_cascades_into_quarters_and_a_quarter_into_months():
    assert children(Period("Y", 2028, 1)) == [Period("Q", 2028, q) for q in (1, 2, 3, 4)]
    assert cascade(Period("Q", 2027, 2), 10, D("2.40")) == [
        (Period("M", 2027, 4), 10, D("2.40")), (Period("M", 2027, 5), 10, D("2.40")),
        (Period("M", 2027, 6), 10, D("2.40"))]
    with pytest.raises(ValueError):
        cascade(Period("M", 2027, 4), 10, D("2.40"))


# --- default fund and waterfall ------------------------------------------------------------


def test_stress_loss_is_the_worse_direction():
    long = Leg(position=10, open_buy=0, open_sell=0, price=D("2.00"), hours=744)
    short = Leg(position=-4, open_buy=0, open_sell=0, price=D("3.00"), hours=720)
    # 0.3 x (2 x 10 x 744 - 3 x 4 x 720) = 0.3 x (14,880 - 8,640) = 1,872.00 (prices down hurt)
    assert stress_loss(legs=[long, short]) == D("1872.00")
    assert stress_loss(legs=[]) == D("0.00")


def test_the_fund_covers_the_two_largest_uncovered_losses_and_is_split_by_margin():
    members = {1: (D("5000.00"), D("1000.00")), 2: (D("3000.00"), D("2000.00")),
               3: (D("2500.00"), D("500.00")), 4: (D("100.00"), D("500.00"))}
    size, shares = default_fund(members=members)
    assert size == D("6000.00")  # 4,000 + 2,000 (member 3); member 2's 1,000 is third
    assert shares == {1: D("1500.00"), 2: D("3000.00"), 3: D("750.00"), 4: D("750.00")}


@given(st.dictionaries(st.integers(1, 30), st.integers(0, 10**7).map(lambda c: D(c).scaleb(-2)), max_size=12),
       st.integers(0, 10**8).map(lambda c: D(c).scaleb(-2)))
def test_pro_rata_parts_sum_exactly(weights, total):
    parts = split_pro_rata(total, weights)
    if any(w > 0 for w in weights.values()):
        assert sum(parts.values(), D("0")) == total
        assert all(p >= 0 and p == p.quantize(D("0.01")) for p in parts.values())
    else:
        assert parts == {}


def test_the_waterfall_hand_computed():
    layers, taken = waterfall(loss=D("10000.00"), margin=D("4000.00"), contribution=D("1500.00"),
                              skin_in_the_game=D("2000.00"), others={7: D("3000.00"), 8: D("1000.00")})
    assert layers == [(Layer.MARGIN, D("4000.00")), (Layer.CONTRIBUTION, D("1500.00")),
                      (Layer.SKIN_IN_THE_GAME, D("2000.00")), (Layer.OTHERS, D("2500.00"))]
    assert taken == {7: D("1875.00"), 8: D("625.00")}
    small, none = waterfall(loss=D("300.00"), margin=D("4000.00"), contribution=D("0"),
                            skin_in_the_game=D("0"), others={})
    assert small == [(Layer.MARGIN, D("300.00"))] and none == {}
    short, _ = waterfall(loss=D("100.00"), margin=D("10.00"), contribution=D("0"), skin_in_the_game=D("0"),
                         others={1: D("20.00")})
    assert short == [(Layer.MARGIN, D("10.00")), (Layer.OTHERS, D("20.00")), (Layer.UNCOVERED, D("70.00"))]


@given(st.integers(0, 10**8), st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7),
       st.dictionaries(st.integers(1, 9), st.integers(0, 10**7), max_size=5))
def test_the_waterfall_takes_exactly_the_loss_and_never_more_than_a_layer_holds(loss, m, c, s, others):
    to_d = lambda v: D(v).scaleb(-2)  # noqa: E731
    other = {k: to_d(v) for k, v in others.items()}
    layers, taken = waterfall(loss=to_d(loss), margin=to_d(m), contribution=to_d(c), skin_in_the_game=to_d(s),
                              others=other)
    assert sum((amount for _layer, amount in layers), D("0")) == to_d(loss)
    assert all(taken[k] <= other[k] for k in taken)
    order = [layer for layer, _amount in layers]
    assert order == sorted(order, key=list(Layer).index)
