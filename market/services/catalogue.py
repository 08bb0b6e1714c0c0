"""Writes to the product catalogue: listing, opening/closing, halting.

Keyword-only; each top-level service owns its transaction. Status changes by
the clock are single conditional UPDATEs, so two overlapping runs of the job
(beat and a manual ``list_instruments``) cannot conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

# The one audit log of the exchange (accounts.AuditLog, append-only). The
# helper is still private to accounts; see docs/architecture.md.
from accounts.services import audit_record
from exchange.errors import ExchangeError
from market import calendar
from market.models import DeliveryZone, GpuClass, Instrument, InstrumentStatus, Segment

if TYPE_CHECKING:
    from accounts.models import User

HALTABLE = (InstrumentStatus.SCHEDULED, InstrumentStatus.OPEN)
CLOSABLE = (InstrumentStatus.SCHEDULED, InstrumentStatus.OPEN, InstrumentStatus.HALTED)


# --- listing -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Listing:
    """What the calendar says an instrument is; turned into a row only if missing."""

    symbol: str
    segment: str
    gpu_class: GpuClass
    zone: DeliveryZone
    period: calendar.Period
    opens_at: datetime
    closes_at: datetime
    lead_time_minutes: int

    def build(self) -> Instrument:
        start, end = calendar.period_interval(self.period)
        return Instrument(
            symbol=self.symbol,
            segment=self.segment,
            gpu_class=self.gpu_class,
            zone=self.zone,
            period=calendar.period_code(self.period),
            delivery_start=start,
            delivery_end=end,
            hours=calendar.period_hours(self.period),
            min_price=self.gpu_class.min_price,
            max_price=self.gpu_class.max_price,
            lead_time_minutes=self.lead_time_minutes,
            opens_at=self.opens_at,
            closes_at=self.closes_at,
            status=InstrumentStatus.SCHEDULED,
        )


def _intraday_listings(*, now: datetime, today: date, classes: list[GpuClass],
                       zones: list[DeliveryZone]) -> list[_Listing]:
    listings = []
    for day in (today, today + timedelta(days=1)):
        opens_at = calendar.intraday_opens_at(day)
        for hour in calendar.day_hours(day):
            for gpu_class in classes:
                lead = gpu_class.intraday_lead_time_minutes
                closes_at = calendar.intraday_closes_at(hour.start, lead)
                if closes_at <= now:
                    continue  # trading in this hour is already over: nothing to list
                for zone in zones:
                    listings.append(_Listing(
                        symbol=calendar.format_symbol(gpu_class.code, zone.code, hour),
                        segment=Segment.INTRADAY, gpu_class=gpu_class, zone=zone, period=hour,
                        opens_at=opens_at, closes_at=closes_at, lead_time_minutes=lead,
                    ))
    return listings


def _futures_listings(*, today: date, classes: list[GpuClass], zone: DeliveryZone) -> list[_Listing]:
    listings = []
    for period in calendar.listed_futures(today):
        start, _end = calendar.period_interval(period)
        opens_at = calendar.local_midnight(calendar.futures_listing_start(period))
        for gpu_class in classes:
            listings.append(_Listing(
                symbol=calendar.format_symbol(gpu_class.code, zone.code, period),
                segment=Segment.FUTURES, gpu_class=gpu_class, zone=zone, period=period,
                # Session hours are checked by the order service, not by status.
                opens_at=opens_at, closes_at=start, lead_time_minutes=0,
            ))
    return listings


def hour_instruments(*, gpu_class: GpuClass, zone: DeliveryZone, day: date, labels: Sequence[str],
                     now: datetime, lock: bool = False) -> dict[str, Instrument]:
    """The hourly instruments of ``labels`` on ``day`` for one class and zone,
    listed first where missing (the day-ahead auction books into them even
    for a day the listing job has not reached); with ``lock``, locked FOR NO
    KEY UPDATE in ascending id, in one statement (step 1 of the lock order).
    Inside the caller's transaction."""
    hours = [calendar.delivery_hour(day, label) for label in labels]
    lead = gpu_class.intraday_lead_time_minutes
    wanted = [_Listing(symbol=calendar.format_symbol(gpu_class.code, zone.code, hour), segment=Segment.INTRADAY,
                       gpu_class=gpu_class, zone=zone, period=hour, opens_at=calendar.intraday_opens_at(day),
                       closes_at=calendar.intraday_closes_at(hour.start, lead), lead_time_minutes=lead)
              for hour in hours]
    symbols = [listing.symbol for listing in wanted]
    existing = set(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", flat=True))
    missing = [listing.build() for listing in wanted if listing.symbol not in existing]
    if missing:
        Instrument.objects.bulk_create(missing, ignore_conflicts=True)
    rows = Instrument.objects.filter(symbol__in=symbols).order_by("id")
    if lock:
        rows = rows.select_for_update(no_key=True)
    by_symbol = {instrument.symbol: instrument for instrument in rows}
    return {hour.label: by_symbol[symbol] for hour, symbol in zip(hours, symbols, strict=True)}


@transaction.atomic(durable=True)
def instruments_list_upcoming(*, now: datetime) -> int:
    """List every instrument the calendar says should exist at ``now``:
    hourly intraday instruments of today and tomorrow (local days) for every
    active class in every zone, and the futures of zone DE. Idempotent.

    Returns the number of rows inserted. Two runs racing may both count a row
    that only one of them inserted; the figure is for the log, so it is OK to
    be a little inexact there (the rows themselves are unique by symbol).
    """
    today = now.astimezone(calendar.BERLIN).date()
    classes = list(GpuClass.objects.filter(active=True).order_by("code"))
    if not classes:
        return 0
    zones = list(DeliveryZone.objects.order_by("code"))
    futures_zone = next((z for z in zones if z.code == calendar.FUTURES_ZONE), None)

    wanted = _intraday_listings(now=now, today=today, classes=classes, zones=zones)
    # One range query instead of an IN list of ~4,000 symbols (SQLite caps
    # the number of query parameters).
    existing = set(
        Instrument.objects.filter(
            delivery_start__gte=calendar.local_midnight(today),
            delivery_start__lt=calendar.local_midnight(today + timedelta(days=2)),
            segment=Segment.INTRADAY,
        ).values_list("symbol", flat=True)
    )
    if futures_zone is not None:
        futures = _futures_listings(today=today, classes=classes, zone=futures_zone)
        wanted += futures
        existing |= set(
            Instrument.objects.filter(symbol__in=[f.symbol for f in futures]).values_list("symbol", flat=True)
        )

    new = [listing.build() for listing in wanted if listing.symbol not in existing]
    # ignore_conflicts: a concurrent run may have inserted some of them since.
    Instrument.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
    return len(new)


@transaction.atomic(durable=True)
def instruments_open_close(*, now: datetime) -> tuple[int, int]:
    """Move instruments along the clock: ``scheduled`` → ``open`` inside the
    trading window, and anything not yet closed → ``closed`` once it is over.
    A halted instrument is never reopened here; only an operator resumes it."""
    closed = Instrument.objects.filter(status__in=CLOSABLE, closes_at__lte=now).update(
        status=InstrumentStatus.CLOSED)
    opened = Instrument.objects.filter(
        status=InstrumentStatus.SCHEDULED, opens_at__lte=now, closes_at__gt=now,
    ).update(status=InstrumentStatus.OPEN)
    return opened, closed


# --- operator actions -----------------------------------------------------------------


def _check_operator_and_reason(operator: User, reason: str) -> str:
    if not (operator.is_active and operator.is_staff):
        raise ExchangeError("not_permitted", _("Only operators may halt or resume trading."))
    reason = (reason or "").strip()
    if not reason:
        raise ExchangeError("invalid", _("Please give a reason."), {"reason": [_("This field is required.")]})
    return reason


def _set_status(*, operator: User, instrument: Instrument, action: str, status: str,
                reason: str) -> Instrument:
    before = instrument.status
    instrument.status = status
    instrument.save(update_fields=["status"])
    # Same transaction: no status change without its audit row, and back.
    audit_record(actor=operator, action=action, organisation=None, obj=instrument,
                 before={"status": before, "symbol": instrument.symbol},
                 after={"status": status, "symbol": instrument.symbol}, reason=reason)
    return instrument


@transaction.atomic(durable=True)
def instrument_halt(*, operator: User, instrument: Instrument, reason: str) -> Instrument:
    """Stop trading in a scheduled or open instrument. Resting orders stay;
    the order service refuses new orders with ``market_halted``."""
    reason = _check_operator_and_reason(operator, reason)
    # Lock the row as matching does (instrument first), then re-check: the
    # caller's copy may be stale.
    locked = Instrument.objects.select_for_update().get(pk=instrument.pk)
    if locked.status in (InstrumentStatus.CLOSED, InstrumentStatus.SETTLED):
        raise ExchangeError("instrument_closed",
                            _("%(symbol)s is already closed.") % {"symbol": locked.symbol})
    if locked.status not in HALTABLE:
        raise ExchangeError("conflict", _("%(symbol)s is already halted.") % {"symbol": locked.symbol})
    return _set_status(operator=operator, instrument=locked, action="instrument.halt",
                       status=InstrumentStatus.HALTED, reason=reason)


@transaction.atomic(durable=True)
def instrument_resume(*, operator: User, instrument: Instrument, reason: str,
                      now: datetime | None = None) -> Instrument:
    """Lift a halt. The instrument returns to what the clock says: open inside
    its trading window, scheduled before it, closed after it."""
    reason = _check_operator_and_reason(operator, reason)
    now = now or timezone.now()
    locked = Instrument.objects.select_for_update().get(pk=instrument.pk)
    if locked.status != InstrumentStatus.HALTED:
        raise ExchangeError("conflict", _("%(symbol)s is not halted.") % {"symbol": locked.symbol})
    if now < locked.opens_at:
        status = InstrumentStatus.SCHEDULED
    elif now < locked.closes_at:
        status = InstrumentStatus.OPEN
    else:
        status = InstrumentStatus.CLOSED
    return _set_status(operator=operator, instrument=locked, action="instrument.resume", status=status,
                       reason=reason)


# Not durable: the admin's change form already runs inside a transaction.
@transaction.atomic
def gpu_class_save(*, gpu_class: GpuClass) -> int:
    """Save a class edited by an operator and carry its price bounds and lead
    time to its instruments that are still ``scheduled``. Open and halted
    instruments keep theirs: orders are resting against them.

    Returns the number of scheduled instruments brought up to date."""
    gpu_class.full_clean()
    gpu_class.save()
    scheduled = Instrument.objects.filter(gpu_class=gpu_class, status=InstrumentStatus.SCHEDULED)
    updated = scheduled.update(min_price=gpu_class.min_price, max_price=gpu_class.max_price)
    lead = gpu_class.intraday_lead_time_minutes
    scheduled.filter(segment=Segment.INTRADAY).exclude(lead_time_minutes=lead).update(
        lead_time_minutes=lead, closes_at=F("delivery_start") - timedelta(minutes=lead))
    return updated
