"""Publishing the indices (market/services/indices.py): when each kind is
due, what it reads, idempotence, the alarm on a changed input, the beat
job, and the append-only rows (ORM and database)."""

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from clearing.models import JobFailure
from market import calendar
from market import indices as ix
from market.models import DayAheadHour, DeliveryZone, GpuClass, ImmutableRowError, IndexValue
from market.services.indices import VWAP_GRACE, index_compute_day, index_compute_day_result, indices_compute_due
from tests.factories import (
    ClearedAuctionFactory,
    GpuClassFactory,
    HourInstrumentFactory,
    auction_hour_results,
    trade_row,
)
from tests.market.test_dayahead_service import DAY, GATE, hand_computed_book, market  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

WEDNESDAY = date(2026, 11, 25)
AUTUMN = date(2026, 10, 25)  # 25 hours


def last_close(day: date) -> datetime:
    """When trading in the day's last hour closes (30 minutes before it starts)."""
    return calendar.day_hours(day)[-1].start - timedelta(minutes=30)


def instrument(day: date, label: str, gpu_class: GpuClass, zone: str = "DE"):  # type: ignore[no-untyped-def]
    return HourInstrumentFactory(gpu_class=gpu_class, zone_code=zone, hour=calendar.delivery_hour(day, label))


@pytest.fixture
def h100() -> GpuClass:
    return GpuClassFactory(code="H100")


@pytest.fixture
def de() -> DeliveryZone:
    return DeliveryZone.objects.get(code="DE")


def compute(day: date, gpu_class: GpuClass, zone: DeliveryZone, now: datetime) -> dict[str, IndexValue]:
    values = index_compute_day(day=day, gpu_class_id=gpu_class.pk, zone_id=zone.pk, now=now)
    return {value.kind: value for value in values}


def test_base_and_peak_wait_for_the_cleared_auction(h100, de):
    auction = ClearedAuctionFactory(delivery_date=WEDNESDAY, gpu_class=h100, status="open", cleared_at=None)
    auction_hour_results(auction, {"09": "10.00"})
    before_gate = calendar.dayahead_gate_closure(WEDNESDAY) - timedelta(hours=1)

    assert compute(WEDNESDAY, h100, de, before_gate) == {}

    auction.status, auction.cleared_at = "cleared", calendar.dayahead_gate_closure(WEDNESDAY)
    auction.save()
    values = compute(WEDNESDAY, h100, de, calendar.dayahead_gate_closure(WEDNESDAY) + timedelta(minutes=1))

    assert set(values) == {"base", "peak"}
    assert IndexValue.objects.count() == 2


def test_published_values_are_the_pure_rules_of_the_auction_rows(h100, de):
    auction = ClearedAuctionFactory(delivery_date=WEDNESDAY, gpu_class=h100)
    # 00-07 at 10.00, 08-19 at 14.00, 20-22 at 11.00, 23 without bids: (80 + 168 + 33) / 23 = 12.217… -> 12.22.
    prices = {hour.label: ("10.00" if i < 8 else "14.00" if i < 20 else "11.00")
              for i, hour in enumerate(calendar.day_hours(WEDNESDAY)) if hour.label != "23"}
    auction_hour_results(auction, prices, volume=5)
    now = calendar.dayahead_gate_closure(WEDNESDAY) + timedelta(minutes=1)

    values = compute(WEDNESDAY, h100, de, now)

    base, peak = values["base"], values["peak"]
    assert (base.value, base.volume) == (Decimal("12.22"), 23 * 5)
    assert (peak.value, peak.volume) == (Decimal("14.00"), 12 * 5)
    assert base.sha256 == ix.document_sha256(base.inputs)
    assert base.inputs["hours"][-1] == {"hour": "23", "price": None, "volume": 0}
    assert (base.methodology_version, base.is_demo, base.computed_at) == ("v1", False, now)


def test_the_vwap_waits_for_the_close_of_the_last_hour_and_leaves_auction_trades_out(h100, de):
    auction = ClearedAuctionFactory(delivery_date=WEDNESDAY, gpu_class=h100)
    auction_hour_results(auction, {"14": "99.00"})
    fourteen = instrument(WEDNESDAY, "14", h100)
    fifteen = instrument(WEDNESDAY, "15", h100)
    instrument(WEDNESDAY, "23", h100)
    trade_row(instrument=fourteen, price="12.30", quantity=3)
    trade_row(instrument=fourteen, price="12.31", quantity=1)
    trade_row(instrument=fifteen, price="9.99", quantity=2)
    trade_row(instrument=fourteen, price="99.00", quantity=50, auction=auction)  # the auction's: not intraday
    other_zone = instrument(WEDNESDAY, "14", h100, zone="DE-BY")
    trade_row(instrument=other_zone, price="1.00", quantity=100)

    assert "intraday_vwap" not in compute(WEDNESDAY, h100, de, last_close(WEDNESDAY) + VWAP_GRACE
                                          - timedelta(seconds=1))

    vwap = compute(WEDNESDAY, h100, de, last_close(WEDNESDAY) + VWAP_GRACE)["intraday_vwap"]

    assert (vwap.value, vwap.volume) == (Decimal("11.53"), 6)  # 69.19 / 6
    by_hour = {row["hour"]: row for row in vwap.inputs["hours"]}
    assert by_hour["14"] == {"hour": "14", "notional": "49.21", "quantity": 4, "trades": 2, "vwap": "12.30"}
    assert by_hour["15"]["vwap"] == "9.99"


def test_a_later_close_of_a_listed_instrument_holds_the_vwap_back(h100, de):
    late = instrument(WEDNESDAY, "23", h100)
    late.closes_at = calendar.day_hours(WEDNESDAY)[-1].start + timedelta(minutes=10)  # lead time shortened to -10
    late.save()

    assert compute(WEDNESDAY, h100, de, last_close(WEDNESDAY) + VWAP_GRACE) == {}
    assert set(compute(WEDNESDAY, h100, de, late.closes_at + VWAP_GRACE)) == {"intraday_vwap"}


def test_the_25_hour_day_end_to_end(h100, de):
    auction = ClearedAuctionFactory(delivery_date=AUTUMN, gpu_class=h100)
    labels = [hour.label for hour in calendar.day_hours(AUTUMN)]
    auction_hour_results(auction, {label: {"02A": "12.00", "02B": "13.00"}.get(label, "10.00") for label in labels},
                         volume=4)
    trade_row(instrument=instrument(AUTUMN, "02A", h100), price="4.00", quantity=1)
    trade_row(instrument=instrument(AUTUMN, "02B", h100), price="5.00", quantity=3)

    values = compute(AUTUMN, h100, de, last_close(AUTUMN) + VWAP_GRACE)

    assert values["base"].value == Decimal("10.20")  # 255 / 25
    assert values["base"].volume == 100
    assert values["peak"].value is None  # a Sunday
    assert values["intraday_vwap"].value == Decimal("4.75")
    assert [row["hour"] for row in values["intraday_vwap"].inputs["hours"]][1:5] == ["01", "02A", "02B", "03"]


def test_computing_again_writes_nothing_and_answers_the_published_values(h100, de):
    auction = ClearedAuctionFactory(delivery_date=WEDNESDAY, gpu_class=h100)
    auction_hour_results(auction, {"09": "10.00"})
    first_time = last_close(WEDNESDAY) + VWAP_GRACE
    first = index_compute_day_result(day=WEDNESDAY, gpu_class_id=h100.pk, zone_id=de.pk, now=first_time)

    again = index_compute_day_result(day=WEDNESDAY, gpu_class_id=h100.pk, zone_id=de.pk,
                                     now=first_time + timedelta(days=1))

    assert (first.published, again.published, again.conflicts) == (3, 0, 0)
    assert [value.pk for value in again.values] == [value.pk for value in first.values]
    assert [value.kind for value in again.values] == ["base", "peak", "intraday_vwap"]
    assert {value.computed_at for value in IndexValue.objects.all()} == {first_time}


def test_a_changed_input_keeps_the_published_value_and_raises_one_alarm(h100, de, caplog):
    auction = ClearedAuctionFactory(delivery_date=WEDNESDAY, gpu_class=h100)
    auction_hour_results(auction, {"09": "10.00", "10": "12.00"})
    now = calendar.dayahead_gate_closure(WEDNESDAY) + timedelta(minutes=1)
    published = compute(WEDNESDAY, h100, de, now)["base"]
    # Someone changes a published hour's price afterwards.
    DayAheadHour.objects.filter(auction=auction, hour="10").update(price=Decimal("20.00"))

    with caplog.at_level(logging.ERROR, logger="market.services.indices"):
        result = index_compute_day_result(day=WEDNESDAY, gpu_class_id=h100.pk, zone_id=de.pk, now=now)
        index_compute_day_result(day=WEDNESDAY, gpu_class_id=h100.pk, zone_id=de.pk, now=now)

    base = IndexValue.objects.get(kind="base")
    assert (base.pk, base.value, base.sha256) == (published.pk, Decimal("11.00"), published.sha256)
    assert result.conflicts == 2 and result.published == 0  # base and peak both read hour 10
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert any("published value 11.00" in record.getMessage() and "gives 15.00" in record.getMessage()
               for record in errors)
    alarms = JobFailure.objects.filter(resolved_at__isnull=True, task__startswith="market.index_conflict:")
    assert sorted(alarms.values_list("task", flat=True)) == [
        "market.index_conflict:base:2026-11-25:H100.DE:v1", "market.index_conflict:peak:2026-11-25:H100.DE:v1"]
    assert "IndexConflict" in alarms.get(task__contains=":base:").error


def test_beat_computes_yesterday_today_and_tomorrow_for_pairs_with_an_auction_or_trades(h100, de):
    today = date(2026, 11, 25)
    now = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)  # 13:30 local: tomorrow's auction has cleared
    l40s = GpuClassFactory(code="L40S")
    by = DeliveryZone.objects.get(code="DE-BY")
    tomorrow = ClearedAuctionFactory(delivery_date=today + timedelta(days=1), gpu_class=h100)
    auction_hour_results(tomorrow, {"10": "3.00"})
    ClearedAuctionFactory(delivery_date=today + timedelta(days=2), gpu_class=h100, status="open", cleared_at=None)
    old = ClearedAuctionFactory(delivery_date=today - timedelta(days=3), gpu_class=h100)
    auction_hour_results(old, {"10": "3.00"})
    trade_row(instrument=instrument(today - timedelta(days=1), "20", l40s, zone="DE-BY"), price="1.00", quantity=2)
    trade_row(instrument=instrument(today, "10", h100), price="2.00", quantity=1)  # today: not closed yet

    assert indices_compute_due(now=now) == 3
    assert indices_compute_due(now=now) == 0

    published = set(IndexValue.objects.values_list("kind", "date", "gpu_class__code", "zone__code"))
    assert published == {("base", today + timedelta(days=1), "H100", "DE"),
                         ("peak", today + timedelta(days=1), "H100", "DE"),
                         ("intraday_vwap", today - timedelta(days=1), "L40S", "DE-BY")}
    assert IndexValue.objects.get(gpu_class=l40s, zone=by).value == Decimal("1.00")


def test_one_pair_with_inputs_the_rules_refuse_does_not_hold_the_others_back(h100, de):
    now = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
    tomorrow = date(2026, 11, 26)
    good = ClearedAuctionFactory(delivery_date=tomorrow, gpu_class=h100, zone_code="DE-BY")
    auction_hour_results(good, {"10": "3.00"})
    bad = ClearedAuctionFactory(delivery_date=tomorrow, gpu_class=h100)
    auction_hour_results(bad, {"10": "3.00"})
    DayAheadHour.objects.filter(auction=bad, hour="10").update(hour="02B")  # a label the day does not have

    with pytest.raises(ix.IndexInputError, match="no hour '02B'"):
        indices_compute_due(now=now)

    assert set(IndexValue.objects.values_list("kind", "zone__code")) == {("base", "DE-BY"), ("peak", "DE-BY")}


def test_the_beat_job_is_scheduled_every_15_minutes_and_calls_the_service(h100):
    from exchange.celery import app
    from market.tasks import compute_index_day, compute_indices

    entry = app.conf.beat_schedule["market-compute-indices"]
    assert entry["task"] == "market.compute_indices"
    assert str(entry["schedule"]._orig_minute) == "*/15"

    yesterday = datetime.now(tz=calendar.BERLIN).date() - timedelta(days=1)
    auction = ClearedAuctionFactory(delivery_date=yesterday, gpu_class=h100)
    auction_hour_results(auction, {"10": "3.00"})
    assert compute_indices.apply().get() >= 2  # base and peak (and the VWAP of no trades)
    assert compute_index_day.apply(args=(yesterday.isoformat(), h100.pk, auction.zone_id)).get() == 3


def test_an_auction_cleared_by_the_day_ahead_service_gives_its_index(market):  # noqa: F811 (the fixture)
    """End to end with the auction service's hand-computed book: hour 14 clears
    at 11.00 for 60 GPUs and is the only hour with bids."""
    from market.services import dayahead

    hand_computed_book(market)
    assert dayahead.auctions_clear_due(now=GATE) == 1
    h100, de = GpuClass.objects.get(code="H100"), DeliveryZone.objects.get(code="DE")

    at_clearing = compute(DAY, h100, de, GATE)
    after_trading = compute(DAY, h100, de, last_close(DAY) + VWAP_GRACE)

    assert (at_clearing["base"].value, at_clearing["base"].volume) == (Decimal("11.00"), 60)
    assert (at_clearing["peak"].value, at_clearing["peak"].volume) == (Decimal("11.00"), 60)  # a Thursday
    assert "intraday_vwap" not in at_clearing
    # The auction's trades sit in the hour's intraday instrument and are no intraday trades.
    vwap = after_trading["intraday_vwap"]
    assert (vwap.value, vwap.volume) == (None, 0)
    assert [value.pk for value in after_trading.values()][:2] == [at_clearing["base"].pk, at_clearing["peak"].pk]


# --- append-only --------------------------------------------------------------------------------


@pytest.fixture
def published(h100, de) -> IndexValue:
    auction = ClearedAuctionFactory(delivery_date=WEDNESDAY, gpu_class=h100)
    auction_hour_results(auction, {"09": "10.00"})
    return compute(WEDNESDAY, h100, de, calendar.dayahead_gate_closure(WEDNESDAY))["base"]


def test_the_orm_refuses_to_change_or_delete_a_published_value(published):
    published.value = Decimal("1.00")
    with pytest.raises(ImmutableRowError):
        published.save()
    with pytest.raises(ImmutableRowError):
        published.delete()
    with pytest.raises(ImmutableRowError):
        IndexValue.objects.filter(pk=published.pk).update(value=Decimal("1.00"))
    with pytest.raises(ImmutableRowError):
        IndexValue.objects.filter(pk=published.pk).delete()


def test_the_database_refuses_update_and_delete_in_raw_sql(published):
    for statement in ("UPDATE market_indexvalue SET value = 1 WHERE id = %s",
                      "DELETE FROM market_indexvalue WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [published.pk])
    published.refresh_from_db()
    assert published.value == Decimal("10.00")
