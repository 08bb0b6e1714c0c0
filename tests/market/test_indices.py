"""The pure index rules (market/indices.py): hand-computed days, DST days,
hours without a price, rounding, the canonical document and the day's
fingerprint; hypothesis properties against an independent computation."""

import hashlib
import json
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market import calendar
from market import indices as ix

WEDNESDAY = date(2026, 11, 25)
SPRING = date(2026, 3, 29)  # 23 hours, a Sunday
AUTUMN = date(2026, 10, 25)  # 25 hours (02A, 02B), a Sunday
CHRISTMAS = date(2026, 12, 25)  # a Friday and an exchange holiday


def hours_of(day: date, prices: dict[str, str | None], volume: int = 10) -> list[ix.AuctionHour]:
    return [ix.AuctionHour(hour=label, price=None if price is None else Decimal(price),
                           volume=0 if price is None else volume)
            for label, price in prices.items()]


def every_hour(day: date, price_of) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    return {hour.label: price_of(hour) for hour in calendar.day_hours(day)}


def local_hour(hour: calendar.DeliveryHour) -> int:
    return hour.start.astimezone(calendar.BERLIN).hour


def record(kind, day, hours):  # type: ignore[no-untyped-def]
    build = {ix.BASE: ix.base_record, ix.PEAK: ix.peak_record, ix.INTRADAY_VWAP: ix.intraday_vwap_record}[kind]
    return build(day=day, gpu_class="H100", zone="DE", hours=hours)


# --- hand-computed days ------------------------------------------------------------------------


def test_a_weekday_base_and_peak_by_hand():
    # 00-07 at 10.00, 08-19 at 14.00, 20-23 at 11.00: Base (80 + 168 + 44) / 24 = 12.1666… -> 12.17.
    prices = every_hour(WEDNESDAY, lambda h: "10.00" if local_hour(h) < 8 else "14.00" if local_hour(h) < 20
                        else "11.00")
    hours = hours_of(WEDNESDAY, prices, volume=7)

    base = record(ix.BASE, WEDNESDAY, hours)
    peak = record(ix.PEAK, WEDNESDAY, hours)

    assert base.value == Decimal("12.17")
    assert base.volume == 24 * 7
    assert peak.value == Decimal("14.00")
    assert peak.volume == 12 * 7
    assert [row["hour"] for row in peak.document["hours"]] == [f"{h:02d}" for h in range(8, 20)]
    assert len(base.document["hours"]) == 24


def test_the_23_hour_day_divides_by_23_and_has_no_hour_02():
    labels = [hour.label for hour in calendar.day_hours(SPRING)]
    assert len(labels) == 23 and "02" not in labels
    # 22 hours at 1.00 and one at 24.00: 46 / 23 = 2.00 exactly (over 24 it would be 1.92).
    prices = {label: ("24.00" if label == "12" else "1.00") for label in labels}

    base = record(ix.BASE, SPRING, hours_of(SPRING, prices))

    assert base.value == Decimal("2.00")
    assert [row["hour"] for row in base.document["hours"]] == labels
    with pytest.raises(ix.IndexInputError, match="no hour '02'"):
        record(ix.BASE, SPRING, [ix.AuctionHour(hour="02", price=Decimal("1.00"), volume=1)])


def test_the_25_hour_day_counts_02a_and_02b():
    labels = [hour.label for hour in calendar.day_hours(AUTUMN)]
    assert labels[:5] == ["00", "01", "02A", "02B", "03"] and len(labels) == 25
    # 23 hours at 10.00, 02A at 12.00, 02B at 13.00: 255 / 25 = 10.20 (over 24 it would be 10.63).
    prices = {label: {"02A": "12.00", "02B": "13.00"}.get(label, "10.00") for label in labels}

    base = record(ix.BASE, AUTUMN, hours_of(AUTUMN, prices, volume=4))

    assert base.value == Decimal("10.20")
    assert base.volume == 100
    assert base.document["hours"][2:4] == [{"hour": "02A", "price": "12.00", "volume": 4},
                                           {"hour": "02B", "price": "13.00", "volume": 4}]


def test_hours_without_a_price_are_left_out_of_the_mean():
    # Three priced hours: (10.00 + 10.01 + 10.01) / 3 = 10.00666… -> 10.01; the 21 others have no bids.
    prices = every_hour(WEDNESDAY, lambda h: None)
    prices.update({"03": "10.00", "09": "10.01", "21": "10.01"})

    base = record(ix.BASE, WEDNESDAY, hours_of(WEDNESDAY, prices))
    peak = record(ix.PEAK, WEDNESDAY, hours_of(WEDNESDAY, prices))

    assert base.value == Decimal("10.01")
    assert base.volume == 30
    assert peak.value == Decimal("10.01")  # only 09 of the peak hours has a price
    assert base.document["hours"][0] == {"hour": "00", "price": None, "volume": 0}


def test_an_hour_the_auction_has_no_row_for_counts_as_no_price():
    base = record(ix.BASE, WEDNESDAY, hours_of(WEDNESDAY, {"10": "5.00"}))

    assert base.value == Decimal("5.00")
    assert len(base.document["hours"]) == 24


def test_a_day_without_any_price_has_no_value():
    base = record(ix.BASE, WEDNESDAY, hours_of(WEDNESDAY, every_hour(WEDNESDAY, lambda h: None)))

    assert base.value is None
    assert base.document["value"] is None


def test_rounding_is_half_up_to_the_cent():
    # 10.00 and 10.01: 10.005 -> 10.01 (half up; half to even would give 10.00).
    assert record(ix.BASE, WEDNESDAY, hours_of(WEDNESDAY, {"01": "10.00", "02": "10.01"})).value == Decimal("10.01")
    # 0.01, 0.02 and 0.02: 0.01666… -> 0.02; 0.01, 0.01, 0.02: 0.01333… -> 0.01.
    assert record(ix.BASE, WEDNESDAY, hours_of(WEDNESDAY, {"01": "0.01", "02": "0.02", "03": "0.02"})).value \
        == Decimal("0.02")
    assert record(ix.BASE, WEDNESDAY, hours_of(WEDNESDAY, {"01": "0.01", "02": "0.01", "03": "0.02"})).value \
        == Decimal("0.01")


def test_no_peak_on_weekends_and_a_peak_on_a_weekday_holiday():
    saturday = date(2026, 11, 28)
    prices = every_hour(saturday, lambda h: "3.00")

    peak = record(ix.PEAK, saturday, hours_of(saturday, prices))

    assert peak.value is None and peak.volume == 0 and peak.document["hours"] == []
    assert ix.peak_labels(SPRING) == () and ix.peak_labels(AUTUMN) == ()
    # EEX counts every weekday: Christmas Day on a Friday has its 12 peak hours.
    assert calendar.is_business_day(CHRISTMAS) is False
    assert len(ix.peak_labels(CHRISTMAS)) == 12
    assert record(ix.PEAK, CHRISTMAS, hours_of(CHRISTMAS, every_hour(CHRISTMAS, lambda h: "3.00"))).value \
        == Decimal("3.00")


def test_intraday_vwap_by_hand_from_the_exact_sums():
    # 14: 3 @ 12.30 and 1 @ 12.31 (49.21 / 4 = 12.3025 -> 12.30); 15: 2 @ 9.99. Day: 69.19 / 6 = 11.5316… -> 11.53.
    hours = ix.trade_hours([("14", Decimal("12.30"), 3), ("14", Decimal("12.31"), 1), ("15", Decimal("9.99"), 2)])

    vwap = record(ix.INTRADAY_VWAP, WEDNESDAY, hours)

    assert vwap.value == Decimal("11.53")
    assert vwap.volume == 6
    traded = [row for row in vwap.document["hours"] if row["quantity"]]
    assert traded == [{"hour": "14", "notional": "49.21", "quantity": 4, "trades": 2, "vwap": "12.30"},
                      {"hour": "15", "notional": "19.98", "quantity": 2, "trades": 1, "vwap": "9.99"}]
    assert len(vwap.document["hours"]) == 24
    assert vwap.document["hours"][0] == {"hour": "00", "notional": "0.00", "quantity": 0, "trades": 0, "vwap": None}


def test_the_day_vwap_comes_from_the_exact_sums_not_the_rounded_hourly_vwaps():
    # 01: 1 @ 0.01 and 1 @ 0.02 (0.015 -> hourly 0.02); 02: 2 @ 0.01. Exact: 0.05 / 4 = 0.0125 -> 0.01;
    # weighting the rounded hourly VWAPs would give (0.02·2 + 0.01·2) / 4 = 0.015 -> 0.02.
    hours = ix.trade_hours([("01", Decimal("0.01"), 1), ("01", Decimal("0.02"), 1), ("02", Decimal("0.01"), 2)])

    vwap = record(ix.INTRADAY_VWAP, WEDNESDAY, hours)

    assert [row["vwap"] for row in vwap.document["hours"][1:3]] == ["0.02", "0.01"]
    assert vwap.value == Decimal("0.01")


def test_intraday_vwap_on_the_25_hour_day_keeps_02a_and_02b_apart():
    hours = ix.trade_hours([("02A", Decimal("4.00"), 1), ("02B", Decimal("5.00"), 3)])

    vwap = record(ix.INTRADAY_VWAP, AUTUMN, hours)

    assert vwap.value == Decimal("4.75")  # 19.00 / 4
    assert [row["vwap"] for row in vwap.document["hours"][2:4]] == ["4.00", "5.00"]
    assert len(vwap.document["hours"]) == 25


def test_no_trades_no_vwap():
    vwap = record(ix.INTRADAY_VWAP, WEDNESDAY, [])

    assert vwap.value is None and vwap.volume == 0


def test_bad_inputs_are_refused():
    with pytest.raises(ix.IndexInputError, match="twice"):
        record(ix.BASE, WEDNESDAY, hours_of(WEDNESDAY, {"01": "1.00"}) * 2)
    with pytest.raises(ix.IndexInputError, match="cents"):
        record(ix.BASE, WEDNESDAY, [ix.AuctionHour(hour="01", price=Decimal("1.005"), volume=1)])
    with pytest.raises(ix.IndexInputError, match="no hour '02A'"):
        record(ix.INTRADAY_VWAP, WEDNESDAY, ix.trade_hours([("02A", Decimal("1.00"), 1)]))


# --- the canonical document and the fingerprints ----------------------------------------------


def test_the_canonical_json_is_sorted_compact_and_hashes_to_sha256():
    base = record(ix.BASE, WEDNESDAY, hours_of(WEDNESDAY, {"01": "2.50"}, volume=3))

    text = ix.canonical_json(base.document).decode()

    assert text.startswith('{"date":"2026-11-25","demo":false,"gpu_class":"H100","hours":[{"hour":"00",'
                           '"price":null,"volume":0},{"hour":"01","price":"2.50","volume":3},')
    assert text.endswith('],"index":"base","methodology_version":"v1","value":"2.50","volume":3,"zone":"DE"}')
    assert " " not in text
    assert base.sha256 == hashlib.sha256(text.encode()).hexdigest()
    # The document as anyone reads it back (JSON, any key order) hashes the same.
    shuffled = json.loads(json.dumps(dict(reversed(list(base.document.items())))))
    assert ix.document_sha256(shuffled) == base.sha256


def test_the_document_commits_to_identity_and_demo_mark():
    hours = hours_of(WEDNESDAY, {"01": "2.50"})
    real = ix.base_record(day=WEDNESDAY, gpu_class="H100", zone="DE", hours=hours)
    other_zone = ix.base_record(day=WEDNESDAY, gpu_class="H100", zone="DE-BY", hours=hours)
    demo = ix.base_record(day=WEDNESDAY, gpu_class="H100", zone="DE", hours=hours, demo=True)

    assert len({real.sha256, other_zone.sha256, demo.sha256}) == 3
    assert demo.document["demo"] is True


def test_the_day_fingerprint_hashes_the_values_hashes_in_kind_order():
    a, b, c = "a" * 64, "b" * 64, "c" * 64

    assert ix.day_fingerprint({"intraday_vwap": c, "base": a, "peak": b}) \
        == hashlib.sha256((a + b + c).encode("ascii")).hexdigest()
    assert ix.day_fingerprint({"base": a, "intraday_vwap": c}) == hashlib.sha256((a + c).encode()).hexdigest()
    with pytest.raises(ix.IndexInputError):
        ix.day_fingerprint({"offpeak": a})


def test_a_value_is_recomputed_from_its_document_alone():
    prices = every_hour(AUTUMN, lambda h: f"{3 + len(h.label)}.{local_hour(h):02d}")
    for kind, hours in ((ix.BASE, hours_of(AUTUMN, prices)), (ix.PEAK, hours_of(WEDNESDAY, {"09": "1.00"})),
                        (ix.INTRADAY_VWAP, ix.trade_hours([("03", Decimal("7.77"), 5)]))):
        day = WEDNESDAY if kind == ix.PEAK else AUTUMN
        built = record(kind, day, hours)
        document = json.loads(ix.canonical_json(built.document))
        assert ix.value_from_document(document) == built.value


# --- properties ---------------------------------------------------------------------------------

cents = st.integers(min_value=0, max_value=20_000).map(lambda c: Decimal(c).scaleb(-2).quantize(ix.CENT))
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2199, 12, 30))


def half_up_mean(values: list[Decimal]) -> Decimal:
    """An independent mean: Decimal arithmetic at 60 digits, quantised half up."""
    with localcontext() as context:
        context.prec = 60
        return (sum(values, Decimal(0)) / len(values)).quantize(ix.CENT, rounding=ROUND_HALF_UP)


@st.composite
def priced_days(draw):  # type: ignore[no-untyped-def]
    day = draw(days)
    labels = [hour.label for hour in calendar.day_hours(day)]
    prices = draw(st.lists(st.one_of(st.none(), cents), min_size=len(labels), max_size=len(labels)))
    return day, dict(zip(labels, prices, strict=True))


@given(priced_days())
@settings(max_examples=200, deadline=None)
def test_base_is_the_half_up_mean_of_the_priced_hours_and_within_their_range(case):  # type: ignore[no-untyped-def]
    day, prices = case
    hours = [ix.AuctionHour(hour=label, price=price, volume=1 if price is not None else 0)
             for label, price in prices.items()]
    given_prices = [price for price in prices.values() if price is not None]

    base = ix.base_record(day=day, gpu_class="H100", zone="DE", hours=hours)

    if not given_prices:
        assert base.value is None
        return
    assert base.value == half_up_mean(given_prices)
    assert min(given_prices) <= base.value <= max(given_prices)
    # Leaving the unpriced hours out of the input changes nothing but the document's hash.
    priced_only = ix.base_record(day=day, gpu_class="H100", zone="DE",
                                 hours=[hour for hour in hours if hour.price is not None])
    assert priced_only.value == base.value and priced_only.sha256 == base.sha256


@given(priced_days())
@settings(max_examples=200, deadline=None)
def test_peak_takes_the_12_weekday_hours_08_to_19_only(case):  # type: ignore[no-untyped-def]
    day, prices = case
    hours = [ix.AuctionHour(hour=label, price=price, volume=0) for label, price in prices.items()]

    peak = ix.peak_record(day=day, gpu_class="H100", zone="DE", hours=hours)

    labels = [row["hour"] for row in peak.document["hours"]]
    if day.weekday() >= 5:
        assert labels == [] and peak.value is None
        return
    assert labels == [f"{h:02d}" for h in range(8, 20)]
    peak_prices = [prices[label] for label in labels if prices[label] is not None]
    assert peak.value == (half_up_mean(peak_prices) if peak_prices else None)


trades_strategy = st.lists(st.tuples(st.integers(min_value=0, max_value=22), cents,
                                     st.integers(min_value=1, max_value=10_000)), max_size=40)


@given(days, trades_strategy, st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_vwap_is_the_quantity_weighted_mean_whatever_the_order_or_split(day, trades, rng):  # type: ignore[no-untyped-def]
    labels = [hour.label for hour in calendar.day_hours(day)]
    trades = [(labels[index], price, quantity) for index, price, quantity in trades]

    vwap = ix.intraday_vwap_record(day=day, gpu_class="H100", zone="DE", hours=ix.trade_hours(trades))

    if not trades:
        assert vwap.value is None
        return
    with localcontext() as context:
        context.prec = 60
        expected = (sum(price * quantity for _, price, quantity in trades)
                    / sum(quantity for *_, quantity in trades)).quantize(ix.CENT, rounding=ROUND_HALF_UP)
    assert vwap.value == expected
    assert min(price for _, price, _ in trades) <= vwap.value <= max(price for _, price, _ in trades)
    assert vwap.volume == sum(quantity for *_, quantity in trades)
    # The same trades in another order, one of them split in two, give the same document but the trade count.
    shuffled = list(trades)
    rng.shuffle(shuffled)
    label, price, quantity = shuffled[0]
    if quantity > 1:
        shuffled[:1] = [(label, price, 1), (label, price, quantity - 1)]
    again = ix.intraday_vwap_record(day=day, gpu_class="H100", zone="DE", hours=ix.trade_hours(shuffled))
    assert again.value == vwap.value
    assert [(row["hour"], row["notional"], row["quantity"]) for row in again.document["hours"]] \
        == [(row["hour"], row["notional"], row["quantity"]) for row in vwap.document["hours"]]


@given(priced_days())
@settings(max_examples=100, deadline=None)
def test_the_document_round_trips_through_json_to_the_same_hash_and_value(case):  # type: ignore[no-untyped-def]
    day, prices = case
    hours = [ix.AuctionHour(hour=label, price=price, volume=7) for label, price in prices.items()]
    for build in (ix.base_record, ix.peak_record):
        built = build(day=day, gpu_class="B200", zone="DE-NW", hours=hours)
        read_back = json.loads(ix.canonical_json(built.document).decode("utf-8"))
        assert ix.canonical_json(read_back) == ix.canonical_json(built.document)
        assert ix.value_from_document(read_back) == built.value


@given(days)
@settings(max_examples=300, deadline=None)
def test_every_weekday_has_12_peak_hours_and_every_day_its_calendar_hours(day):  # type: ignore[no-untyped-def]
    count = len(calendar.day_hours(day))
    assert count in (23, 24, 25)
    assert len(ix.peak_labels(day)) == (12 if day.weekday() < 5 else 0)
    assert calendar.day_hours(day)[-1].end == calendar.local_midnight(day + timedelta(days=1))
