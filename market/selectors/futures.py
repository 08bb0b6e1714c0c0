"""What the futures screens show (issue 10, item 6): the board of one
class's listed futures and a member's positions and margin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Max, Min, OuterRef, Subquery

from market import calendar
from market.models import (
    RESTING_STATUSES,
    Instrument,
    InstrumentStatus,
    MarginCall,
    Order,
    Position,
    Segment,
    SettlementPrice,
    Side,
    Trade,
    VariationMargin,
)


@dataclass(frozen=True)
class BoardRow:
    instrument: Instrument
    kind: str  # M | Q | Y
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    dsp: Decimal | None
    dsp_date: date | None
    change: Decimal | None  # against the DSP before

    @property
    def last_day(self) -> date:
        return self.instrument.last_delivery_day


def futures_board(*, gpu_class: str, now: datetime) -> list[BoardRow]:
    """Every listed future of a class that has not started delivery, in delivery order (months, quarters, years)."""
    instruments = (Instrument.objects.filter(segment=Segment.FUTURES, gpu_class__code=gpu_class,
                                             closes_at__gt=now).exclude(status=InstrumentStatus.SETTLED)
                   .annotate(best_bid=Subquery(Order.objects.filter(instrument=OuterRef("pk"), side=Side.BUY,
                                                                    status__in=RESTING_STATUSES)
                                               .order_by().values("instrument").annotate(p=Max("price")).values("p")),
                             best_ask=Subquery(Order.objects.filter(instrument=OuterRef("pk"), side=Side.SELL,
                                                                    status__in=RESTING_STATUSES)
                                               .order_by().values("instrument").annotate(p=Min("price")).values("p")),
                             last=Subquery(Trade.objects.filter(instrument=OuterRef("pk")).order_by("-id")
                                           .values("price")[:1]))
                   .select_related("gpu_class", "zone"))
    prices: dict[int, list[tuple[date, Decimal]]] = {}
    for instrument_id, day, price in (SettlementPrice.objects.filter(instrument__in=[i.pk for i in instruments])
                                      .order_by("instrument_id", "-date").values_list("instrument_id", "date",
                                                                                      "price")):
        prices.setdefault(instrument_id, [])
        if len(prices[instrument_id]) < 2:
            prices[instrument_id].append((day, price))
    rows = []
    for instrument in instruments:
        latest = prices.get(instrument.pk, [])
        dsp = latest[0][1] if latest else None
        change = latest[0][1] - latest[1][1] if len(latest) == 2 else None
        rows.append(BoardRow(instrument=instrument, kind=instrument.period[0], bid=instrument.best_bid,
                             ask=instrument.best_ask, last=instrument.last, dsp=dsp,
                             dsp_date=latest[0][0] if latest else None, change=change))
    order = {"M": 0, "Q": 1, "Y": 2}
    return sorted(rows, key=lambda r: (order.get(r.kind, 3), r.instrument.delivery_start))


@dataclass(frozen=True)
class PositionRow:
    instrument: Instrument
    quantity: int
    entry_price: Decimal | None  # average price of the side held
    dsp: Decimal | None
    pnl: Decimal | None  # (DSP x net GPUs - buy cost + sell proceeds) x hours
    variation_margin: Decimal  # booked so far, all days


def futures_marks(*, organisation_id: int, instrument_ids: list[int]) -> dict[int, tuple[Decimal | None, Decimal]]:
    """Per future: its latest DSP (None before the first) and the variation
    margin booked to the organisation in it so far. Two queries."""
    if not instrument_ids:
        return {}
    latest = dict(SettlementPrice.objects.filter(instrument__in=instrument_ids)
                  .order_by("instrument_id", "-date").distinct("instrument_id").values_list("instrument_id", "price"))
    booked: dict[int, Decimal] = {}
    for instrument_id, amount in VariationMargin.objects.filter(
            organisation_id=organisation_id, instrument__in=instrument_ids).values_list("instrument_id", "amount"):
        booked[instrument_id] = booked.get(instrument_id, Decimal("0.00")) + amount
    return {pk: (latest.get(pk), booked.get(pk, Decimal("0.00"))) for pk in instrument_ids}


def futures_positions(*, organisation_id: int) -> list[PositionRow]:
    positions = (Position.objects.filter(organisation_id=organisation_id, instrument__segment=Segment.FUTURES)
                 .exclude(quantity=0).select_related("instrument").order_by("instrument__delivery_start"))
    marks = futures_marks(organisation_id=organisation_id, instrument_ids=[p.instrument_id for p in positions])
    rows = []
    for position in positions:
        if position.quantity > 0:
            entry = (position.buy_cost / position.bought).quantize(Decimal("0.0001")) if position.bought else None
        else:
            entry = (position.sell_proceeds / position.sold).quantize(Decimal("0.0001")) if position.sold else None
        dsp, variation = marks[position.instrument_id]
        pnl = None
        if dsp is not None:
            # Everything traded in the future at the settlement price: what the
            # daily variation margin has paid out in total (exact, no average).
            pnl = ((dsp * position.quantity - position.buy_cost + position.sell_proceeds)
                   * position.instrument.hours).quantize(Decimal("0.01"))
        rows.append(PositionRow(instrument=position.instrument, quantity=position.quantity, entry_price=entry,
                                dsp=dsp, pnl=pnl, variation_margin=variation))
    return rows


def margin_history(*, organisation_id: int, limit: int = 30) -> tuple[list[MarginCall], list[dict[str, object]]]:
    """The organisation's margin calls and its daily variation margin totals, newest first."""
    calls = list(MarginCall.objects.filter(organisation_id=organisation_id).order_by("-date")[:limit])
    days: dict[date, Decimal] = {}
    for day, amount in VariationMargin.objects.filter(organisation_id=organisation_id).order_by(
            "-date").values_list("date", "amount"):
        days[day] = days.get(day, Decimal("0.00")) + amount
    history = [{"date": day, "amount": amount} for day, amount in list(days.items())[:limit]]
    return calls, history


def forward_curve_points(rows: list[BoardRow]) -> list[dict[str, str]]:
    """The DSPs of the board as chart points at the middle of each delivery period."""
    points = []
    for row in rows:
        if row.dsp is None:
            continue
        middle = row.instrument.delivery_start + (row.instrument.delivery_end - row.instrument.delivery_start) / 2
        points.append({"symbol": row.instrument.symbol, "period": row.instrument.period, "kind": row.kind,
                       "start": row.instrument.delivery_start.astimezone(calendar.BERLIN).date().isoformat(),
                       "end": row.instrument.delivery_end.astimezone(calendar.BERLIN).date().isoformat(),
                       "middle": middle.astimezone(calendar.BERLIN).date().isoformat(), "price": str(row.dsp)})
    return points


__all__ = ["futures_board", "futures_positions", "margin_history", "forward_curve_points"]
