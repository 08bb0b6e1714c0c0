"""The pure core of the policy indicators (market.indicators): the HHI,
shares, suppression of small aggregates, thresholds, size classes and
periods, against hand-computed values and hypothesis properties."""

import datetime
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from market import indicators, open_data
from market.indicators import (
    average_price,
    concentration_band,
    exact_shares,
    group_share,
    hhi,
    hhi_exact,
    open_interest,
    periods,
    protect,
    public_hhi,
    shares,
    size_class,
    suppressed,
)


def test_min_members_is_the_open_data_rule():
    assert indicators.MIN_MEMBERS == open_data.MIN_MEMBERS == 3


def test_hhi_by_hand():
    assert hhi([50, 30, 20]) == Decimal("3800")  # 2500 + 900 + 400
    assert hhi([100]) == Decimal("10000")
    assert hhi([1, 1, 1, 1]) == Decimal("2500")
    assert hhi([1, 1, 1]) == Decimal("3333")  # 10000/3 = 3333.33…
    assert hhi([2, 1]) == Decimal("5556")  # (4 + 1) / 9 x 10000 = 5555.55… half up
    assert hhi([]) is None and hhi([0, 0]) is None


def test_shares_by_hand():
    assert shares({"a": 50, "b": 30, "c": 20}) == {"a": Decimal("0.5000"), "b": Decimal("0.3000"),
                                                    "c": Decimal("0.2000")}
    assert shares({"a": 1, "b": 2}) == {"a": Decimal("0.3333"), "b": Decimal("0.6667")}
    assert shares({"a": 0}) == {}


def test_suppression_two_versus_three_members():
    assert suppressed(1) and suppressed(2)
    assert not suppressed(3) and not suppressed(0)
    assert public_hhi({"a": 60, "b": 40}) is None
    assert public_hhi({"a": 50, "b": 30, "c": 20}) == Decimal("3800")
    assert public_hhi({"a": 50, "b": 30, "c": 0}) is None  # a member without volume does not count


def test_group_share_and_its_suppression():
    total = {"a": 40, "b": 30, "c": 20, "d": 5, "e": 5}
    # SMEs a, b, c (90) against d and e: the rest has two members, so withheld.
    assert group_share(total, {"a": 40, "b": 30, "c": 20}) is None
    # Three SMEs against three others: shown.
    total["f"] = 10
    assert group_share(total, {"a": 40, "b": 30, "c": 20}) == Decimal("0.8182")  # 90 / 110
    # Two SMEs: withheld.
    assert group_share(total, {"a": 40, "b": 30}) is None
    # No SME: 0, nobody revealed; all SMEs: 1.
    assert group_share(total, {}) == Decimal("0.0000")
    assert group_share({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1, "c": 1}) == Decimal("1.0000")
    assert group_share({}, {}) is None


def test_thresholds_of_the_bands():
    assert concentration_band(Decimal("1499")) == indicators.UNCONCENTRATED
    assert concentration_band(Decimal("1500")) == indicators.MODERATE
    assert concentration_band(Decimal("2500")) == indicators.MODERATE
    assert concentration_band(Decimal("2501")) == indicators.HIGH
    assert concentration_band(None) == ""


def test_average_price_open_interest_and_size_classes():
    assert average_price(Decimal("10.00"), 3) == Decimal("3.33")
    assert average_price(Decimal("10.01"), 2) == Decimal("5.01")  # 5.005 half up
    assert average_price(Decimal("1"), 0) is None
    assert open_interest({"a": 5, "b": -3, "c": -2}) == 5
    assert size_class("lt10", "le2m") == indicators.MICRO
    assert size_class("lt10", "le10m") == indicators.SMALL
    assert size_class("50-249", "le2m") == indicators.MEDIUM
    assert size_class("10-49", "gt50m") == indicators.LARGE
    assert size_class("", "le2m") == indicators.UNKNOWN


def test_periods_weeks_start_on_monday_and_months_on_the_first():
    day = datetime.date(2026, 12, 4)  # a Friday
    assert periods(day, day, "week") == [datetime.date(2026, 11, 30)]
    assert periods(datetime.date(2026, 11, 15), day, "month") == [datetime.date(2026, 11, 1),
                                                                  datetime.date(2026, 12, 1)]
    assert len(periods(datetime.date(2026, 12, 1), day, "day")) == 4


def test_secondary_suppression_protects_a_single_withheld_cell():
    assert protect([(5, 100), (2, 10), (4, 30), (3, 50)]) == [100, None, None, 50]
    assert protect([(5, 100), (2, 10), (1, 30)]) == [100, None, None]
    assert protect([(5, 100), (4, 30)]) == [100, 30]
    assert protect([(0, 0), (1, 5)]) == [0, None]  # nothing else to withhold


volumes = st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=40)


@given(volumes)
def test_hhi_lies_between_equal_shares_and_a_single_seller(values):
    exact = hhi_exact(values)
    assert exact is not None
    assert Fraction(10000, len(values)) <= exact <= 10000
    rounded = hhi(values)
    assert rounded is not None and abs(Fraction(rounded) - exact) <= Fraction(1, 2)


@given(volumes)
def test_shares_sum_to_one(values):
    keyed = dict(enumerate(values))
    assert sum(exact_shares(keyed).values()) == 1
    assert abs(sum(shares(keyed).values()) - 1) <= Decimal("0.00005") * len(values)


@given(volumes, st.integers(min_value=0, max_value=40))
def test_a_group_share_is_withheld_exactly_when_a_side_has_one_or_two(values, cut):
    total = dict(enumerate(values))
    group = {key: value for key, value in total.items() if key < cut}
    share = group_share(total, group)
    rest = len(total) - len(group)
    assert (share is None) == (suppressed(len(group)) or suppressed(rest))
    if share is not None:
        assert Decimal(0) <= share <= Decimal(1)


def test_apportion_by_hand():
    # 10 over 60 : 40 -> 6 and 4; 7 over 3 : 1 -> 5.25 and 1.75: the larger remainder gets the unit.
    assert indicators.apportion(10, {"DE-BY": 60, "DE-HE": 40}) == {"DE-BY": 6, "DE-HE": 4}
    assert indicators.apportion(7, {"x": 3, "y": 0, "z": 1}) == {"x": 5, "z": 2}
    assert indicators.apportion(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}  # ties: first key
    assert indicators.apportion(5, {}) == {} and indicators.apportion(5, {"a": 0}) == {}


@given(st.integers(min_value=0, max_value=10**9),
       st.dictionaries(st.text(max_size=3), st.integers(min_value=0, max_value=10**6), max_size=8))
def test_apportion_sums_to_the_total_and_each_part_is_its_share_rounded(total, weights):
    parts = indicators.apportion(total, weights)
    whole = sum(weights.values())
    if whole == 0:
        assert parts == {}
        return
    assert sum(parts.values()) == total
    for key, part in parts.items():
        exact = Fraction(total * weights[key], whole)
        assert exact - 1 < part < exact + 1
