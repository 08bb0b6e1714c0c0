"""Public reads of the day-ahead auction (market rules §2.1 and §5): the state
of a delivery day, the results and aggregated curves of cleared auctions, the
indicative results of open ones, and the summaries the dashboards show.

Nothing here reads a bid, a step, an acceptance or an organisation: the
published rows (``DayAheadHour``, ``DayAheadIndicative``) are aggregates
without member identity, and so is everything these functions return. The
API (``market.api_dayahead_public``) and the pages
(``market.views.dashboard``) both read through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from django.db import connection
from django.db.models import Avg, Count, Max, Min, Sum

from market import calendar
from market.models import AuctionStatus, DayAheadAuction, DayAheadHour, DayAheadIndicative

DayStatus = Literal["open", "closed", "cleared"]
CENT = Decimal("0.01")


def auction_status(auction: DayAheadAuction, now: datetime) -> DayStatus:
    """``open`` while the book takes bids, ``cleared`` once the run booked
    it, ``closed`` otherwise (past gate closure and waiting for the run)."""
    if auction.status == AuctionStatus.CLEARED:
        return "cleared"
    if auction.book_opens_at <= now < auction.gate_closure:
        return "open"
    return "closed"


@dataclass(frozen=True)
class AuctionState:
    gpu_class: str
    zone: str
    status: DayStatus
    cleared_at: datetime | None


@dataclass(frozen=True)
class DayState:
    """The day-ahead auction of one delivery day as the public sees it.

    ``status``: ``open`` from book opening (D-14, 00:00) to gate closure
    (D-1, 12:00), whether or not anyone has bid yet; ``cleared`` after gate
    closure once every auction of the day (one per class and zone with bids)
    is cleared, or when there is none; ``closed`` before the book opens and
    between gate closure and the last clearing."""

    delivery_date: date
    book_opens_at: datetime
    gate_closure: datetime
    status: DayStatus
    auctions: list[AuctionState]


def _day_auctions(day: date) -> list[DayAheadAuction]:
    return list(DayAheadAuction.objects.filter(delivery_date=day).select_related("gpu_class", "zone")
                .order_by("gpu_class__code", "zone__code"))


def dayahead_day_state(*, day: date, now: datetime) -> DayState:
    opens = calendar.dayahead_book_opens(day)
    gate = calendar.dayahead_gate_closure(day)
    auctions = _day_auctions(day)
    status: DayStatus
    if now < opens:
        status = "closed"
    elif now < gate:
        status = "open"
    elif all(auction.status == AuctionStatus.CLEARED for auction in auctions):
        status = "cleared"
    else:
        status = "closed"
    states = [AuctionState(gpu_class=a.gpu_class.code, zone=a.zone.code, status=auction_status(a, now),
                           cleared_at=a.cleared_at) for a in auctions]
    return DayState(delivery_date=day, book_opens_at=opens, gate_closure=gate, status=status, auctions=states)


def dayahead_auction(*, day: date, gpu_class: str, zone: str) -> DayAheadAuction | None:
    return (DayAheadAuction.objects.select_related("gpu_class", "zone")
            .filter(delivery_date=day, gpu_class__code=gpu_class, zone__code=zone).first())


def dayahead_hours(*, auction: DayAheadAuction) -> list[DayAheadHour]:
    """The published hours of a cleared auction in delivery order, without
    their curves (up to two price levels per tick each: read them one hour
    at a time with ``dayahead_hour``)."""
    return list(DayAheadHour.objects.filter(auction=auction).defer("buy_curve", "sell_curve").order_by("position"))


def dayahead_hour(*, auction: DayAheadAuction, label: str) -> DayAheadHour | None:
    return DayAheadHour.objects.filter(auction=auction, hour=label).first()


def dayahead_indicative(*, auction: DayAheadAuction) -> DayAheadIndicative | None:
    return DayAheadIndicative.objects.filter(auction=auction).first()


# --- summaries for the dashboards ----------------------------------------------------------


def mean_price(prices: list[Decimal]) -> Decimal | None:
    """The mean of hourly prices, half up to the cent; None without any. The
    hours without a price (no bid at all) are left out, as the Base index
    leaves them out (docs/architecture.md, "Indices")."""
    if not prices:
        return None
    return (sum(prices, Decimal(0)) / len(prices)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class DaySummary:
    """One auction's day in figures. ``volume`` is in GPU-hours (each hour's
    GPUs for one hour)."""

    delivery_date: date
    gpu_class: str
    zone: str
    status: DayStatus
    mean_price: Decimal | None
    low: Decimal | None
    high: Decimal | None
    volume: int
    computed_at: datetime | None = None  # indicative results: when the book was last cleared


def latest_cleared(*, limit: int = 100) -> list[DaySummary]:
    """For each class and zone, its latest cleared day in figures: class,
    then zone (``DE`` first)."""
    # One index probe per class and zone (auction_series_latest), not a sort of every auction ever held.
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT latest.id FROM market_gpuclass c CROSS JOIN market_deliveryzone z
            CROSS JOIN LATERAL (SELECT a.id FROM market_dayaheadauction a
                                WHERE a.gpu_class_id = c.id AND a.zone_id = z.id AND a.status = %s
                                ORDER BY a.delivery_date DESC LIMIT 1) AS latest""", [AuctionStatus.CLEARED])
        ids = [row[0] for row in cursor.fetchall()]
    latest = list(DayAheadAuction.objects.filter(pk__in=ids).select_related("gpu_class", "zone")
                  .order_by("gpu_class__code", "zone__code")[:limit])
    figures = {row["auction"]: row for row in (
        DayAheadHour.objects.filter(auction__in=latest).values("auction")
        .annotate(mean=Avg("price"), low=Min("price"), high=Max("price"), volume=Sum("volume"),
                  priced=Count("price")))}
    summaries = []
    for auction in latest:
        row: dict[str, Any] = figures.get(auction.pk, {})
        mean = row.get("mean")
        summaries.append(DaySummary(
            delivery_date=auction.delivery_date, gpu_class=auction.gpu_class.code, zone=auction.zone.code,
            status="cleared", mean_price=None if mean is None else Decimal(mean).quantize(CENT, ROUND_HALF_UP),
            low=row.get("low"), high=row.get("high"), volume=row.get("volume") or 0,
        ))
    return summaries


def indicative_summaries(*, day: date, now: datetime) -> list[DaySummary]:
    """The auctions of ``day`` that have indicative results and are not
    cleared yet, in figures."""
    auctions = (DayAheadAuction.objects.filter(delivery_date=day, indicative__isnull=False)
                .exclude(status=AuctionStatus.CLEARED).select_related("gpu_class", "zone", "indicative")
                .order_by("gpu_class__code", "zone__code"))
    summaries = []
    for auction in auctions:
        indicative = auction.indicative
        prices = [Decimal(str(h["price"])) for h in indicative.hours if h.get("price") is not None]
        summaries.append(DaySummary(
            delivery_date=day, gpu_class=auction.gpu_class.code, zone=auction.zone.code,
            status=auction_status(auction, now), mean_price=mean_price(prices),
            low=min(prices, default=None), high=max(prices, default=None),
            volume=sum(int(h.get("volume") or 0) for h in indicative.hours), computed_at=indicative.computed_at,
        ))
    return summaries

