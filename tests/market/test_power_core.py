"""The pure rules of issue 11's electricity, capacity and revenue pages
(market.power), with hand-computed values and hypothesis properties, and the
SMARD parser (market.power_csv)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market import power, power_csv


def test_correlation_of_a_small_series_by_hand():
    # x = 1,2,3,4; y = 2,4,5,9: mean 2.5 and 5; cov = 1.5*3+0.5*1+0.5*0+1.5*4 = 11;
    # vx = 5, vy = 9+1+0+16 = 26; r = 11/sqrt(130) = 0.964763...
    assert power.correlation([D(1), D(2), D(3), D(4)], [D(2), D(4), D(5), D(9)]) == D("0.9648")
    assert power.correlation([D(1), D(2)], [D(2), D(1)]) == D("-1.0000")
    assert power.correlation([D(1), D(1)], [D(2), D(3)]) is None
    assert power.correlation([D(1)], [D(1)]) is None


@given(st.lists(st.tuples(st.decimals("-100", "100", places=2), st.decimals("-100", "100", places=2)),
                min_size=2, max_size=30))
def test_correlation_lies_between_minus_one_and_one_and_is_symmetric(pairs):
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    r = power.correlation(xs, ys)
    assert r is None or D(-1) <= r <= D(1)
    assert r == power.correlation(ys, xs)


def test_rolling_correlation_needs_twenty_days_of_the_thirty():
    start = date(2026, 1, 1)
    xs = {start + timedelta(days=n): D(n) for n in range(40)}
    ys = {start + timedelta(days=n): D(2 * n + 1) for n in range(40)}
    days = [start + timedelta(days=n) for n in range(40)]
    rolled = power.rolling_correlation(days, xs, ys)
    assert rolled[start + timedelta(days=18)] is None  # 19 days
    assert rolled[start + timedelta(days=19)] == D("1.0000")  # 20 days


def _rolling_by_window(days, xs, ys):  # type: ignore[no-untyped-def]
    """The rolling correlation as it was computed before the one-pass version: ``correlation`` over each window."""
    out = {}
    for day in days:
        span = [day - timedelta(days=back) for back in range(29, -1, -1)]
        pairs = [(xs[d], ys[d]) for d in span if d in xs and d in ys]
        out[day] = power.correlation([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) >= 20 else None
    return out


def test_rolling_correlation_by_hand_over_a_window_with_gaps():
    # Window of 2026-01-30 (2026-01-01 to 01-30), 20 common days (days 10 to 29; days 0-9 have no y):
    # x = 1..20 and y = x except y = 25 on the last day: Σx = 210, Σy = 215, Σxy = 2870 - 400 + 500 = 2970,
    # Σx² = 2870, Σy² = 2870 - 400 + 625 = 3095; r² = (20·2970 - 210·215)² / ((20·2870 - 210²)(20·3095 - 215²))
    # = 14250² / (13300 · 15675) = 0.974026...; r = 0.986928... -> 0.9869
    start = date(2026, 1, 1)
    xs = {start + timedelta(days=n): D(n - 9) for n in range(10, 30)}
    ys = {start + timedelta(days=n): D(n - 9) for n in range(10, 29)} | {start + timedelta(days=29): D(25)}
    ys |= {start - timedelta(days=1): D(99)}  # outside the window
    last = start + timedelta(days=29)
    assert power.rolling_correlation([last], xs, ys)[last] == D("0.9869")
    assert power.correlation(list(xs.values()), [ys[d] for d in xs]) == D("0.9869")


_PRICES = st.lists(st.decimals("-50", "500", places=2), min_size=71, max_size=71)
_GAPS = st.sets(st.integers(0, 70), max_size=20)  # days without a value: windows of fewer and of more than 20


@given(_PRICES, _GAPS, _PRICES, _GAPS)
def test_rolling_correlation_in_one_pass_equals_the_correlation_of_each_window(x_prices, x_gaps, y_prices, y_gaps):
    start = date(2026, 3, 1)
    xs = {start + timedelta(days=n): x for n, x in enumerate(x_prices) if n not in x_gaps}
    ys = {start + timedelta(days=n): y for n, y in enumerate(y_prices) if n not in y_gaps}
    days = [start + timedelta(days=n) for n in range(0, 71, 3)]
    assert power.rolling_correlation(days, xs, ys) == _rolling_by_window(days, xs, ys)


def test_mean_of_a_total_rounds_like_the_mean_of_the_values():
    # 23 x 10.00 + 10.12 = 240.12 over 24 hours = 10.005 -> 10.01 (half up); -0.12 / 24 = -0.005 -> -0.01
    assert power.mean_of_total(D("240.12"), 24) == power.mean([D("10.00")] * 23 + [D("10.12")]) == D("10.01")
    assert power.mean_of_total(D("-0.12"), 24) == power.mean([D("0.00")] * 23 + [D("-0.12")]) == D("-0.01")
    assert power.mean_of_total(D("1275.00"), 25) == D("51.00")
    assert power.mean_of_total(D("0"), 0) is None


def test_electricity_cost_and_spark_spread_by_hand():
    # 1.275 kW x 1.25 x 80.00 EUR/MWh / 1000 = 0.1275 EUR/GPUh
    cost = power.electricity_cost(power_draw_kw=D("1.275"), pue=D("1.25"), power_price=D("80.00"))
    assert cost == D("0.1275")
    assert power.spark_spread(compute_price=D("2.40"), cost=cost) == D("2.2725")
    # 0.813 x 1.18 x 91.37 / 1000 = 0.08765607... -> 0.0877 (half up)
    assert power.electricity_cost(power_draw_kw=D("0.813"), pue=D("1.18"), power_price=D("91.37")) == D("0.0877")
    # a negative power price makes electricity pay
    assert power.electricity_cost(power_draw_kw=D("1"), pue=D("1.5"), power_price=D("-10.00")) == D("-0.0150")


@given(st.decimals("0.10", "3.00", places=3), st.decimals("1.00", "3.00", places=2),
       st.decimals("-500", "4000", places=2), st.decimals("0", "200", places=2))
def test_spread_plus_cost_is_the_compute_price(kw, pue, price, compute):
    cost = power.electricity_cost(power_draw_kw=kw, pue=pue, power_price=price)
    assert power.spark_spread(compute_price=compute, cost=cost) + cost == compute
    assert abs(cost - kw * pue * price / 1000) <= D("0.00005")


def test_average_pue_is_gpu_weighted_and_needs_three_providers():
    sites = [power.SitePue(1, D("1.18"), 384), power.SitePue(1, D("1.35"), 128), power.SitePue(2, D("1.40"), 256)]
    assert power.average_pue(sites, min_members=3) == (D("1.50"), False)
    sites.append(power.SitePue(3, D("1.20"), 256))
    # (453.12 + 172.80 + 358.40 + 307.20) / 1024 = 1291.52 / 1024 = 1.26125 -> 1.2613 (half up)
    assert power.average_pue(sites, min_members=3) == (D("1.2613"), True)


def test_forward_price_takes_months_then_quarters_then_years_weighted_by_hours():
    day = date(2026, 12, 4)  # window: June 2027 .. December 2027
    assert power.forward_months(day)[0] == date(2027, 6, 1) and power.forward_months(day)[-1] == date(2027, 12, 1)
    quotes = [power.FutureQuote("M", date(2027, 6, 1), date(2027, 6, 30), D("2.00")),
              power.FutureQuote("Q", date(2027, 4, 1), date(2027, 6, 30), D("9.99")),  # June has its month
              power.FutureQuote("Q", date(2027, 7, 1), date(2027, 9, 30), D("2.30")),
              power.FutureQuote("Y", date(2027, 1, 1), date(2027, 12, 31), D("2.60"))]
    # June 720 h x 2.00, Jul-Sep 2208 h x 2.30, Oct 745 h + Nov 720 h + Dec 744 h = 2209 h x 2.60
    # (1440 + 5078.4 + 5743.4) / 5137 = 2.38696... -> 2.39
    assert power.forward_price(day, quotes) == (D("2.39"), 7)
    assert power.forward_price(day, quotes[:1]) == (D("2.00"), 1)
    assert power.forward_price(day, []) == (None, 0)
    assert power.month_hours(date(2027, 3, 1)) == 743 and power.month_hours(date(2027, 10, 1)) == 745


def test_spot_premium_and_signal():
    end = date(2026, 12, 4)
    base = {end - timedelta(days=n): D("2.00") for n in range(19)}
    assert power.trailing_spot(end, base) == (None, 19)
    base[end - timedelta(days=25)] = D("2.20")
    assert power.trailing_spot(end, base) == (D("2.01"), 20)  # 40.20 / 20
    assert power.premium(D("2.31"), D("2.10")) == D("0.1000")
    assert power.premium(D("2.32"), D("2.10")) == D("0.1048")
    assert power.premium(None, D("2.10")) is None
    days = [end - timedelta(days=n) for n in range(25, -1, -1)]
    high = dict.fromkeys(days, D("0.1048"))
    signals = power.signals(days, high)
    assert signals[days[18]] == power.BALANCED and signals[days[19]] == power.SCARCE  # the 20th day above
    high[end - timedelta(days=3)] = D("0.1000")  # not above: the run starts again
    assert power.signals(days, high)[end] == power.BALANCED
    low = dict.fromkeys(days, D("-0.2000"))
    assert power.signals(days, low)[end] == power.SURPLUS
    assert power.signals([end], {end: None})[end] is None


def _month(month: date, members: set[int], revenue: str, incentive: str) -> power.RevenueMonth:
    return power.RevenueMonth(month=month, members=frozenset(members), fee_revenue=D(revenue),
                              to_incentive_fund=D("0.00"), to_rnd_fund=D("0.00"), credits_granted=D("0.00"),
                              incentive_fund=D(incentive), rnd_fund=D("0.00"))


def test_revenue_rows_suppress_months_and_balances_of_fewer_than_three_members():
    rows = power.revenue_rows([
        _month(date(2026, 1, 1), {1, 2, 3}, "300.00", "60.00"),
        _month(date(2026, 2, 1), {1, 2}, "200.00", "100.00"),  # two members: hidden
        _month(date(2026, 3, 1), {1, 2, 3, 4}, "400.00", "180.00"),  # balance would give February away
        _month(date(2026, 4, 1), {5}, "50.00", "190.00"),  # hidden, but February and April have 3 members
        _month(date(2026, 5, 1), {6, 7}, "70.00", "204.00"),
        _month(date(2026, 6, 1), set(), "0.00", "204.00"),  # the balance still tells May's two members
    ], min_members=3)
    assert [(r.fee_revenue, r.incentive_fund) for r in rows] == [
        (D("300.00"), D("60.00")), (None, None), (D("400.00"), None), (None, D("190.00")), (None, None),
        (D("0.00"), None)]
    assert rows[0].members == 3 and rows[1].members is None and rows[5].members == 0


HEADER = "Datum von;Datum bis;Deutschland/Luxemburg [€/MWh] Originalauflösungen;Belgien [€/MWh] Originalauflösungen\n"


def test_smard_hourly_file_with_german_numbers():
    text = "\ufeff" + HEADER + ("01.12.2026 00:00;01.12.2026 01:00;85,12;90,00\n"
                               "01.12.2026 01:00;01.12.2026 02:00;1.234,50;-\n"
                               "01.12.2026 02:00;01.12.2026 03:00;-5,10;1,00\n"
                               "01.12.2026 03:00;01.12.2026 04:00;-;1,00\n")
    hours = power_csv.parse(text)
    assert [(h.hour_start, h.price) for h in hours] == [
        (datetime(2026, 11, 30, 23, tzinfo=UTC), D("85.12")), (datetime(2026, 12, 1, 0, tzinfo=UTC), D("1234.50")),
        (datetime(2026, 12, 1, 1, tzinfo=UTC), D("-5.10"))]


def _day(day: str, labels: list[str]) -> str:
    return "".join(f"{day} {label};{day} {label};{n},00;0\n" for n, label in enumerate(labels, start=10))


def test_smard_days_of_23_and_25_hours():
    spring = [f"{h:02d}:00" for h in range(24) if h != 2]
    hours = power_csv.parse(HEADER + _day("28.03.2027", spring))
    assert len(hours) == 23 and hours[2].hour_start == datetime(2027, 3, 28, 1, tzinfo=UTC)
    autumn = [f"{h:02d}:00" for h in range(3)] + ["02:00"] + [f"{h:02d}:00" for h in range(3, 24)]
    hours = power_csv.parse(HEADER + _day("31.10.2027", autumn))
    assert len(hours) == 25
    assert hours[2].hour_start == datetime(2027, 10, 31, 0, tzinfo=UTC)  # 02:00 summer time
    assert hours[3].hour_start == datetime(2027, 10, 31, 1, tzinfo=UTC)  # 02:00 winter time
    assert hours[3].price == D("13.00")


def test_smard_quarter_hours_are_averaged_and_the_old_layout_is_read():
    text = HEADER + ("01.12.2026 00:00;01.12.2026 00:15;10,00;0\n01.12.2026 00:15;01.12.2026 00:30;20,00;0\n"
                     "01.12.2026 00:30;01.12.2026 00:45;30,00;0\n01.12.2026 00:45;01.12.2026 01:00;40,01;0\n")
    assert [h.price for h in power_csv.parse(text)] == [D("25.00")]  # 100.01 / 4 = 25.0025
    old = "Datum;Anfang;Ende;Deutschland/Luxemburg [€/MWh] Berechnete Auflösungen\n15.01.2024;00:00;01:00;39,01\n"
    assert power_csv.parse(old)[0] == power_csv.HourPrice(datetime(2024, 1, 14, 23, tzinfo=UTC), D("39.01"))


@pytest.mark.parametrize(("body", "message"), [
    ("01.12.2026 00:00;01.12.2026 01:00;85,12;0\n01.12.2026 01:00;01.12.2026 02:00;85.1x;0\n", "Line 3: "),
    ("01.12.2026 00:00;01.12.2026 01:00;85,12;0\n1.12.2026 01:00;01.12.2026 02:00;85,12;0\n", "Line 3: "),
    ("01.12.2026 00:00;01.12.2026 01:00;85,12;0\n01.12.2026 00:00;01.12.2026 01:00;85,12;0\n", "given twice"),
    ("01.12.2026 00:00;01.12.2026 00:15;85,12;0\n", "1 of its"),
    ("01.12.2026 00:00;01.12.2026 01:00;9999,00;0\n", "outside"),
])
def test_smard_bad_rows_name_their_line(body, message):
    with pytest.raises(power_csv.SmardError) as raised:
        power_csv.parse(HEADER + body)
    assert message in str(raised.value)


def test_smard_wrong_file():
    with pytest.raises(power_csv.SmardError, match="not a SMARD price export"):
        power_csv.parse("a,b,c\n1,2,3\n")


@pytest.mark.django_db
def test_demo_power_history_is_deterministic_marked_and_idempotent():
    from market.demo_power import seed_power_history
    from market.models import PowerPrice

    added = seed_power_history(today=date(2026, 10, 28), days=3)  # 24.-26.10.2026: 24 + 25 + 24 hours
    assert added == 73 and PowerPrice.objects.filter(is_demo=True).count() == 73
    first = list(PowerPrice.objects.order_by("hour_start").values_list("price", flat=True))
    assert seed_power_history(today=date(2026, 10, 28), days=3) == 0
    PowerPrice.objects.all().delete()
    seed_power_history(today=date(2026, 10, 28), days=3)
    assert list(PowerPrice.objects.order_by("hour_start").values_list("price", flat=True)) == first
