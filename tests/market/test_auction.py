"""The pure day-ahead clearing core (market/auction.py): hand-computed scenarios and properties.

Every expected figure below is worked out by hand in the comment above it, in
units: b(V) is the limit of the V-th most expensive buy GPU, s(V) of the V-th
cheapest sell GPU; the volume V* is the largest V with b(V) >= s(V); the
supporting prices are [max(s(V*), b(V*+1)), min(b(V*), s(V*+1))] with a missing
unit standing for the price bound; the price is their midpoint, half up to the
tick.
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from fractions import Fraction

import highspy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.auction import (
    Block,
    Method,
    PriceRules,
    Side,
    Step,
    accepted_by_bid,
    clear,
    welfare,
)
from market.calendar import day_hours

BUY, SELL = Side.BUY, Side.SELL
D = Decimal
ONE = ("14",)


def step(bid: str, side: Side, price: str, quantity: int, priority: int = 0, hour: str = "14") -> Step:
    return Step(bid=bid, hour=hour, side=side, price=D(price), quantity=quantity, priority=priority)


# ---------------------------------------------------------------------------------------------
# Curves only


def test_simple_cross() -> None:
    # buys 10 @ 30, 10 @ 20; sells 8 @ 10, 10 @ 25.
    # V=10: b=30 >= s=25; V=11: b=20 < s=25, so V* = 10.
    # Prices: [max(s(10)=25, b(11)=20), min(b(10)=30, s(11)=25)] = [25, 25] -> 25.00.
    # The 30-buy takes 10; the 10-sell gives 8, the 25-sell the other 2.
    steps = [step("b1", BUY, "30.00", 10, 1), step("b2", BUY, "20.00", 10, 2),
             step("s1", SELL, "10.00", 8, 3), step("s2", SELL, "25.00", 10, 4)]
    result = clear(hours=ONE, steps=steps)
    hour = result.hour("14")
    assert (hour.price, hour.volume) == (D("25.00"), 10)
    assert (hour.offered_buy, hour.offered_sell) == (20, 18)
    assert result.step_quantities == (10, 0, 8, 2)
    assert result.method is Method.CURVES and result.rounds == 0 and not result.time_limit_hit
    assert accepted_by_bid(steps, result) == {"b1": {"14": 10}, "b2": {"14": 0}, "s1": {"14": 8}, "s2": {"14": 2}}
    assert welfare(steps, [], result, ONE) == D("300.00") - D("80.00") - D("50.00")


def test_no_cross_prices_the_gap() -> None:
    # buy 5 @ 10, sell 5 @ 20: V* = 0; prices [b(1)=10, s(1)=20] -> 15.00, nothing traded.
    result = clear(hours=ONE, steps=[step("b", BUY, "10.00", 5), step("s", SELL, "20.00", 5)])
    assert (result.hour("14").price, result.hour("14").volume) == (D("15.00"), 0)
    assert result.step_quantities == (0, 0)


def test_an_hour_without_orders_has_no_price() -> None:
    result = clear(hours=("13", "14"), steps=[step("b", BUY, "10.00", 5), step("s", SELL, "8.00", 5)])
    assert result.hour("13").price is None and result.hour("13").volume == 0
    assert result.hour("14").volume == 5


def test_one_sided_hour_prices_up_to_the_bound() -> None:
    # only buys: V* = 0, prices [b(1)=40, max bound 200] -> 120.00.
    result = clear(hours=ONE, steps=[step("b", BUY, "40.00", 5)])
    assert (result.hour("14").price, result.hour("14").volume) == (D("120.00"), 0)


def test_ties_at_the_margin_pro_rata_largest_remainder() -> None:
    # sell 10 @ 15; buys at 20: 10 (entered 1st), 5 (2nd), 6 (3rd) = 21.
    # V* = 10, prices [max(s(10)=15, b(11)=20), min(b(10)=20, s(11)=bound 200)] = [20, 20] -> 20.00.
    # 10 GPUs over 21: exact 100/21, 50/21, 60/21 -> floors 4, 2, 2 (8); remainders 16, 8, 18:
    # the 2 left go to the 6-step (18) and the 10-step (16): 5, 2, 3.
    steps = [step("a", BUY, "20.00", 10, 1), step("b", BUY, "20.00", 5, 2), step("c", BUY, "20.00", 6, 3),
             step("s", SELL, "15.00", 10, 4)]
    result = clear(hours=ONE, steps=steps)
    assert result.hour("14").price == D("20.00")
    assert result.step_quantities == (5, 2, 3, 10)


def test_equal_remainders_go_to_the_earlier_entry() -> None:
    # two buys of 3 @ 20, sell 5 @ 10: 2.5 each -> 2 + 2, the last GPU to the earlier entry
    # (priority 1), although it is given second.
    steps = [step("late", BUY, "20.00", 3, 2), step("early", BUY, "20.00", 3, 1), step("s", SELL, "10.00", 5, 0)]
    result = clear(hours=ONE, steps=steps)
    assert result.step_quantities == (2, 3, 5)
    # prices [max(s(5)=10, b(6)=20), min(b(5)=20, s(6)=200)] = [20, 20]
    assert result.hour("14").price == D("20.00")


def test_sell_side_curtailed_pro_rata() -> None:
    # buy 7 @ 50; sells @ 10: 4 and 8 (12). 7 over 12: 28/12, 56/12 -> 2, 4; remainders 4, 8 -> +1 to the 8:
    # 2, 5. Prices [max(s(7)=10, b(8)=bound 0), min(b(7)=50, s(8)=10)] = [10, 10].
    steps = [step("b", BUY, "50.00", 7), step("s1", SELL, "10.00", 4, 1), step("s2", SELL, "10.00", 8, 2)]
    result = clear(hours=ONE, steps=steps)
    assert result.step_quantities == (7, 2, 5)
    assert result.hour("14").price == D("10.00")


def test_price_indeterminacy_takes_the_midpoint() -> None:
    # buy 10 @ 30, sell 10 @ 20: V* = 10, prices [max(20, no b(11)), min(30, no s(11))] = [20, 30] -> 25.00.
    result = clear(hours=ONE, steps=[step("b", BUY, "30.00", 10), step("s", SELL, "20.00", 10)])
    hour = result.hour("14")
    assert (hour.price, hour.price_low, hour.price_high, hour.volume) == (D("25.00"), D("20.00"), D("30.00"), 10)


def test_midpoint_rounds_half_up_to_the_tick() -> None:
    # [20.00, 30.01]: midpoint 25.005 -> 25.01.
    result = clear(hours=ONE, steps=[step("b", BUY, "30.01", 10), step("s", SELL, "20.00", 10)])
    assert result.hour("14").price == D("25.01")


def test_volume_indeterminacy_takes_the_largest_volume() -> None:
    # buys 10 @ 25, 5 @ 20; sells 10 @ 15, 5 @ 20. GPUs 11-15 trade at 20 against 20: no welfare,
    # but the volume rule trades them: V* = 15; prices [max(s(15)=20, none), min(b(15)=20, none)] -> 20.00.
    steps = [step("b1", BUY, "25.00", 10), step("b2", BUY, "20.00", 5),
             step("s1", SELL, "15.00", 10), step("s2", SELL, "20.00", 5)]
    result = clear(hours=ONE, steps=steps)
    assert (result.hour("14").price, result.hour("14").volume) == (D("20.00"), 15)
    assert result.step_quantities == (10, 5, 10, 5)


def test_price_at_the_upper_bound() -> None:
    # buys 20 @ 200.00 (the bound), sell 10 @ 5: prices [max(5, b(11)=200), min(200, bound)] = 200.00;
    # the buys are curtailed to 10.
    result = clear(hours=ONE, steps=[step("b", BUY, "200.00", 20), step("s", SELL, "5.00", 10)])
    assert (result.hour("14").price, result.hour("14").volume) == (D("200.00"), 10)
    assert result.step_quantities == (10, 10)


def test_price_at_the_lower_bound() -> None:
    # sells 20 @ 0.00, buy 10 @ 50: prices [max(s(10)=0, bound 0), min(50, s(11)=0)] = 0.00.
    result = clear(hours=ONE, steps=[step("s", SELL, "0.00", 20), step("b", BUY, "50.00", 10)])
    assert (result.hour("14").price, result.hour("14").volume) == (D("0.00"), 10)


def test_class_bounds_and_tick_are_the_rules() -> None:
    rules = PriceRules(min_price=D("1.00"), max_price=D("50.00"), tick=D("0.05"))
    result = clear(hours=ONE, steps=[step("b", BUY, "50.00", 5)], rules=rules)
    assert result.hour("14").price == D("50.00")  # [50, 50]
    result = clear(hours=ONE, steps=[step("b", BUY, "10.00", 5)], rules=rules)
    assert result.hour("14").price == D("30.00")  # [10, 50]
    result = clear(hours=ONE, steps=[step("b", BUY, "10.05", 5)], rules=rules)
    assert result.hour("14").price == D("30.05")  # [10.05, 50]: 30.025 -> half up to the tick


@pytest.mark.parametrize(("bad", "message"), [
    (step("b", BUY, "10.001", 5), "not on the tick"),
    (step("b", BUY, "200.01", 5), "outside the price bounds"),
    (step("b", BUY, "10.00", 0), "positive"),
    (step("b", BUY, "10.00", 5, hour="02A"), "not an hour of the day"),
    (Step("b", "14", BUY, 10.0, 5, 0), "finite Decimal"),  # type: ignore[arg-type]
    (Step("b", "14", BUY, D("NaN"), 5, 0), "finite Decimal"),
    (Step("b", "14", "buy?", D("1"), 5, 0), "side"),  # type: ignore[arg-type]
])
def test_bad_steps_are_refused(bad: Step, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clear(hours=ONE, steps=[step("ok", SELL, "1.00", 1), bad])


def test_bad_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="first_hour is after"):
        clear(hours=("13", "14"), steps=[], blocks=[Block("k", BUY, "14", "13", D("1.00"), 1)])
    with pytest.raises(ValueError, match="min_acceptance_ratio"):
        clear(hours=ONE, steps=[], blocks=[Block("k", BUY, "14", "14", D("1.00"), 1, D("0"))])
    with pytest.raises(ValueError, match="appears twice"):
        clear(hours=ONE, steps=[], blocks=[Block("k", BUY, "14", "14", D("1.00"), 1)] * 2)


# ---------------------------------------------------------------------------------------------
# Blocks and exclusive groups

TWO = ("13", "14")


def test_block_accepted_sets_the_price_within_the_curves_interval() -> None:
    # hours 13 and 14: sells 10 @ 10 and buys 5 @ 8 in each; a buy block of 10 over both hours at 15.
    # Accepting it: welfare 2 * 10 * (15 - 10) = 100 > 0. With the block taking 10 per hour the curves
    # support [max(s(10)=10, b(11)=8), bound 200] = [10, 200] per hour; the block needs p13 + p14 <= 30.
    # Each hour can then take [10, 20] (the other at least 10): midpoints 15.00 and 15.00 (average 15: at
    # the money, accepted).
    steps = [step("s13", SELL, "10.00", 10, hour="13"), step("s14", SELL, "10.00", 10, hour="14"),
             step("b13", BUY, "8.00", 5, hour="13"), step("b14", BUY, "8.00", 5, hour="14")]
    block = Block("k", BUY, "13", "14", D("15.00"), 10)
    result = clear(hours=TWO, steps=steps, blocks=[block])
    assert result.prices() == {"13": D("15.00"), "14": D("15.00")}
    assert result.blocks["k"].accepted_quantity == 10 and result.blocks["k"].ratio == 1
    assert result.step_quantities == (10, 10, 0, 0)
    assert [h.volume for h in result.hours] == [10, 10]
    assert result.method is Method.OPTIMAL and result.paradoxically_rejected == ()
    assert welfare(steps, [block], result, TWO) == D("100.00")


def test_one_hour_block_narrows_the_hour_to_its_limit() -> None:
    # The same block over hour 13 only: hour 13 can take [10, 15] -> 12.50; hour 14 has no cross:
    # [b(1)=8, s(1)=10] -> 9.00.
    steps = [step("s13", SELL, "10.00", 10, hour="13"), step("s14", SELL, "10.00", 10, hour="14"),
             step("b13", BUY, "8.00", 5, hour="13"), step("b14", BUY, "8.00", 5, hour="14")]
    result = clear(hours=TWO, steps=steps, blocks=[Block("k", BUY, "13", "13", D("15.00"), 10)])
    assert result.prices() == {"13": D("12.50"), "14": D("9.00")}
    assert result.step_quantities == (10, 0, 0, 0)


def test_block_out_of_the_money_is_not_accepted() -> None:
    # a buy block at 9 against sells at 10 loses welfare: rejected; prices [8, 10] -> 9.00; at 9 the
    # block is at the money, not strictly in it: not paradoxically rejected.
    steps = [step("s13", SELL, "10.00", 10, hour="13"), step("s14", SELL, "10.00", 10, hour="14"),
             step("b13", BUY, "8.00", 5, hour="13"), step("b14", BUY, "8.00", 5, hour="14")]
    result = clear(hours=TWO, steps=steps, blocks=[Block("k", BUY, "13", "14", D("9.00"), 10)])
    assert result.blocks["k"].accepted_quantity == 0
    assert result.prices() == {"13": D("9.00"), "14": D("9.00")}
    assert result.paradoxically_rejected == ()


def test_paradoxically_rejected_block() -> None:
    # one hour: an all-or-none sell block of 10 at 10; buys 6 @ 20 and 4 @ 8; a sell curve of 3 @ 15.
    # With the block: welfare 6*20 + 4*8 - 10*10 = 52; without: 3 * (20 - 15) = 15. The master accepts it.
    # But then the curves support [max(s(10)=block, b(11)=bound 0), min(b(10)=8, s(11)=15)] = [0, 8],
    # below the block's 10: it would be accepted paradoxically. It is rejected and the hour cleared again:
    # V* = 3, prices [max(s(3)=15, b(4)=20), min(b(3)=20, s(4)=bound)] = [20, 20] -> 20.00. At 20 the block
    # (limit 10) is in the money and rejected: reported as paradoxically rejected.
    steps = [step("b1", BUY, "20.00", 6, 1), step("b2", BUY, "8.00", 4, 2), step("s", SELL, "15.00", 3, 3)]
    block = Block("k", SELL, "14", "14", D("10.00"), 10)
    result = clear(hours=ONE, steps=steps, blocks=[block])
    assert result.blocks["k"].accepted_quantity == 0
    assert (result.hour("14").price, result.hour("14").volume) == (D("20.00"), 3)
    assert result.step_quantities == (3, 0, 3)
    assert result.paradoxically_rejected == ("k",) and result.blocks["k"].paradoxically_rejected
    assert result.rounds == 2 and result.method is Method.OPTIMAL


def test_partial_acceptance_under_a_mar() -> None:
    # one hour: a sell block of 10 at 5 with MAR 0.5; a buy of 6 @ 20. The block sells 6 (ratio 0.6 >= 0.5).
    # The curves support [bound 0, 20]; the partly accepted block is the marginal seller and is put at the
    # money: 5.00.
    steps = [step("b", BUY, "20.00", 6)]
    result = clear(hours=ONE, steps=steps, blocks=[Block("k", SELL, "14", "14", D("5.00"), 10, D("0.5"))])
    assert result.blocks["k"].accepted_quantity == 6 and result.blocks["k"].ratio == Fraction(3, 5)
    assert (result.hour("14").price, result.hour("14").volume) == (D("5.00"), 6)
    assert result.paradoxically_rejected == ()


def test_mar_above_what_can_be_sold_rejects_the_block() -> None:
    # the same with MAR 0.7: at least 7 must be sold, only 6 are bought: rejected. No sell remains:
    # prices [b(1)=20, bound 200] -> 110.00; the block (5) is in the money there: paradoxically rejected.
    steps = [step("b", BUY, "20.00", 6)]
    result = clear(hours=ONE, steps=steps, blocks=[Block("k", SELL, "14", "14", D("5.00"), 10, D("0.7"))])
    assert result.blocks["k"].accepted_quantity == 0
    assert (result.hour("14").price, result.hour("14").volume) == (D("110.00"), 0)
    assert result.paradoxically_rejected == ("k",)


def test_partial_block_over_two_hours_sits_at_the_money() -> None:
    # a sell block of 10 over 13-14 at 5, MAR 0.5; buys 6 @ 20 in each hour: 6 accepted; the curves
    # support [0, 20] per hour, at the money p13 + p14 = 10, each hour can take [0, 10]: 5.00 and 5.00.
    steps = [step("b13", BUY, "20.00", 6, hour="13"), step("b14", BUY, "20.00", 6, hour="14")]
    result = clear(hours=TWO, steps=steps, blocks=[Block("k", SELL, "13", "14", D("5.00"), 10, D("0.5"))])
    assert result.blocks["k"].accepted_quantity == 6
    assert result.prices() == {"13": D("5.00"), "14": D("5.00")}


def test_exclusive_group_accepts_at_most_one() -> None:
    # hours 08-11: a member sells 10 GPUs either 08-09 or 10-11 at 10 (one exclusive group). Buyers bid
    # 10 @ 30 in 08 and 09, 10 @ 40 in 10 and 11. Both blocks alone are worth 2*10*20 = 400 and
    # 2*10*30 = 600; the group allows one: the 10-11 block. Hours 10, 11: the block is price-taking, the
    # buyer is served: [max(s(10)=block, b(11)=bound 0), min(40, bound)] = [0, 40] cut by the block
    # (p10 + p11 >= 20): each hour [0, 40] still (the other can be 40) -> 20.00. Hours 08, 09: no seller,
    # [30, 200] -> 115.00. The 08-09 block is in the money there but excluded by its group: not
    # paradoxically rejected.
    hours = ("08", "09", "10", "11")
    steps = [step(f"b{h}", BUY, "30.00" if h < "10" else "40.00", 10, hour=h) for h in hours]
    early = Block("early", SELL, "08", "09", D("10.00"), 10, exclusive_group=("org", "g"))
    late = Block("late", SELL, "10", "11", D("10.00"), 10, exclusive_group=("org", "g"))
    result = clear(hours=hours, steps=steps, blocks=[early, late])
    assert result.blocks["early"].accepted_quantity == 0 and result.blocks["late"].accepted_quantity == 10
    assert result.prices() == {"08": D("115.00"), "09": D("115.00"), "10": D("20.00"), "11": D("20.00")}
    assert result.paradoxically_rejected == ()
    # without the group both are accepted
    free = clear(hours=hours, steps=steps, blocks=[Block("early", SELL, "08", "09", D("10.00"), 10),
                                                   Block("late", SELL, "10", "11", D("10.00"), 10)])
    assert free.blocks["early"].accepted_quantity == free.blocks["late"].accepted_quantity == 10


def test_time_limit_falls_back_to_clearing_without_blocks() -> None:
    # A time limit too short for any solve: every block is rejected, the curves alone clear; the
    # result says so. (The same instance with time is cleared with its block.)
    steps = [step("s13", SELL, "10.00", 10, hour="13"), step("s14", SELL, "10.00", 10, hour="14"),
             step("b13", BUY, "8.00", 5, hour="13"), step("b14", BUY, "8.00", 5, hour="14")]
    block = Block("k", BUY, "13", "14", D("15.00"), 10)
    result = clear(hours=TWO, steps=steps, blocks=[block], time_limit=0.0)
    assert result.time_limit_hit and result.method is Method.WITHOUT_BLOCKS
    assert result.blocks["k"].accepted_quantity == 0
    assert result.prices() == {"13": D("9.00"), "14": D("9.00")}
    assert result.paradoxically_rejected == ("k",)  # in the money at 9 and rejected


# ---------------------------------------------------------------------------------------------
# Days of 23 and 25 hours (Europe/Berlin; labels from market.calendar)


def test_23_hour_day() -> None:
    # 2026-03-29: no hour 02. In hour i (0..22) buy 10 @ 50 and sell 10 @ (i + 1): V* = 10, prices
    # [i + 1, 50] -> midpoint. A sell block over 01-03 covers two hours (01 and 03).
    labels = tuple(h.label for h in day_hours(date(2026, 3, 29)))
    assert len(labels) == 23 and "02" not in labels
    steps = [s for i, label in enumerate(labels) for s in (
        step(f"b{label}", BUY, "50.00", 10, hour=label), step(f"s{label}", SELL, f"{i + 1}.00", 10, hour=label))]
    block = Block("night", SELL, "01", "03", D("1.00"), 4, D("0.5"))
    result = clear(hours=labels, steps=steps, blocks=[block])
    assert [h.hour for h in result.hours] == list(labels)
    expected = {label: ((D(i + 1) + D(50)) / 2).quantize(D("0.01")) for i, label in enumerate(labels)}
    # hours 01 and 03 (index 1 and 2): the block (price-taking, 4 GPUs) sells first, the curve sells 6 of
    # its 10, so it is marginal: [max(s(10)=i+1, none), min(b(10)=50, s(11)=i+1)] = [i+1, i+1].
    expected["01"], expected["03"] = D("2.00"), D("3.00")
    assert result.prices() == expected
    assert result.blocks["night"].accepted_quantity == 4
    assert [result.hour(h).volume for h in labels] == [10] * 23
    assert welfare(steps, [block], result, labels) == sum(
        D(50) * 10 - D(i + 1) * (6 if label in ("01", "03") else 10) for i, label in enumerate(labels)
    ) - D(1) * 4 * 2


def test_25_hour_day() -> None:
    # 2026-10-25: 02A and 02B are two hours with their own curves and prices; a buy block over 01-03
    # covers four hours (01, 02A, 02B, 03).
    labels = tuple(h.label for h in day_hours(date(2026, 10, 25)))
    assert len(labels) == 25 and labels[2:4] == ("02A", "02B")
    steps = [step("sA", SELL, "10.00", 10, hour="02A"), step("bA", BUY, "20.00", 10, hour="02A"),
             step("sB", SELL, "30.00", 10, hour="02B"), step("bB", BUY, "40.00", 10, hour="02B")]
    steps += [step(f"s{label}", SELL, "5.00", 10, hour=label) for label in ("01", "03")]
    block = Block("night", BUY, "01", "03", D("100.00"), 5)
    result = clear(hours=labels, steps=steps, blocks=[block])
    assert [h.hour for h in result.hours] == list(labels)
    # 02A: block 5 + buy 10 @ 20 against sell 10 @ 10: V* = 10, the block first, the curve buyer gets 5:
    # [max(s(10)=10, b(11)=20), min(b(10)=20, none)] = [20, 20]. 02B likewise: [40, 40].
    # 01 and 03: the block takes 5 of 10 @ 5: [max(s(5)=5, none), min(b(5)=block, s(6)=5)] = [5, 5].
    prices = result.prices()
    assert (prices["01"], prices["02A"], prices["02B"], prices["03"]) == (D("5.00"), D("20.00"), D("40.00"),
                                                                          D("5.00"))
    assert result.blocks["night"].accepted_quantity == 5
    assert result.blocks["night"].average_price == D("17.500000")
    assert prices["04"] is None
    assert accepted_by_bid(steps, result)["bA"] == {"02A": 5}


# ---------------------------------------------------------------------------------------------
# Properties


LABELS = ("00", "01", "02")


@st.composite
def curve_books(draw: st.DrawFn, max_steps: int = 12) -> list[Step]:
    n = draw(st.integers(min_value=0, max_value=max_steps))
    steps = []
    for i in range(n):
        steps.append(Step(
            bid=f"c{i}",
            hour=draw(st.sampled_from(LABELS)),
            side=draw(st.sampled_from((BUY, SELL))),
            price=D(draw(st.integers(min_value=0, max_value=40))).scaleb(-1),  # 0.0 .. 4.0, some ties
            quantity=draw(st.integers(min_value=1, max_value=9)),
            priority=draw(st.integers(min_value=0, max_value=3)),
        ))
    return steps


def _lp_optimum(steps: list[Step], blocks: list[Block], accept: dict[str, int]) -> tuple[float, float] | None:
    """An independent LP: one variable per step (not per price level), the blocks' quantities fixed
    at ``accept``; answers (welfare, then the largest volume at that welfare), or None if infeasible."""
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    x = [solver.addVariable(lb=0.0, ub=float(s.quantity)) for s in steps]
    solver.addVariable(lb=0.0, ub=0.0)  # never an empty model
    for label in LABELS:
        fixed = sum((1 if b.side is BUY else -1) * accept[str(b.id)] for b in blocks
                    if LABELS.index(b.first_hour) <= LABELS.index(label) <= LABELS.index(b.last_hour))
        terms = [(1 if s.side is BUY else -1) * x[i] for i, s in enumerate(steps) if s.hour == label]
        solver.addConstr(sum(terms, start=solver.expr(0.0)) + float(fixed) == 0.0)
    value = sum((float(s.price) if s.side is BUY else -float(s.price)) * x[i] for i, s in enumerate(steps))
    value = solver.expr(0.0) + value
    solver.maximize(value)
    if solver.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    best = solver.getInfo().objective_function_value
    solver.addConstr(value >= best - 1e-9)
    volume = solver.expr(0.0) + sum(x[i] for i, s in enumerate(steps) if s.side is BUY)
    solver.maximize(volume)
    return best, solver.getInfo().objective_function_value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(curve_books())
def test_curves_support_prices_and_equal_an_independent_lp(steps: list[Step]) -> None:
    result = clear(hours=LABELS, steps=steps, rules=PriceRules(max_price=D("5.00"), tick=D("0.1")))
    for label in LABELS:
        hour = result.hour(label)
        mine = [(s, a) for s, a in zip(steps, result.step_quantities, strict=True) if s.hour == label]
        bought = sum(a for s, a in mine if s.side is BUY)
        sold = sum(a for s, a in mine if s.side is SELL)
        assert bought == sold == hour.volume
        if not mine:
            assert hour.price is None
            continue
        price = hour.price
        assert price is not None and hour.price_low is not None and hour.price_high is not None
        assert hour.price_low <= price <= hour.price_high
        for s, a in mine:
            assert 0 <= a <= s.quantity
            if s.side is BUY:
                if a > 0:
                    assert s.price >= price  # every accepted buy step at or above the price
                if a < s.quantity:
                    assert s.price <= price  # a buy step left out would not pay more
            else:
                if a > 0:
                    assert s.price <= price  # every accepted sell step at or below the price
                if a < s.quantity:
                    assert s.price >= price
    optimum = _lp_optimum(steps, [], {})
    assert optimum is not None
    assert abs(float(welfare(steps, [], result, LABELS)) - optimum[0]) < 1e-6
    assert abs(sum(h.volume for h in result.hours) - optimum[1]) < 1e-3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(curve_books(max_steps=10), st.lists(st.tuples(
    st.sampled_from((BUY, SELL)), st.integers(0, 2), st.integers(0, 2), st.integers(1, 6),
    st.sampled_from((D(1), D("0.5"))), st.sampled_from((None, "g"))), max_size=3))
def test_blocks_in_the_money_always_equal_a_brute_force_optimum(steps: list[Step], raw: list) -> None:
    # Buy blocks at the upper bound and sell blocks at the lower bound are in the money at any prices,
    # so no block can be paradoxical and the welfare must be the best over every acceptance of the
    # blocks (brute force over the quantities the MARs allow and the groups, curves by an LP).
    blocks = []
    for i, (side, a, b, quantity, mar, group) in enumerate(raw):
        first, last = sorted((a, b))
        blocks.append(Block(f"k{i}", side, LABELS[first], LABELS[last], D("5.0") if side is BUY else D("0.0"),
                            quantity, mar, exclusive_group=group))
    rules = PriceRules(max_price=D("5.00"), tick=D("0.1"))
    result = clear(hours=LABELS, steps=steps, blocks=blocks, rules=rules)
    # (Such blocks can still be rejected in the money, by indivisibility: a buy block of 2 against a
    # sell block of 1. That is a paradoxical rejection, which the rules allow and _check_supported checks.)
    assert result.method is (Method.OPTIMAL if blocks else Method.CURVES)
    best = None
    choices = []
    for block in blocks:
        least = int((block.min_acceptance_ratio * block.quantity).to_integral_value(rounding="ROUND_CEILING"))
        choices.append([0, *range(least, block.quantity + 1)])
    for combo in itertools.product(*choices):
        accept = {str(b.id): q for b, q in zip(blocks, combo, strict=True)}
        groups = [b.exclusive_group for b in blocks if accept[str(b.id)] and b.exclusive_group]
        if len(groups) != len(set(groups)):
            continue
        lp = _lp_optimum(steps, blocks, accept)
        if lp is None:
            continue
        hours_of = {str(b.id): LABELS.index(b.last_hour) - LABELS.index(b.first_hour) + 1 for b in blocks}
        value = lp[0] + sum((float(b.price) if b.side is BUY else -float(b.price)) * accept[str(b.id)]
                            * hours_of[str(b.id)] for b in blocks)
        best = value if best is None else max(best, value)
    assert best is not None
    assert abs(float(welfare(steps, blocks, result, LABELS)) - best) < 1e-6
    _check_supported(steps, blocks, result)


def _check_supported(steps: list[Step], blocks: list[Block], result) -> None:  # type: ignore[no-untyped-def]
    """Curve steps supported by each hour's price; no accepted block out of the money; balance per hour."""
    prices = result.prices()
    for label in LABELS:
        price = prices[label]
        flows = 0
        for s, a in zip(steps, result.step_quantities, strict=True):
            if s.hour != label:
                continue
            flows += a if s.side is BUY else -a
            if a > 0:
                assert (s.price >= price) if s.side is BUY else (s.price <= price)
            if a < s.quantity:
                assert (s.price <= price) if s.side is BUY else (s.price >= price)
        for b in blocks:
            if LABELS.index(b.first_hour) <= LABELS.index(label) <= LABELS.index(b.last_hour):
                q = result.blocks[b.id].accepted_quantity
                flows += q if b.side is BUY else -q
        assert flows == 0
    for b in blocks:
        r = result.blocks[b.id]
        span = LABELS[LABELS.index(b.first_hour):LABELS.index(b.last_hour) + 1]
        total = sum(prices[h] for h in span)
        limit = b.price * len(span)
        if r.accepted_quantity > 0:
            assert (total <= limit) if b.side is BUY else (total >= limit), "paradoxically accepted"
        in_money = (total < limit) if b.side is BUY else (total > limit)
        excluded = b.exclusive_group is not None and any(
            o.exclusive_group == b.exclusive_group and result.blocks[o.id].accepted_quantity for o in blocks)
        assert r.paradoxically_rejected == (r.accepted_quantity < b.quantity and in_money and not (
            excluded and r.accepted_quantity == 0))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(curve_books(max_steps=10), st.lists(st.tuples(
    st.sampled_from((BUY, SELL)), st.integers(0, 2), st.integers(0, 2), st.integers(1, 6),
    st.integers(0, 50), st.sampled_from((D(1), D("0.5"), D("0.2"))), st.sampled_from((None, "g", "h"))),
    max_size=4))
def test_no_block_is_accepted_paradoxically(steps: list[Step], raw: list) -> None:
    blocks = []
    for i, (side, a, b, quantity, price, mar, group) in enumerate(raw):
        first, last = sorted((a, b))
        blocks.append(Block(f"k{i}", side, LABELS[first], LABELS[last], D(price).scaleb(-1), quantity, mar,
                            exclusive_group=group, priority=i))
    result = clear(hours=LABELS, steps=steps, blocks=blocks, rules=PriceRules(max_price=D("5.00"), tick=D("0.1")))
    assert not result.time_limit_hit
    _check_supported(steps, blocks, result)
    again = clear(hours=LABELS, steps=steps, blocks=blocks, rules=PriceRules(max_price=D("5.00"), tick=D("0.1")))
    assert again == result  # deterministic
