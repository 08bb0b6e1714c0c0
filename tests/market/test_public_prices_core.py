"""The pure arithmetic of the public price pages (market.price_stats) against
hand-computed values, and its properties."""

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from market import price_stats

D = Decimal


def test_week_and_month_means_by_hand():
    # Mon 30 Nov 2026 .. Thu 3 Dec 2026; Tue has no value and counts in neither sum nor number.
    values = [(date(2026, 11, 30), D("2.00")), (date(2026, 12, 1), None), (date(2026, 12, 2), D("2.01")),
              (date(2026, 12, 3), D("2.03")), (date(2026, 11, 29), D("1.00"))]
    # Week from 23 Nov: only Sun 29 Nov (1.00). Week from 30 Nov: (2.00 + 2.01 + 2.03) / 3 = 2.0133... -> 2.01.
    assert price_stats.period_means(values, price_stats.WEEK) == [
        (date(2026, 11, 23), D("1.00"), 1), (date(2026, 11, 30), D("2.01"), 3)]
    # November: (2.00 + 1.00) / 2 = 1.50; December: (2.01 + 2.03) / 2 = 2.02.
    assert price_stats.period_means(values, price_stats.MONTH) == [
        (date(2026, 11, 1), D("1.50"), 2), (date(2026, 12, 1), D("2.02"), 2)]
    # Half up at the cent: (1.00 + 1.01) / 2 = 1.005 -> 1.01.
    assert price_stats.period_means([(date(2026, 1, 5), D("1.00")), (date(2026, 1, 6), D("1.01"))],
                                    price_stats.WEEK) == [(date(2026, 1, 5), D("1.01"), 2)]


def test_price_per_performance_and_spread_by_hand():
    h100 = price_stats.per_performance(D("2.40"), D("700"))  # 2400 / 700 = 3.4285... -> 3.43
    a100 = price_stats.per_performance(D("1.35"), D("250"))  # 1350 / 250 = 5.40
    assert (h100, a100) == (D("3.43"), D("5.40"))
    assert price_stats.difference(h100, a100) == D("-1.97")
    assert price_stats.difference(h100, None) is None
    assert price_stats.per_performance(D("0.01"), D("1500")) == D("0.01")  # 0.00666... -> 0.01


def test_windows():
    end = date(2026, 12, 3)
    assert price_stats.window(end, "day", None) == end
    assert price_stats.window(end, "week", None) == date(2026, 11, 27)
    assert price_stats.window(end, "month", None) == date(2026, 11, 3)
    assert price_stats.window(end, "all", date(2025, 1, 1)) == date(2025, 1, 1)
    assert price_stats.window(end, "all", None) == end


prices = st.decimals(min_value=D("0.01"), max_value=D("200"), places=2)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31))


@given(st.lists(st.tuples(days, prices), min_size=1, max_size=60, unique_by=lambda pair: pair[0]),
       st.sampled_from([price_stats.WEEK, price_stats.MONTH]))
def test_means_lie_between_the_lowest_and_highest_day_and_count_every_day(values, resolution):
    means = price_stats.period_means(values, resolution)
    assert sum(count for _start, _mean, count in means) == len(values)
    for start, mean, _count in means:
        inside = [value for day, value in values if price_stats.period_start(day, resolution) == start]
        assert min(inside) <= mean <= max(inside)
        assert mean == mean.quantize(D("0.01"))


@given(days)
def test_a_period_starts_on_a_monday_or_the_first_and_holds_its_day(day):
    week = price_stats.period_start(day, price_stats.WEEK)
    assert week.weekday() == 0 and timedelta(0) <= day - week < timedelta(days=7)
    assert price_stats.period_start(day, price_stats.MONTH) == day.replace(day=1)


@given(prices, st.decimals(min_value=D("1"), max_value=D("100000"), places=2))
def test_price_per_performance_is_within_half_a_cent_of_the_exact_quotient(value, benchmark):
    assert abs(price_stats.per_performance(value, benchmark) - value * 1000 / benchmark) <= D("0.005")
