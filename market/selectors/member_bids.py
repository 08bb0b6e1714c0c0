"""A member's own day-ahead bids, as the member screens show them
(``market.views.dayahead``): each bid with its steps, and after clearing its
accepted GPUs and the clearing price of each of its hours. Reads only the
organisation's own rows and the public hour results."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from market import calendar
from market.models import (
    BidKind,
    BidStatus,
    DayAheadAuction,
    DayAheadBid,
    DayAheadHour,
    DayAheadIndicative,
    DayAheadStep,
)
from market.services.dayahead import bid_accepted_quantities

if TYPE_CHECKING:
    from accounts.models import Organisation

# A replaced curve lives on in the curve that replaced it: not listed.
LISTED_STATUSES = (BidStatus.ACTIVE, BidStatus.CLEARED, BidStatus.CANCELLED)


@dataclass
class AcceptedHour:
    hour: str
    quantity: int
    price: Decimal | None  # the hour's clearing price


@dataclass
class BidRow:
    bid: DayAheadBid
    labels: list[str]  # the hours the bid covers, in delivery order
    start: datetime  # delivery start of its first hour
    end: datetime  # delivery end of its last hour
    steps: list[DayAheadStep] = field(default_factory=list)
    accepted: list[AcceptedHour] = field(default_factory=list)  # cleared bids only, every hour (0 too)

    @property
    def cleared(self) -> bool:
        return self.bid.status == BidStatus.CLEARED

    @property
    def total_quantity(self) -> int:
        """GPUs per hour the bid offers or asks for (a curve: all its steps)."""
        if self.bid.kind == BidKind.CURVE:
            return sum(step.quantity for step in self.steps)
        return self.bid.quantity or 0

    @property
    def accepted_total(self) -> int:
        return sum(hour.quantity for hour in self.accepted)

    @property
    def block_quantity(self) -> int:
        """A block is accepted with the same GPUs in each of its hours."""
        return self.accepted[0].quantity if self.accepted else 0

    @property
    def block_average_price(self) -> Decimal | None:
        """The mean clearing price over the block's hours (what its limit is compared with)."""
        prices = [hour.price for hour in self.accepted if hour.price is not None]
        if not prices or len(prices) != len(self.accepted):
            return None
        return (sum(prices, Decimal(0)) / len(prices)).quantize(Decimal("0.01"))


def member_bids(*, organisation: Organisation, delivery_date: date) -> list[BidRow]:
    """The organisation's bids for a delivery day in every class and zone
    (active, cleared, withdrawn), by class, zone, first hour and entry."""
    bids = list(DayAheadBid.objects.filter(organisation=organisation, auction__delivery_date=delivery_date,
                                           status__in=LISTED_STATUSES)
                .select_related("auction__gpu_class", "auction__zone", "placed_by"))
    hours = calendar.day_hours(delivery_date)
    labels = [h.label for h in hours]
    position = {label: i for i, label in enumerate(labels)}
    rows: dict[int, BidRow] = {}
    for bid in bids:
        first = position[bid.hour if bid.kind == BidKind.CURVE else bid.first_hour]
        covered = hours[first:first + bid.hours]
        rows[bid.pk] = BidRow(bid=bid, labels=[h.label for h in covered], start=covered[0].start,
                              end=covered[-1].end)
    for step in DayAheadStep.objects.filter(bid__in=[b.pk for b in bids if b.kind == BidKind.CURVE]).order_by(
            "bid", "position"):
        rows[step.bid_id].steps.append(step)
    cleared = [bid for bid in bids if bid.status == BidStatus.CLEARED]
    if cleared:
        accepted = bid_accepted_quantities(cleared)
        prices: dict[int, dict[str, Decimal | None]] = defaultdict(dict)
        for auction_id, hour, price in DayAheadHour.objects.filter(
                auction__in={bid.auction_id for bid in cleared}).values_list("auction", "hour", "price"):
            prices[auction_id][hour] = price
        for bid in cleared:
            got = accepted.get(bid.pk, {})
            rows[bid.pk].accepted = [AcceptedHour(hour=label, quantity=got.get(label, 0),
                                                  price=prices[bid.auction_id].get(label))
                                     for label in rows[bid.pk].labels]
    return sorted(rows.values(), key=lambda row: (
        row.bid.auction.gpu_class.code, row.bid.auction.zone.code, position[row.labels[0]], row.bid.sequence))


def active_curves(rows: list[BidRow], *, gpu_class: str, zone: str) -> dict[str, dict[str, object]]:
    """The active curves of one class and zone by hour label, for the curve
    editor: ``{"14": {"id", "side", "steps": [["15.00", 30], ...]}}``."""
    return {
        row.bid.hour: {"id": row.bid.pk, "side": row.bid.side,
                       "steps": [[str(step.price), step.quantity] for step in row.steps]}
        for row in rows
        if row.bid.kind == BidKind.CURVE and row.bid.status == BidStatus.ACTIVE
        and row.bid.auction.gpu_class.code == gpu_class and row.bid.auction.zone.code == zone
    }


def auction_of(*, delivery_date: date, gpu_class: str, zone: str) -> DayAheadAuction | None:
    """The auction of (day, class, zone) if it exists yet (it is created with its first bid)."""
    return (DayAheadAuction.objects.filter(delivery_date=delivery_date, gpu_class__code=gpu_class, zone__code=zone)
            .select_related("gpu_class", "zone").first())


def indicative_prices(auction: DayAheadAuction | None) -> dict[str, str]:
    """The latest public indicative price of each hour of an open auction (decimal strings)."""
    if auction is None:
        return {}
    indicative = DayAheadIndicative.objects.filter(auction=auction).first()
    if indicative is None:
        return {}
    return {str(hour["hour"]): str(hour["price"]) for hour in indicative.hours if hour.get("price") is not None}
