"""Publishing the daily compute price indices (issue 9, item 6; the rules
are ``market.indices``, this module reads their inputs and writes
``IndexValue``).

- Base and Peak of (day, class, zone) are published once the day's auction
  is cleared (the auction service calls ``index_compute_day`` on commit;
  beat catches up), the intraday VWAP once trading in the day's last hour
  has closed (plus ``VWAP_GRACE``).
- A published value is never rewritten (``IndexValue`` is append-only, at
  the database too). Computing it again is harmless: the same document
  gives the same ``sha256`` and nothing is written. A recomputation that
  gives a *different* document for a published (kind, day, class, zone,
  methodology version) means the inputs changed after publication -- a bug
  or tampering: the published value is kept, the error is logged and an
  operator's alarm is raised (a ``JobFailure`` of the pseudo job
  ``market.index_conflict:<kind>:<day>:<class>.<zone>:<version>``, shown by
  ``/healthz``, the reconciliation and the admin until acknowledged).
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, QuerySet, Sum
from django.utils import timezone

from clearing.models import JobFailure
from clearing.services.jobs import job_failure_record
from market import calendar, indices
from market.models import (
    AuctionStatus,
    DayAheadAuction,
    DayAheadHour,
    DeliveryZone,
    GpuClass,
    IndexValue,
    Instrument,
    Segment,
    Trade,
)

log = logging.getLogger(__name__)

# Trading in an hour is judged by the order service's clock, read after the
# instrument lock: an order judged just before ``closes_at`` may commit a
# moment after it. The VWAP waits this long beyond the last close.
VWAP_GRACE = timedelta(minutes=5)

CONFLICT_TASK_PREFIX = "market.index_conflict"


class IndexConflict(Exception):
    """A recomputation disagrees with a published value (recorded as the alarm's error)."""


@dataclass(frozen=True)
class DayResult:
    values: list[IndexValue]
    published: int  # values written by this call
    conflicts: int  # recomputations that disagreed with a published value


def index_compute_day(*, day: date, gpu_class_id: int, zone_id: int, now: datetime | None = None) -> list[IndexValue]:
    """Publish what is due of (day, class, zone) and answer the day's values
    of the current methodology version (those published before included).
    Idempotent; safe to run concurrently (the unique constraint decides)."""
    return index_compute_day_result(day=day, gpu_class_id=gpu_class_id, zone_id=zone_id, now=now).values


@transaction.atomic(durable=True)
def index_compute_day_result(*, day: date, gpu_class_id: int, zone_id: int, now: datetime | None = None) -> DayResult:
    """``index_compute_day`` with the counts (for the beat job)."""
    now = now or timezone.now()
    gpu_class = GpuClass.objects.get(pk=gpu_class_id)
    zone = DeliveryZone.objects.get(pk=zone_id)

    records: list[indices.IndexRecord] = []
    auction = DayAheadAuction.objects.filter(delivery_date=day, gpu_class=gpu_class, zone=zone,
                                             status=AuctionStatus.CLEARED).first()
    if auction is not None:
        hours = [indices.AuctionHour(hour=row.hour, price=row.price, volume=row.volume)
                 for row in DayAheadHour.objects.filter(auction=auction).order_by("position")]
        records.append(indices.base_record(day=day, gpu_class=gpu_class.code, zone=zone.code, hours=hours))
        records.append(indices.peak_record(day=day, gpu_class=gpu_class.code, zone=zone.code, hours=hours))
    if intraday_closed(day=day, gpu_class=gpu_class, zone=zone, now=now):
        records.append(indices.intraday_vwap_record(day=day, gpu_class=gpu_class.code, zone=zone.code,
                                                    hours=_trade_hours(day, gpu_class, zone)))
    return _publish(records, gpu_class=gpu_class, zone=zone, now=now)


def intraday_closed(*, day: date, gpu_class: GpuClass, zone: DeliveryZone, now: datetime) -> bool:
    """Whether continuous trading in every hour of the day has closed (and
    ``VWAP_GRACE`` passed): the latest ``closes_at`` of the day's listed
    instruments, and at least the calendar's close of its last hour."""
    hours = calendar.day_hours(day)
    last_close = calendar.intraday_closes_at(hours[-1].start, gpu_class.intraday_lead_time_minutes)
    listed = _day_instruments(day, gpu_class, zone).aggregate(last=Max("closes_at"))["last"]
    if listed is not None:
        last_close = max(last_close, listed)
    return now >= last_close + VWAP_GRACE


def _day_instruments(day: date, gpu_class: GpuClass, zone: DeliveryZone) -> QuerySet[Instrument]:
    return Instrument.objects.filter(
        segment=Segment.INTRADAY, hours=1, gpu_class=gpu_class, zone=zone,
        delivery_start__gte=calendar.local_midnight(day),
        delivery_start__lt=calendar.local_midnight(day + timedelta(days=1)))


def _trade_hours(day: date, gpu_class: GpuClass, zone: DeliveryZone) -> list[indices.TradeHour]:
    """The day's continuous trades per hour (auction trades excluded), summed by the database."""
    label_of = {hour.start: hour.label for hour in calendar.day_hours(day)}
    rows = (Trade.objects.filter(auction__isnull=True, instrument__in=_day_instruments(day, gpu_class, zone))
            .values("instrument__delivery_start")
            .annotate(notional=Sum(F("price") * F("quantity")), quantity=Sum("quantity"), trades=Count("id"))
            .order_by("instrument__delivery_start"))
    return [indices.TradeHour(hour=label_of[row["instrument__delivery_start"]], notional=row["notional"],
                              quantity=row["quantity"], trades=row["trades"]) for row in rows]


def _publish(records: list[indices.IndexRecord], *, gpu_class: GpuClass, zone: DeliveryZone,
             now: datetime) -> DayResult:
    if not records:
        return DayResult(values=[], published=0, conflicts=0)
    day, version = records[0].day, records[0].methodology_version
    existing = {value.kind: value for value in IndexValue.objects.filter(
        date=day, gpu_class=gpu_class, zone=zone, methodology_version=version)}
    published = conflicts = 0
    for record in records:
        value = existing.get(record.kind)
        if value is None:
            try:
                with transaction.atomic():  # a savepoint: a concurrent run's row must not poison ours
                    value = IndexValue.objects.create(
                        kind=record.kind, date=day, gpu_class=gpu_class, zone=zone, value=record.value,
                        volume=record.volume, inputs=record.document, sha256=record.sha256,
                        methodology_version=version, is_demo=record.demo, computed_at=now)
                published += 1
                existing[record.kind] = value
                continue
            except IntegrityError:  # published by a concurrent run a moment ago
                value = IndexValue.objects.get(kind=record.kind, date=day, gpu_class=gpu_class, zone=zone,
                                               methodology_version=version)
                existing[record.kind] = value
        if value.sha256 != record.sha256:
            conflicts += 1
            _conflict_alarm(published=value, attempted=record)
    values = sorted(existing.values(), key=lambda value: indices.KINDS.index(value.kind))
    return DayResult(values=values, published=published, conflicts=conflicts)


def _conflict_alarm(*, published: IndexValue, attempted: indices.IndexRecord) -> None:
    """Keep the published value; log the disagreement and raise one open
    operator alarm per published value (not one per run)."""
    task = (f"{CONFLICT_TASK_PREFIX}:{published.kind}:{published.date.isoformat()}:"
            f"{attempted.gpu_class}.{attempted.zone}:{published.methodology_version}")
    message = (f"index {published.kind} of {published.date.isoformat()} {attempted.gpu_class}.{attempted.zone} "
               f"({published.methodology_version}): published value {published.value} (sha256 {published.sha256}) "
               f"kept; its inputs have changed since, a recomputation gives {attempted.value} "
               f"(sha256 {attempted.sha256})")
    log.error("%s", message)
    if not JobFailure.objects.filter(task=task, resolved_at__isnull=True).exists():
        job_failure_record(task=task, task_id="", error=IndexConflict(message),
                           traceback=indices.canonical_json(attempted.document).decode())


def indices_compute_due(*, now: datetime | None = None) -> int:
    """Beat, every 15 minutes: (re)compute yesterday, today and tomorrow
    (local days) for every class and zone with a cleared auction or a
    continuous trade that day. Tomorrow is included because its auction
    clears today at noon: should the auction's own call fail, beat
    publishes its Base and Peak within 15 minutes. Recomputing published
    days also checks them (a disagreement raises the alarm). Answers how
    many values were published now."""
    now = now or timezone.now()
    today = now.astimezone(calendar.BERLIN).date()
    days = [today - timedelta(days=1), today, today + timedelta(days=1)]
    due: set[tuple[date, int, int]] = set(
        DayAheadAuction.objects.filter(delivery_date__in=days, status=AuctionStatus.CLEARED)
        .values_list("delivery_date", "gpu_class_id", "zone_id"))
    traded = (Trade.objects.filter(auction__isnull=True, instrument__segment=Segment.INTRADAY, instrument__hours=1,
                                   instrument__delivery_start__gte=calendar.local_midnight(days[0]),
                                   instrument__delivery_start__lt=calendar.local_midnight(days[-1] + timedelta(days=1)))
              .values_list("instrument__delivery_start", "instrument__gpu_class_id", "instrument__zone_id")
              .distinct())
    for start, gpu_class_id, zone_id in traded:
        due.add((start.astimezone(calendar.BERLIN).date(), gpu_class_id, zone_id))
    published = 0
    refused: list[str] = []
    for day, gpu_class_id, zone_id in sorted(due):
        try:
            published += index_compute_day_result(day=day, gpu_class_id=gpu_class_id, zone_id=zone_id,
                                                  now=now).published
        except indices.IndexInputError as error:
            # Inputs the rules refuse (an hour label the day does not have): the
            # other classes and zones are still published, then the job fails.
            log.exception("index of %s (class %s, zone %s) not computed", day, gpu_class_id, zone_id)
            refused.append(f"{day.isoformat()} class {gpu_class_id} zone {zone_id}: {error}")
    if refused:
        raise indices.IndexInputError("; ".join(refused))
    return published
