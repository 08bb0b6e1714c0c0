"""The day-ahead auction: bid entry, indicative clearing, the run at gate
closure and its booking (market rules §2.1, §3, §4; docs/architecture.md
"Day-ahead auction (issue 9)").

``market.auction`` (pure) clears; this module checks, locks, persists and
books. Lock order (``exchange.locks``), always: the auction row (at the
level of an instrument; nothing locks an instrument before an auction) ->
the day's hourly instruments ascending id (the run only) -> organisations
ascending id -> ledger accounts ascending id.

Decisions (docs/architecture.md has the reasons):

* One curve per member, class, zone and hour (the contract): a new curve for
  an hour replaces the active one, whatever its side, and releases its
  reservation in the same transaction.
* A buy reserves its worst case: a curve ``Σ price_i·qty_i + max_fee(rate,
  Σ qty_i, 1)``, a block ``price·q·n + max_fee(rate, q, n)``. A sell block
  reserves ``max_fee(rate, q·n, 1)``: an hour of an accepted block can clear
  below the price at which the fee is covered by the proceeds (the block is
  in the money only on average); the shortfall is taken from that
  reservation. Sell steps and sell blocks are priced at least
  ``clearing.fees.min_sell_price`` of the day-ahead rate.
* A member's accepted buys and sells in one hour are netted: only the net
  trades (and pays fees), with the CCP as counterparty of every trade; the
  net sellers are allocated to the net buyers pro rata
  (``market.auction.allocate``), one ``Trade`` per (buyer, seller) pair in
  the hour's instrument, with delivery tickets as for intraday.
* Fees: 0.01 EUR/GPUh per side (the schedule's day-ahead rate): the lower of
  the rate in force at the entry of the member's bids (the lowest of them)
  and the rate in force at the run.
* The run claims the auction with a guarded UPDATE inside the one
  transaction that books everything; a second run waits for the row and
  finds it cleared; a run killed half-way leaves nothing, so the next run
  books it all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services import trading_gate
from clearing import fees
from clearing.models import Account, JournalEntry
from clearing.selectors import fee_terms_at
from clearing.services import Posting, delivery_tickets_for_trade, ledger_post_all, release_posting, trade_posting
from clearing.services.fees import FeeBook
from clearing.services.ledger import lock_and_read_accounts, reserve_posting, reserved_spend_lines
from exchange import rawsql
from exchange.errors import ExchangeError
from exchange.formats import number
from market import auction as core
from market import broadcast, calendar
from market.capacity import is_feasible
from market.models import (
    AuctionStatus,
    BidKind,
    BidStatus,
    DayAheadAcceptance,
    DayAheadAuction,
    DayAheadBid,
    DayAheadCommitment,
    DayAheadHour,
    DayAheadIndicative,
    DayAheadStep,
    DeliveryZone,
    GpuClass,
    Instrument,
    Side,
    Trade,
)
from market.services.capacity import as_commitments, capacity_by_state, dayahead_commitments, hour_commitments
from market.services.catalogue import hour_instruments
from market.services.orders import MAX_ORDER_QUANTITY, _PositionDelta, _positions_add, _with_retries

if TYPE_CHECKING:
    from accounts.models import Organisation, User

log = logging.getLogger(__name__)

MAX_STEPS = 64
TICK = Decimal("0.01")
MAR_PLACES = Decimal("0.0001")
GROUP_PATTERN = re.compile(r"^[\w.\-]{1,40}$")
ZERO = Decimal("0.00")


def _invalid(fields: dict[str, list[str]], detail: str | None = None) -> ExchangeError:
    return ExchangeError("invalid", detail or _("The bid is invalid."), fields)


def _closed(auction_date: date) -> ExchangeError:
    return ExchangeError("auction_closed", _(
        "The day-ahead auction for %(day)s does not take bids now: the book opens at 00:00 fourteen days ahead "
        "and closes at gate closure, 12:00 on the day before delivery.") % {"day": auction_date.isoformat()})


# --- reading the request ----------------------------------------------------------------------


@dataclass(frozen=True)
class BidSpec:
    """A checked bid, before any lock."""

    delivery_date: date
    gpu_class: GpuClass
    zone: DeliveryZone
    side: str
    kind: str
    hour: str = ""
    steps: tuple[tuple[Decimal, int], ...] = ()
    first_hour: str = ""
    last_hour: str = ""
    hours: int = 1
    price: Decimal | None = None
    quantity: int | None = None
    min_acceptance_ratio: Decimal | None = None
    exclusive_group: str = ""

    @property
    def total_quantity(self) -> int:
        """GPUs it may sell or buy in its largest hour."""
        if self.kind == BidKind.CURVE:
            return sum(q for _p, q in self.steps)
        return self.quantity or 0


def _price(value: Any, gpu_class: GpuClass, field: str, side: str, rate: Decimal) -> Decimal:
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise _invalid({field: [_("Enter a price in EUR/GPUh, e.g. 12.50.")]}) from None
    if not price.is_finite():
        raise _invalid({field: [_("Enter a price in EUR/GPUh, e.g. 12.50.")]})
    if price != price.quantize(TICK, rounding="ROUND_DOWN"):
        raise ExchangeError("tick_size", _("Prices are in steps of 0.01 EUR/GPUh."),
                            {field: [_("Prices are in steps of 0.01 EUR/GPUh.")]})
    low, high = gpu_class.min_price, gpu_class.max_price
    if side == Side.SELL:
        low = max(low, fees.min_sell_price(rate))
    if not low <= price <= high:
        message = _("The price must be between %(low)s and %(high)s EUR/GPUh.") % {
            "low": number(low), "high": number(high)}
        raise ExchangeError("price_out_of_bounds", message, {field: [message]})
    return price.quantize(TICK)


def _quantity(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid({field: [_("Enter a whole number of GPUs.")]})
    try:
        quantity = int(value)
    except ValueError:
        raise _invalid({field: [_("Enter a whole number of GPUs.")]}) from None
    if not 1 <= quantity <= MAX_ORDER_QUANTITY:
        raise _invalid({field: [_("Between 1 and %(most)d GPUs.") % {"most": MAX_ORDER_QUANTITY}]})
    return quantity


def _hour(day: date, label: Any, field: str) -> calendar.DeliveryHour:
    try:
        return calendar.delivery_hour(day, str(label or ""))
    except calendar.CalendarError:
        labels = ", ".join(h.label for h in calendar.day_hours(day))
        raise _invalid({field: [_("Not an hour of this delivery day; its hours are %(labels)s.") % {
            "labels": labels}]}) from None


def bid_spec(*, delivery_date: date, gpu_class: str, zone: str, side: str, kind: str, hour: Any = None,
             steps: Any = None, first_hour: Any = None, last_hour: Any = None, price: Any = None,
             quantity: Any = None, min_acceptance_ratio: Any = None, exclusive_group: Any = "",
             rate: Decimal | None = None) -> BidSpec:
    """Check a bid's fields (no lock, nothing written); ``ExchangeError`` at the field."""
    errors: dict[str, list[str]] = {}
    klass = GpuClass.objects.filter(code=gpu_class, active=True).first() if isinstance(gpu_class, str) else None
    if klass is None:
        errors["gpu_class"] = [_("Unknown GPU class.")]
    place = DeliveryZone.objects.filter(code=zone).first() if isinstance(zone, str) else None
    if place is None:
        errors["zone"] = [_("Unknown delivery zone.")]
    if side not in Side.values:
        errors["side"] = [_("Choose buy or sell.")]
    if kind not in BidKind.values:
        errors["kind"] = [_("Choose curve or block.")]
    if errors:
        raise _invalid(errors)
    assert klass is not None and place is not None  # noqa: S101 (checked above)
    rate = fee_terms_at(timezone.now()).day_ahead_per_side if rate is None else rate
    common: dict[str, Any] = {"delivery_date": delivery_date, "gpu_class": klass, "zone": place, "side": side,
                              "kind": kind}
    if kind == BidKind.CURVE:
        the_hour = _hour(delivery_date, hour, "hour")
        if not isinstance(steps, list | tuple) or not 1 <= len(steps) <= MAX_STEPS:
            raise _invalid({"steps": [_("Enter 1 to %(most)d steps of [price, quantity].") % {"most": MAX_STEPS}]})
        checked = []
        for index, step in enumerate(steps):
            if not isinstance(step, list | tuple) or len(step) != 2:
                raise _invalid({"steps": [_("Step %(n)d: enter [price, quantity].") % {"n": index + 1}]})
            checked.append((_price(step[0], klass, "steps", side, rate), _quantity(step[1], "steps")))
        if len({p for p, _q in checked}) != len(checked):
            raise _invalid({"steps": [_("Each price may appear once in a curve; add the quantities up.")]})
        if sum(q for _p, q in checked) > MAX_ORDER_QUANTITY:
            raise _invalid({"steps": [_("At most %(most)d GPUs in one curve.") % {"most": MAX_ORDER_QUANTITY}]})
        return BidSpec(**common, hour=the_hour.label, steps=tuple(checked))
    first = _hour(delivery_date, first_hour, "first_hour")
    last = _hour(delivery_date, last_hour, "last_hour")
    labels = [h.label for h in calendar.day_hours(delivery_date)]
    n = labels.index(last.label) - labels.index(first.label) + 1
    if n < 1:
        raise _invalid({"last_hour": [_("The last hour cannot come before the first hour.")]})
    try:
        mar = Decimal(str(1 if min_acceptance_ratio in (None, "") else min_acceptance_ratio))
    except (InvalidOperation, ValueError):
        mar = Decimal("NaN")
    if not mar.is_finite() or not 0 < mar <= 1 or mar != mar.quantize(MAR_PLACES, rounding="ROUND_DOWN"):
        raise _invalid({"min_acceptance_ratio": [_("A ratio above 0 and at most 1, e.g. 0.5 (4 decimals at most).")]})
    group = (exclusive_group or "").strip() if isinstance(exclusive_group, str | type(None)) else None
    if group is None or (group and not GROUP_PATTERN.match(group)):
        raise _invalid({"exclusive_group": [_("Up to 40 letters, digits, dots, dashes or underscores.")]})
    return BidSpec(**common, first_hour=first.label, last_hour=last.label, hours=n,
                   price=_price(price, klass, "price", side, rate), quantity=_quantity(quantity, "quantity"),
                   min_acceptance_ratio=mar.quantize(MAR_PLACES), exclusive_group=group)


def bid_reservation(spec: BidSpec, rate: Decimal) -> Decimal:
    """Cash a bid reserves at entry (see the module docstring)."""
    if spec.kind == BidKind.CURVE:
        if spec.side == Side.SELL:
            return ZERO
        value = sum((fees.trade_value(p, q, 1) for p, q in spec.steps), ZERO)
        return (value + fees.max_fee(rate, spec.total_quantity, 1)).quantize(fees.CENT)
    assert spec.price is not None and spec.quantity is not None  # noqa: S101
    if spec.side == Side.BUY:
        return fees.buy_reservation(spec.price, spec.quantity, spec.hours, rate)
    return fees.max_fee(rate, spec.quantity * spec.hours, 1)


# --- the auction row --------------------------------------------------------------------------


def _lock_auction(*, delivery_date: date, gpu_class: GpuClass, zone: DeliveryZone) -> DayAheadAuction:
    """The auction of (day, class, zone), created if missing, locked FOR NO KEY UPDATE."""
    DayAheadAuction.objects.bulk_create([DayAheadAuction(
        delivery_date=delivery_date, gpu_class=gpu_class, zone=zone,
        book_opens_at=calendar.dayahead_book_opens(delivery_date),
        gate_closure=calendar.dayahead_gate_closure(delivery_date))], ignore_conflicts=True)
    return (DayAheadAuction.objects.select_for_update(no_key=True).select_related("gpu_class", "zone")
            .get(delivery_date=delivery_date, gpu_class=gpu_class, zone=zone))


def auction_status(auction_date: date, now: datetime) -> str:
    """``open`` | ``closed`` of a delivery day's book at ``now`` (the calendar's window)."""
    if calendar.dayahead_book_opens(auction_date) <= now < calendar.dayahead_gate_closure(auction_date):
        return "open"
    return "closed"


# --- sell capacity ----------------------------------------------------------------------------


def _commitments_of(bids: Iterable[DayAheadBid], steps: Mapping[int, int]) -> dict[str, int]:
    """The most GPUs the member's active sell bids can sell in each hour
    label: its sell curve there, plus its sell blocks covering it (of an
    exclusive group, only the largest block covering the hour)."""
    out: dict[str, int] = defaultdict(int)
    groups: dict[tuple[str, str], int] = {}
    day_labels: list[str] | None = None
    for bid in bids:
        if bid.side != Side.SELL or bid.status != BidStatus.ACTIVE:
            continue
        if bid.kind == BidKind.CURVE:
            out[bid.hour] += steps.get(bid.pk, 0)
            continue
        if day_labels is None:
            day_labels = [h.label for h in calendar.day_hours(bid.auction.delivery_date)]
        first = day_labels.index(bid.first_hour)
        for label in day_labels[first:first + bid.hours]:
            if bid.exclusive_group:
                key = (bid.exclusive_group, label)
                groups[key] = max(groups.get(key, 0), bid.quantity or 0)
            else:
                out[label] += bid.quantity or 0
    for (_group, label), quantity in groups.items():
        out[label] += quantity
    return {label: quantity for label, quantity in out.items() if quantity}


def _rewrite_commitments(auction: DayAheadAuction, organisation_id: int) -> dict[str, int]:
    """Replace the organisation's commitment rows of this auction; answers them by hour label."""
    bids = list(DayAheadBid.objects.filter(auction=auction, organisation_id=organisation_id, side=Side.SELL,
                                           status=BidStatus.ACTIVE).select_related("auction"))
    totals = dict(DayAheadStep.objects.filter(bid__in=[b.pk for b in bids if b.kind == BidKind.CURVE])
                  .order_by().values_list("bid").annotate(q=Sum("quantity")))
    by_label = _commitments_of(bids, totals)
    DayAheadCommitment.objects.filter(auction=auction, organisation_id=organisation_id).delete()
    starts = {h.label: h.start for h in calendar.day_hours(auction.delivery_date)}
    DayAheadCommitment.objects.bulk_create([
        DayAheadCommitment(auction=auction, organisation_id=organisation_id, gpu_class_id=auction.gpu_class_id,
                           zone_id=auction.zone_id, hour_start=starts[label], gpus=gpus)
        for label, gpus in by_label.items()])
    return by_label


def _check_capacity(auction: DayAheadAuction, organisation: Organisation, before: Mapping[str, int],
                    after: Mapping[str, int]) -> None:
    """Refuse (``insufficient_capacity``) when an hour whose commitment grew
    can no longer be delivered by the organisation's sites together with
    everything else it sells or offers in that hour (intraday and every
    day-ahead zone)."""
    grown = [label for label, gpus in after.items() if gpus > before.get(label, 0)]
    if not grown:
        return
    capacity = capacity_by_state(organisation=organisation, gpu_class_ids=[auction.gpu_class_id]).get(
        auction.gpu_class_id, {})
    hours = {h.label: h for h in calendar.day_hours(auction.delivery_date)}
    offered = dayahead_commitments(organisation_id=organisation.pk, gpu_class_id=auction.gpu_class_id,
                                   starts=[hours[label].start for label in grown])
    for label in grown:
        start = hours[label].start
        by_zone: dict[str, int] = defaultdict(int)
        for row in hour_commitments(organisation_id=organisation.pk, gpu_class_id=auction.gpu_class_id,
                                    delivery_start=start):
            by_zone[row.zone] += row.committed
        for zone, gpus in offered.get(start, {}).items():
            by_zone[zone] += gpus
        if not is_feasible(capacity, as_commitments(by_zone)):
            names = {"hour": label, "zone": auction.zone.code, "gpus": after[label],
                     "committed": sum(by_zone.values())}
            if not capacity:
                detail = _("Your organisation has no registered capacity of this GPU class; register sites and "
                           "capacity on the provider page before offering it in the auction.")
            else:
                detail = _("Not enough free capacity in hour %(hour)s: your sites cannot deliver the %(committed)d "
                           "GPUs your organisation would then sell or offer in that hour.") % names
            raise ExchangeError("insufficient_capacity", detail, {"quantity": [detail]})


# --- bid entry and cancel ---------------------------------------------------------------------


def dayahead_bid_submit(*, user: User, delivery_date: date, gpu_class: str, zone: str, side: str, kind: str,
                        hour: Any = None, steps: Any = None, first_hour: Any = None, last_hour: Any = None,
                        price: Any = None, quantity: Any = None, min_acceptance_ratio: Any = None,
                        exclusive_group: Any = "", now: datetime | None = None) -> DayAheadBid:
    """Enter a bid (a new curve for an hour replaces the member's active one).

    Refusals: ``not_permitted``/``kyc_not_approved`` (the trading gate),
    ``trading_stopped`` (the kill switch), ``invalid``/``tick_size``/
    ``price_out_of_bounds`` at the field, ``auction_closed`` outside the
    book's window, ``insufficient_funds`` (a buy's reservation),
    ``insufficient_capacity`` (a sell that the sites cannot deliver)."""
    membership = trading_gate(user=user)
    rate = fee_terms_at(now or timezone.now()).day_ahead_per_side
    spec = bid_spec(delivery_date=delivery_date, gpu_class=gpu_class, zone=zone, side=side, kind=kind, hour=hour,
                    steps=steps, first_hour=first_hour, last_hour=last_hour, price=price, quantity=quantity,
                    min_acceptance_ratio=min_acceptance_ratio, exclusive_group=exclusive_group, rate=rate)
    return _with_retries(lambda: _submit_tx(user=user, organisation=membership.organisation, spec=spec, now=now))


@transaction.atomic(durable=True)
def _submit_tx(*, user: User, organisation: Organisation, spec: BidSpec, now: datetime | None) -> DayAheadBid:
    from market.services.orders import _check_not_stopped

    auction = _lock_auction(delivery_date=spec.delivery_date, gpu_class=spec.gpu_class, zone=spec.zone)
    now = now or timezone.now()  # read after the lock
    if not auction.accepts_bids_at(now):
        raise _closed(spec.delivery_date)
    book = lock_and_read_accounts([organisation.pk])
    _check_not_stopped(organisation.pk)
    rate = fee_terms_at(now).day_ahead_per_side
    postings: list[Posting] = []
    replaced = None
    if spec.kind == BidKind.CURVE:
        replaced = (DayAheadBid.objects.filter(auction=auction, organisation=organisation, kind=BidKind.CURVE,
                                               hour=spec.hour, status=BidStatus.ACTIVE).first())
    before: dict[str, int] = {}
    if spec.side == Side.SELL or (replaced is not None and replaced.side == Side.SELL):
        labels = {h.start: h.label for h in calendar.day_hours(auction.delivery_date)}
        before = {labels[start]: gpus for start, gpus in DayAheadCommitment.objects.filter(
            auction=auction, organisation=organisation).values_list("hour_start", "gpus")}
    if replaced is not None:
        DayAheadBid.objects.filter(pk=replaced.pk).update(status=BidStatus.REPLACED, ended_at=now,
                                                          reserved_amount=ZERO)
        if replaced.reserved_amount > 0:
            postings.append(release_posting(book=book, organisation_id=organisation.pk,
                                            amount=replaced.reserved_amount, reference=f"dayahead-bid:{replaced.pk}",
                                            actor=user, credits=True))
    auction.bid_sequence += 1
    DayAheadAuction.objects.filter(pk=auction.pk).update(bid_sequence=auction.bid_sequence)
    reservation = bid_reservation(spec, rate)
    bid = DayAheadBid.objects.create(
        auction=auction, organisation=organisation, placed_by=user, kind=spec.kind, side=spec.side, hour=spec.hour,
        first_hour=spec.first_hour, last_hour=spec.last_hour, hours=spec.hours, price=spec.price,
        quantity=spec.quantity, min_acceptance_ratio=spec.min_acceptance_ratio,
        exclusive_group=spec.exclusive_group, sequence=auction.bid_sequence, reserved_amount=reservation,
        fee_rate=rate)
    if spec.steps:
        DayAheadStep.objects.bulk_create([DayAheadStep(bid=bid, position=i, price=p, quantity=q)
                                          for i, (p, q) in enumerate(spec.steps)])
    if reservation > 0:
        postings.append(reserve_posting(book=book, organisation_id=organisation.pk, amount=reservation,
                                        reference=f"dayahead-bid:{bid.pk}", actor=user, credits=True))
    if postings:
        ledger_post_all(postings)
    if spec.side == Side.SELL or (replaced is not None and replaced.side == Side.SELL):
        after = _rewrite_commitments(auction, organisation.pk)
        _check_capacity(auction, organisation, before, after)
    return bid


def _own_bid(user: User, bid_id: Any) -> tuple[Organisation, DayAheadBid]:
    from accounts.selectors import membership_for

    membership = membership_for(user)
    bid = None
    if membership is not None and str(bid_id).isdigit():
        bid = (DayAheadBid.objects.filter(pk=int(bid_id), organisation=membership.organisation)
               .select_related("auction").first())
    if bid is None or membership is None:
        raise ExchangeError("not_found", _("No such bid."))
    return membership.organisation, bid


def dayahead_bid_cancel(*, user: User, bid_id: Any, now: datetime | None = None) -> DayAheadBid:
    """Withdraw an active bid before gate closure; its reservation goes back."""
    trading_gate(user=user)
    organisation, bid = _own_bid(user, bid_id)
    return _with_retries(lambda: _cancel_tx(user=user, organisation=organisation, bid_id=bid.pk,
                                            auction_id=bid.auction_id, now=now))


@transaction.atomic(durable=True)
def _cancel_tx(*, user: User, organisation: Organisation, bid_id: int, auction_id: int,
               now: datetime | None) -> DayAheadBid:
    auction = DayAheadAuction.objects.select_for_update(no_key=True).get(pk=auction_id)
    now = now or timezone.now()
    if not auction.accepts_bids_at(now):
        raise _closed(auction.delivery_date)
    book = lock_and_read_accounts([organisation.pk])
    bid = DayAheadBid.objects.get(pk=bid_id)
    if bid.status != BidStatus.ACTIVE:
        raise ExchangeError("order_not_open", _("The bid is no longer active (%(status)s).") % {
            "status": bid.get_status_display()}, status=409)
    released = bid.reserved_amount
    bid.status, bid.ended_at, bid.reserved_amount = BidStatus.CANCELLED, now, ZERO
    bid.save(update_fields=["status", "ended_at", "reserved_amount"])
    if released > 0:
        ledger_post_all([release_posting(book=book, organisation_id=organisation.pk, amount=released,
                                         reference=f"dayahead-bid:{bid.pk}", actor=user, credits=True)])
    if bid.side == Side.SELL:
        _rewrite_commitments(auction, organisation.pk)
    return bid


# --- reading a book ---------------------------------------------------------------------------


@dataclass
class _Book:
    bids: list[DayAheadBid]
    steps: list[core.Step]
    blocks: list[core.Block]
    hours: list[str]
    rules: core.PriceRules

    def fingerprint(self) -> str:
        canonical = {
            "hours": self.hours,
            "rules": [str(self.rules.min_price), str(self.rules.max_price), str(self.rules.tick)],
            "steps": [[s.bid, s.hour, str(s.side), str(s.price), s.quantity, s.priority] for s in self.steps],
            "blocks": [[b.id, str(b.side), b.first_hour, b.last_hour, str(b.price), b.quantity,
                        str(b.min_acceptance_ratio),
                        list(cast(tuple, b.exclusive_group)) if b.exclusive_group else None, b.priority]
                       for b in self.blocks],
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _read_book(auction: DayAheadAuction) -> _Book:
    bids = list(DayAheadBid.objects.filter(auction=auction, status=BidStatus.ACTIVE).order_by("sequence"))
    by_id = {bid.pk: bid for bid in bids}
    steps = [
        core.Step(bid=step.bid_id, hour=by_id[step.bid_id].hour, side=core.Side(by_id[step.bid_id].side),
                  price=step.price, quantity=step.quantity, priority=by_id[step.bid_id].sequence)
        for step in DayAheadStep.objects.filter(bid__in=[b.pk for b in bids if b.kind == BidKind.CURVE])
        .order_by("bid_id", "position")
    ]
    blocks = [
        core.Block(id=bid.pk, side=core.Side(bid.side), first_hour=bid.first_hour, last_hour=bid.last_hour,
                   price=cast(Decimal, bid.price), quantity=cast(int, bid.quantity),
                   min_acceptance_ratio=cast(Decimal, bid.min_acceptance_ratio),
                   exclusive_group=(bid.organisation_id, bid.exclusive_group) if bid.exclusive_group else None,
                   priority=bid.sequence)
        for bid in bids if bid.kind == BidKind.BLOCK
    ]
    klass = auction.gpu_class
    return _Book(bids=bids, steps=steps, blocks=blocks,
                 hours=[h.label for h in calendar.day_hours(auction.delivery_date)],
                 rules=core.PriceRules(min_price=klass.min_price, max_price=klass.max_price, tick=TICK))


def _time_limit() -> float:
    return float(getattr(settings, "DAYAHEAD_TIME_LIMIT_SECONDS", 60.0))


# --- indicative prices ------------------------------------------------------------------------


INDICATIVE_AFTER_OPENING = calendar.HOUR


def dayahead_indicative_run(*, now: datetime | None = None) -> int:
    """Clear every open auction's current book (from one hour after the
    book opens until gate closure) and keep the result as its indicative
    prices; answers how many were computed. Reads without locks: a snapshot."""
    now = now or timezone.now()
    count = 0
    due = DayAheadAuction.objects.filter(status=AuctionStatus.OPEN, gate_closure__gt=now,
                                         book_opens_at__lte=now - INDICATIVE_AFTER_OPENING)
    for auction in due.select_related("gpu_class", "zone").order_by("id"):
        book = _read_book(auction)
        if not book.bids:
            continue
        result = core.clear(hours=book.hours, steps=book.steps, blocks=book.blocks, rules=book.rules,
                            time_limit=min(_time_limit(), 20.0))
        hours = [{"hour": h.hour, "price": None if h.price is None else str(h.price), "volume": h.volume}
                 for h in result.hours]
        DayAheadIndicative.objects.update_or_create(auction=auction, defaults={"computed_at": now, "hours": hours})
        count += 1
    return count


# --- the run ----------------------------------------------------------------------------------


def auctions_clear_due(*, now: datetime | None = None, delivery_date: date | None = None) -> int:
    """Clear every auction past gate closure that is not cleared yet (the
    beat job, and ``run_dayahead_auction --date``); answers how many this
    call cleared."""
    now = now or timezone.now()
    due = DayAheadAuction.objects.filter(status=AuctionStatus.OPEN, gate_closure__lte=now)
    if delivery_date is not None:
        due = due.filter(delivery_date=delivery_date)
    cleared = 0
    for auction_id in due.order_by("delivery_date", "id").values_list("id", flat=True):
        if auction_clear(auction_id=auction_id, now=now):
            cleared += 1
    return cleared


def auction_clear(*, auction_id: int, now: datetime | None = None) -> bool:
    """Clear one auction and book its result; True if this call cleared it
    (False: already cleared, or not past gate closure)."""
    return _with_retries(lambda: _clear_tx(auction_id=auction_id, now=now))


def _claim(auction_id: int, now: datetime) -> DayAheadAuction | None:
    table = connection.ops.quote_name(DayAheadAuction._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, cleared_at = %s WHERE id = %s AND status = %s "  # noqa: S608
            f"AND gate_closure <= %s RETURNING id",
            [AuctionStatus.CLEARED, rawsql.db_time(now), auction_id, AuctionStatus.OPEN, rawsql.db_time(now)])
        if cursor.fetchone() is None:
            return None
    return DayAheadAuction.objects.select_related("gpu_class", "zone").get(pk=auction_id)


@dataclass
class _Party:
    """One organisation's accepted GPUs per hour and what it holds for the run."""

    buy: dict[str, int]
    sell: dict[str, int]
    reserved: Decimal = ZERO
    sell_fee_reserved: Decimal = ZERO
    rate: Decimal | None = None

    def take_rate(self, rate: Decimal) -> None:
        self.rate = rate if self.rate is None else min(self.rate, rate)


@transaction.atomic(durable=True)
def _clear_tx(*, auction_id: int, now: datetime | None) -> bool:
    now = now or timezone.now()
    auction = _claim(auction_id, now)
    if auction is None:
        return False
    book = _read_book(auction)
    result = core.clear(hours=book.hours, steps=book.steps, blocks=book.blocks, rules=book.rules,
                        time_limit=_time_limit())
    accepted = core.accepted_by_bid(book.steps, result)
    labels = book.hours
    position_of = {label: i for i, label in enumerate(labels)}
    prices = result.prices()

    # Accepted GPUs per bid and hour, and per organisation.
    per_bid: dict[int, dict[str, int]] = {}
    parties: dict[int, _Party] = {}
    for bid in book.bids:
        party = parties.setdefault(bid.organisation_id, _Party(buy=defaultdict(int), sell=defaultdict(int)))
        party.take_rate(bid.fee_rate)
        if bid.side == Side.BUY:
            party.reserved += bid.reserved_amount
        else:
            party.sell_fee_reserved += bid.reserved_amount
        if bid.kind == BidKind.CURVE:
            got = {bid.hour: accepted.get(bid.pk, {}).get(bid.hour, 0)}
        else:
            quantity = result.blocks[bid.pk].accepted_quantity
            first = position_of[bid.first_hour]
            got = {label: quantity for label in labels[first:first + bid.hours]}
        per_bid[bid.pk] = got
        target = party.buy if bid.side == Side.BUY else party.sell
        for label, quantity in got.items():
            target[label] += quantity

    # The trades of each hour: net buyers against net sellers, pro rata.
    planned: list[tuple[str, int, int, int]] = []  # (hour, buyer, seller, GPUs)
    for label in labels:
        net = {org: party.buy.get(label, 0) - party.sell.get(label, 0) for org, party in parties.items()}
        buyers = {org: q for org, q in net.items() if q > 0}
        sellers = {org: -q for org, q in net.items() if q < 0}
        for (buyer, seller), quantity in core.allocate(buyers, sellers).items():
            planned.append((label, buyer, seller, quantity))

    # Locks, in the one order: instruments, organisations, accounts.
    instruments: dict[str, Instrument] = {}
    if planned:
        instruments = hour_instruments(gpu_class=auction.gpu_class, zone=auction.zone, day=auction.delivery_date,
                                       labels=sorted({p[0] for p in planned}, key=position_of.__getitem__),
                                       now=now, lock=True)
    ledger = lock_and_read_accounts(parties.keys()) if parties else None
    rate_now = fee_terms_at(now).day_ahead_per_side
    fee_book = FeeBook.load(parties.keys(), now)
    postings: list[Posting] = []
    trades: list[tuple[Trade, Decimal, Decimal, Decimal]] = []  # trade, buyer held, seller held, shortfall
    used: dict[int, Decimal] = defaultdict(lambda: ZERO)
    shortfall_used: dict[int, Decimal] = defaultdict(lambda: ZERO)
    positions: dict[int, dict[int, _PositionDelta]] = defaultdict(lambda: defaultdict(_PositionDelta))
    for label, buyer, seller, quantity in planned:
        instrument = instruments[label]
        price = prices[label]
        assert price is not None  # noqa: S101 (an hour that trades has a price)
        buyer_rate = min(parties[buyer].rate or rate_now, rate_now)
        seller_rate = min(parties[seller].rate or rate_now, rate_now)
        trade = Trade(instrument=instrument, auction=auction, buyer_id=buyer, seller_id=seller, price=price,
                      quantity=quantity, aggressor="", buyer_fee=fees.exact_fee(buyer_rate, quantity, 1),
                      seller_fee=fees.exact_fee(seller_rate, quantity, 1), executed_at=now)
        buyer_held = fee_book.charge(buyer, trade.buyer_fee)
        seller_step = fee_book.charge(seller, trade.seller_fee)
        value = fees.trade_value(price, quantity, 1)
        seller_held = min(seller_step, value)
        trades.append((trade, buyer_held, seller_held, seller_step - seller_held))
        used[buyer] += value + buyer_held
        shortfall_used[seller] += seller_step - seller_held
        for org, sign in ((buyer, 1), (seller, -1)):
            delta = positions[instrument.pk][org]
            delta.quantity += sign * quantity
            if sign > 0:
                delta.bought += quantity
                delta.buy_cost += price * quantity
            else:
                delta.sold += quantity
                delta.sell_proceeds += price * quantity
    if trades:
        rawsql.insert_many([t for t, *_rest in trades])
        assert ledger is not None  # noqa: S101
        for trade, buyer_held, seller_held, shortfall in trades:
            postings.append(trade_posting(trade=trade, reservation=fees.trade_value(trade.price, trade.quantity, 1)
                                          + buyer_held, hours=1, book=ledger, buyer_held=buyer_held,
                                          seller_held=seller_held, credits=True))
            if shortfall > 0:
                postings.append(Posting(kind=JournalEntry.Kind.TRADE, reference=f"trade:{trade.pk}", lines=[
                    *reserved_spend_lines(ledger, trade.seller_id, shortfall, credits=True),
                    (ledger.member(trade.seller_id, Account.Kind.FEE_RESERVE), shortfall)]))
            delivery_tickets_for_trade(trade=trade, buyer_held=buyer_held, seller_held=seller_held)
        for instrument_id, deltas in positions.items():
            _positions_add(instrument_id, deltas)
        Instrument.objects.filter(pk__in=[i.pk for i in instruments.values()]).filter(
            Q(last_trade_at__isnull=True) | Q(last_trade_at__lt=now)).update(last_trade_at=now)
    # What the bids reserved and the run did not use goes back.
    for org, party in sorted(parties.items()):
        left = party.reserved + party.sell_fee_reserved - used[org] - shortfall_used[org]
        if left < 0:
            raise AssertionError(f"auction {auction.pk}: organisation {org} used more than it reserved")
        if left > 0:
            assert ledger is not None  # noqa: S101
            postings.append(release_posting(book=ledger, organisation_id=org, amount=left,
                                            reference=f"dayahead:{auction.pk}", credits=True))
    if postings:
        ledger_post_all(postings, savepoint=False)
    fee_book.save()

    _store_result(auction, book, result, per_bid, now)
    transaction.on_commit(lambda: _after_clearing(auction.pk), robust=True)
    log.info("day-ahead auction %s cleared: %s bids, %s trades, method %s", auction, len(book.bids), len(trades),
             result.method)
    return True


def _curves(book: _Book, result: core.AuctionResult, per_bid: Mapping[int, Mapping[str, int]],
            ) -> dict[str, tuple[list[list[Any]], list[list[Any]]]]:
    """The aggregated curves of each hour: curve steps by price (buy falling,
    sell rising), with the accepted block quantities as price-taking GPUs at
    the price bound, cumulated."""
    levels: dict[str, dict[str, dict[Decimal, int]]] = {h: {"buy": defaultdict(int), "sell": defaultdict(int)}
                                                         for h in book.hours}
    for step in book.steps:
        levels[step.hour][str(step.side)][step.price] += step.quantity
    by_id = {bid.pk: bid for bid in book.bids}
    for block in book.blocks:
        bid = by_id[cast(int, block.id)]
        for label, quantity in per_bid[cast(int, block.id)].items():
            if quantity:
                bound = book.rules.max_price if bid.side == Side.BUY else book.rules.min_price
                levels[label][bid.side][bound] += quantity
    out = {}
    for label, sides in levels.items():
        curves = []
        for side, descending in (("buy", True), ("sell", False)):
            total = 0
            points = []
            for price in sorted(sides[side], reverse=descending):
                total += sides[side][price]
                points.append([str(price), total])
            curves.append(points)
        out[label] = (curves[0], curves[1])
    return out


def _store_result(auction: DayAheadAuction, book: _Book, result: core.AuctionResult,
                  per_bid: Mapping[int, Mapping[str, int]], now: datetime) -> None:
    DayAheadAcceptance.objects.bulk_create([
        DayAheadAcceptance(bid_id=bid_id, hour=label, quantity=quantity)
        for bid_id, got in per_bid.items() for label, quantity in got.items()])
    curves = _curves(book, result, per_bid)
    starts = {h.label: h.start for h in calendar.day_hours(auction.delivery_date)}
    DayAheadHour.objects.bulk_create([
        DayAheadHour(auction=auction, hour=h.hour, position=i, delivery_start=starts[h.hour], price=h.price,
                     volume=h.volume, buy_volume=h.offered_buy, sell_volume=h.offered_sell, price_low=h.price_low,
                     price_high=h.price_high, buy_curve=curves[h.hour][0], sell_curve=curves[h.hour][1])
        for i, h in enumerate(result.hours)])
    paradoxical = set(result.paradoxically_rejected)
    for bid in book.bids:
        bid.status, bid.ended_at, bid.reserved_amount = BidStatus.CLEARED, now, ZERO
        bid.paradoxically_rejected = bid.pk in paradoxical
    DayAheadBid.objects.bulk_update(book.bids, ["status", "ended_at", "reserved_amount", "paradoxically_rejected"])
    DayAheadCommitment.objects.filter(auction=auction).delete()
    DayAheadIndicative.objects.filter(auction=auction).delete()
    DayAheadAuction.objects.filter(pk=auction.pk).update(
        method=result.method.value, time_limit_hit=result.time_limit_hit, rounds=result.rounds,
        input_sha256=book.fingerprint())


def bid_accepted_quantities(bids: Sequence[DayAheadBid]) -> dict[int, dict[str, int]]:
    """Accepted GPUs per bid and hour label (cleared bids only)."""
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for bid_id, label, quantity in DayAheadAcceptance.objects.filter(bid__in=bids).values_list(
            "bid_id", "hour", "quantity"):
        out[bid_id][label] = quantity
    return dict(out)


def _after_clearing(auction_id: int) -> None:
    """The day's Base and Peak index (published at once; the beat job
    catches up if this fails), then private results to each member with
    bids (``/ws/private/``)."""
    from market.services.indices import index_compute_day

    auction = DayAheadAuction.objects.select_related("gpu_class", "zone").get(pk=auction_id)
    try:
        index_compute_day(day=auction.delivery_date, gpu_class_id=auction.gpu_class_id, zone_id=auction.zone_id)
    except Exception:  # the auction is booked; the index job publishes it within 15 minutes
        log.exception("index of %s not computed after clearing", auction)
    bids = list(DayAheadBid.objects.filter(auction=auction, status=BidStatus.CLEARED).order_by("sequence"))
    accepted = bid_accepted_quantities(bids)
    by_org: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for bid in bids:
        by_org[bid.organisation_id].append({"id": bid.pk, "kind": bid.kind, "side": bid.side,
                                            "accepted_quantity": accepted.get(bid.pk, {}),
                                            "paradoxically_rejected": bid.paradoxically_rejected})
    messages = [broadcast.private_message(org, {
        "type": "dayahead_result", "delivery_date": auction.delivery_date.isoformat(),
        "gpu_class": auction.gpu_class.code, "zone": auction.zone.code, "bids": items})
        for org, items in sorted(by_org.items())]
    if messages:
        broadcast.publish(messages)


__all__ = [
    "BidSpec", "auction_clear", "auction_status", "auctions_clear_due", "bid_accepted_quantities",
    "bid_reservation", "bid_spec", "dayahead_bid_cancel", "dayahead_bid_submit", "dayahead_indicative_run",
]
