"""The pure calendar: DST days, symbols, futures periods and trading windows."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market import calendar as cal
from market.calendar import CalendarError, FuturesPeriod


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- delivery hours -----------------------------------------------------------------


def test_spring_forward_day_has_23_hours_and_no_hour_02():
    hours = cal.day_hours(date(2026, 3, 29))

    assert len(hours) == 23
    labels = [h.label for h in hours]
    assert labels == ["00", "01"] + [f"{h:02d}" for h in range(3, 24)]
    assert "02" not in labels
    # 01:00 CET is 00:00 UTC; 03:00 CEST is 01:00 UTC: no gap in UTC.
    assert cal.delivery_hour(date(2026, 3, 29), "01").start == utc(2026, 3, 29, 0)
    assert cal.delivery_hour(date(2026, 3, 29), "03").start == utc(2026, 3, 29, 1)
    assert hours[0].start == utc(2026, 3, 28, 23)
    assert hours[-1].end == utc(2026, 3, 29, 22)


def test_autumn_day_has_25_hours_with_02A_and_02B():
    hours = cal.day_hours(date(2026, 10, 25))

    assert len(hours) == 25
    assert [h.label for h in hours[:5]] == ["00", "01", "02A", "02B", "03"]
    a = cal.delivery_hour(date(2026, 10, 25), "02A")
    b = cal.delivery_hour(date(2026, 10, 25), "02B")
    assert (a.start, a.end) == (utc(2026, 10, 25, 0), utc(2026, 10, 25, 1))
    assert (b.start, b.end) == (utc(2026, 10, 25, 1), utc(2026, 10, 25, 2))
    assert hours[0].start == utc(2026, 10, 24, 22)
    assert hours[-1].end == utc(2026, 10, 25, 23)


def test_normal_day_has_24_hours_labelled_00_to_23():
    hours = cal.day_hours(date(2026, 11, 29))

    assert [h.label for h in hours] == [f"{h:02d}" for h in range(24)]
    assert cal.delivery_hour(date(2026, 11, 29), "14").start == utc(2026, 11, 29, 13)


def test_hour_at_finds_the_repeated_hours():
    assert cal.hour_at(utc(2026, 10, 25, 0, 30)).label == "02A"
    assert cal.hour_at(utc(2026, 10, 25, 1, 59, 59)).label == "02B"
    assert cal.hour_at(utc(2026, 10, 25, 2)).label == "03"
    with pytest.raises(CalendarError):
        cal.hour_at(datetime(2026, 10, 25, 2))  # noqa: DTZ001 - naive on purpose


# --- symbols -------------------------------------------------------------------------

SPEC_SYMBOLS = [
    # symbol, UTC start, UTC end, hours
    ("H100.DE.2026-11-29T14", utc(2026, 11, 29, 13), utc(2026, 11, 29, 14), 1),
    ("H100.DE-BY.2026-10-25T02B", utc(2026, 10, 25, 1), utc(2026, 10, 25, 2), 1),
    ("H100.DE.M2027-01", utc(2026, 12, 31, 23), utc(2027, 1, 31, 23), 744),
    ("H100.DE.Q2027-2", utc(2027, 3, 31, 22), utc(2027, 6, 30, 22), 2184),
    ("H100.DE.Y2028", utc(2027, 12, 31, 23), utc(2028, 12, 31, 23), 8784),
]


@pytest.mark.parametrize(("symbol", "start", "end", "hours"), SPEC_SYMBOLS)
def test_symbols_of_the_spec_parse_and_format(symbol, start, end, hours):
    parsed = cal.parse_symbol(symbol)

    assert parsed.gpu_class == "H100"
    assert cal.period_interval(parsed.period) == (start, end)
    assert cal.period_hours(parsed.period) == hours
    assert cal.format_symbol(parsed.gpu_class, parsed.zone, parsed.period) == symbol
    assert str(parsed) == symbol


def test_parse_symbol_returns_the_parts():
    parsed = cal.parse_symbol("L40S.DE-BY.2026-10-25T02A")
    assert parsed.zone == "DE-BY"
    assert parsed.period == cal.delivery_hour(date(2026, 10, 25), "02A")
    assert cal.parse_symbol("H100.DE.Q2027-2").period == FuturesPeriod("Q", 2027, 2)


@pytest.mark.parametrize("text", [
    "H100.DE.2026-03-29T02",      # no 02 on the spring-forward day
    "H100.DE.2026-11-29T02A",     # 02A only on the October change day
    "H100.DE.2026-10-25T02",      # the October day has 02A/02B, not 02
    "H100.DE.2026-10-25T03A",
    "H100.DE.2026-11-29T24",
    "H100.DE.2026-11-29T4",
    "H100.DE.2026-02-30T01",      # no such date
    "H100.DE.2026-11-29",
    "H100.DE.M2027-13",           # month 13
    "H100.DE.M2027-00",
    "H100.DE.M2027-1",
    "H100.DE.Q2027-5",
    "H100.DE.Q2027-0",
    "H100.DE.Q2027-02",
    "H100.DE.Y28",
    "H100.DE.Y1999",              # outside the calendar's years
    "H100.DE.Y2028-1",
    "H100.XX.Y2028",              # unknown zone format
    "H100.DE-XX.Y2028",           # not a federal state
    "H100.DE-by.Y2028",
    "H100.de.Y2028",
    "h100.DE.Y2028",              # class codes are upper case
    "H.DE.Y2028",
    "H100.Y2028",
    "H100.DE.Y2028.X",
    " H100.DE.Y2028",
    "H100.DE.Y2028\n",
    "H100.DE.２０２８-01-01T01",  # non-ASCII digits
    "",
])
def test_parse_symbol_rejects_nonsense(text):
    with pytest.raises(CalendarError):
        cal.parse_symbol(text)


def test_parse_day_reads_the_days_of_urls():
    assert cal.parse_day("2026-10-25") == date(2026, 10, 25)
    assert len(cal.day_hours(cal.parse_day("2026-03-29"))) == 23


@pytest.mark.parametrize("text", ["20261025", "2026-10-25T00", "2026-02-30", "1999-12-31", "2026-1-5",
                                  "２０２６-10-25", "2026-10-25\n", ""])
def test_parse_day_rejects_what_it_would_not_write(text):
    with pytest.raises(CalendarError):
        cal.parse_day(text)


def test_format_symbol_rejects_unknown_zone_and_bad_class():
    hour = cal.delivery_hour(date(2026, 11, 29), "14")
    with pytest.raises(CalendarError):
        cal.format_symbol("H100", "DE-XX", hour)
    with pytest.raises(CalendarError):
        cal.format_symbol("H 100", "DE", hour)


# --- futures periods -----------------------------------------------------------------


@pytest.mark.parametrize(("code", "hours"), [
    ("M2026-03", 743),   # spring forward
    ("M2026-10", 745),   # fall back
    ("M2026-11", 720),
    ("Q2026-1", 2159),
    ("Q2026-4", 2209),
    ("Y2027", 8760),
    ("Y2028", 8784),     # leap year
])
def test_futures_period_hours_are_elapsed_hours(code, hours):
    assert cal.period_hours(cal.parse_period(code)) == hours


def codes(periods):
    return [cal.period_code(p) for p in periods]


def test_listed_futures_are_the_periods_after_the_current_one():
    assert codes(cal.listed_futures(date(2026, 11, 29))) == [
        "M2026-12", "M2027-01", "M2027-02", "M2027-03", "M2027-04", "M2027-05",
        "Q2027-1", "Q2027-2", "Q2027-3", "Q2027-4",
        "Y2027", "Y2028",
    ]


def test_listed_futures_roll_at_local_new_year():
    assert codes(cal.listed_futures(date(2026, 12, 31))) == [
        "M2027-01", "M2027-02", "M2027-03", "M2027-04", "M2027-05", "M2027-06",
        "Q2027-1", "Q2027-2", "Q2027-3", "Q2027-4", "Y2027", "Y2028",
    ]
    assert codes(cal.listed_futures(date(2027, 1, 1))) == [
        "M2027-02", "M2027-03", "M2027-04", "M2027-05", "M2027-06", "M2027-07",
        "Q2027-2", "Q2027-3", "Q2027-4", "Q2028-1", "Y2028", "Y2029",
    ]


def test_futures_listing_start():
    assert cal.futures_listing_start(FuturesPeriod("M", 2027, 7)) == date(2027, 1, 1)
    assert cal.futures_listing_start(FuturesPeriod("Q", 2028, 1)) == date(2027, 1, 1)
    assert cal.futures_listing_start(FuturesPeriod("Y", 2029)) == date(2027, 1, 1)


def test_futures_period_validates_itself():
    for kind, year, number in [("M", 2027, 13), ("Q", 2027, 5), ("Y", 2027, 2), ("W", 2027, 1), ("M", 1999, 1)]:
        with pytest.raises(CalendarError):
            FuturesPeriod(kind, year, number)  # type: ignore[arg-type]


# --- trading windows ---------------------------------------------------------------


def test_intraday_opens_at_15_local_on_the_day_before():
    # 2026-03-28 is still winter time (CET, +01:00); 2026-03-29 summer (+02:00).
    assert cal.intraday_opens_at(date(2026, 3, 29)) == utc(2026, 3, 28, 14)
    assert cal.intraday_opens_at(date(2026, 3, 30)) == utc(2026, 3, 29, 13)
    assert cal.intraday_opens_at(date(2026, 10, 25)) == utc(2026, 10, 24, 13)


def test_intraday_closes_lead_time_before_delivery():
    b = cal.delivery_hour(date(2026, 10, 25), "02B")
    assert cal.intraday_closes_at(b.start, 30) == utc(2026, 10, 25, 0, 30)


def test_dayahead_gate_closure_and_book_opening():
    assert cal.dayahead_gate_closure(date(2026, 11, 29)) == utc(2026, 11, 28, 11)
    assert cal.dayahead_book_opens(date(2026, 11, 29)) == utc(2026, 11, 14, 23)


@pytest.mark.parametrize(("day", "business"), [
    (date(2026, 11, 30), True),    # Monday
    (date(2026, 11, 28), False),   # Saturday
    (date(2026, 4, 3), False),     # Good Friday
    (date(2026, 4, 6), False),     # Easter Monday
    (date(2026, 5, 14), False),    # Ascension
    (date(2026, 5, 25), False),    # Whit Monday
    (date(2026, 10, 3), False),    # German Unity Day (a Saturday anyway)
    (date(2026, 12, 24), False),
    (date(2026, 12, 31), False),
    (date(2027, 3, 26), False),    # Good Friday 2027
    (date(2027, 3, 25), True),
])
def test_business_days(day, business):
    assert cal.is_business_day(day) is business


def test_futures_session_is_08_to_18_local_on_business_days():
    # Monday 2026-11-30, CET (+01:00).
    assert not cal.futures_session_open(utc(2026, 11, 30, 6, 59, 59))
    assert cal.futures_session_open(utc(2026, 11, 30, 7))
    assert cal.futures_session_open(utc(2026, 11, 30, 16, 59, 59))
    assert not cal.futures_session_open(utc(2026, 11, 30, 17))
    assert not cal.futures_session_open(utc(2026, 11, 28, 12))  # Saturday


# --- properties ------------------------------------------------------------------------

days = st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 12, 31))


@given(days)
def test_hours_of_a_day_are_contiguous_and_cover_local_midnight_to_midnight(day):
    hours = cal.day_hours(day)
    start, end = cal.local_midnight(day), cal.local_midnight(day + timedelta(days=1))

    assert hours[0].start == start
    assert hours[-1].end == end
    for before, after in zip(hours, hours[1:], strict=False):
        assert before.end == after.start
    assert all(h.end - h.start == cal.HOUR for h in hours)
    assert len(hours) == (end - start) // cal.HOUR
    assert len(hours) in (23, 24, 25)
    assert len({h.label for h in hours}) == len(hours)
    assert all(h.start.tzinfo is UTC for h in hours)


@given(days)
def test_every_instant_of_a_day_belongs_to_one_of_its_hours(day):
    for hour in cal.day_hours(day):
        assert cal.hour_at(hour.start) == hour
        assert cal.hour_at(hour.end - timedelta(microseconds=1)) == hour


gpu_classes = st.from_regex(r"\A[A-Z0-9]{2,16}\Z")
zones = st.sampled_from(cal.ZONE_CODES)
hour_periods = days.flatmap(lambda d: st.sampled_from(cal.day_hours(d)))
futures_periods = st.one_of(
    st.builds(FuturesPeriod, st.just("M"), st.integers(2020, 2040), st.integers(1, 12)),
    st.builds(FuturesPeriod, st.just("Q"), st.integers(2020, 2040), st.integers(1, 4)),
    st.builds(FuturesPeriod, st.just("Y"), st.integers(2020, 2040)),
)
periods = st.one_of(hour_periods, futures_periods)


@given(gpu_classes, zones, periods)
def test_format_parse_round_trip(gpu_class, zone, period):
    symbol = cal.format_symbol(gpu_class, zone, period)
    parsed = cal.parse_symbol(symbol)

    assert parsed == cal.Symbol(gpu_class, zone, period)
    assert cal.format_symbol(parsed.gpu_class, parsed.zone, parsed.period) == symbol


@given(gpu_classes, zones, hour_periods)
def test_every_hour_symbol_parses_back_to_the_same_utc_interval(gpu_class, zone, hour):
    parsed = cal.parse_symbol(cal.format_symbol(gpu_class, zone, hour))

    assert cal.period_interval(parsed.period) == (hour.start, hour.end)
    assert cal.period_hours(parsed.period) == 1


@given(futures_periods)
@settings(deadline=None)  # a year is 365 day computations: over 200 ms on a loaded 2-core machine
def test_futures_hours_are_the_sum_of_their_days(period):
    day, total = period.first_day, 0
    while day < period.end_day:
        total += len(cal.day_hours(day))
        day += timedelta(days=1)
    assert cal.period_hours(period) == total


@given(days)
def test_twelve_futures_are_listed_every_day_each_within_its_listing_window(day):
    listed = cal.listed_futures(day)

    assert len(listed) == 12
    for period in listed:
        assert cal.futures_listing_start(period) <= day < period.first_day


@given(days)
def test_a_future_is_listed_from_its_listing_start_until_delivery(day):
    # Whatever is listed tomorrow and not today starts being listed tomorrow.
    today, tomorrow = set(cal.listed_futures(day)), set(cal.listed_futures(day + timedelta(days=1)))
    for period in tomorrow - today:
        assert cal.futures_listing_start(period) == day + timedelta(days=1)
    for period in today - tomorrow:
        assert period.first_day == day + timedelta(days=1)


def test_a_futures_last_session_ends_at_18_on_the_business_day_before_delivery():
    # Q1 2027 starts on Friday 1 January; the 31st is an exchange holiday, so the last session is the 30th.
    january = cal.local_midnight(date(2027, 1, 1))
    assert cal.futures_last_trading(january) == cal.local_time(date(2026, 12, 30), time(18, 0))
    # A Monday start: the Friday before.
    assert cal.futures_last_trading(cal.local_midnight(date(2027, 2, 1))) \
        == cal.local_time(date(2027, 1, 29), time(18, 0))
