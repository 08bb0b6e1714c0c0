"""Trading screens: the markets overview (a grid of delivery hours x GPU
classes), the trading screen of one instrument with its cost preview, the
member's open orders in all instruments, and the portfolio.

The trading screen is server-rendered and then kept live by three WebSockets
(``market.consumers``; ``static/js/trading.js``): the book ladder, depth
chart, candles and trade tape from the public streams, and the member's own
orders and fills, which are fetched again as partials
(``hx-trigger="rb:refresh"``) whenever the private stream reports an order
or fill event. ``static/js/notify.js`` turns the private stream's fills
into notifications on every trading page (docs/architecture.md, "Markets
overview and trading screen").

Looking needs a login; order entry needs ``trading_gate`` (the order service
asks it again). Every write goes through ``market.services.orders``; an
``ExchangeError`` comes back at the form field it names. With htmx the forms
answer their partial (errors included, status 200, because htmx does not
swap 4xx answers); without JavaScript the same URLs answer a redirect or the
whole page.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, URLResolver, path
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event
from django_htmx.middleware import HtmxDetails

from accounts.models import Membership, User
from accounts.selectors import membership_for
from accounts.services import trading_gate_check
from clearing import fees
from clearing.fees import FeeRates
from clearing.selectors import account_summary, fee_rates_at, fee_reserve_balance
from exchange.errors import ExchangeError, add_error_to_form
from incentives.selectors import credits_summary
from market import calendar
from market.models import (
    RESTING_STATUSES,
    DeliveryZone,
    GpuClass,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    Segment,
    Side,
    TimeInForce,
)
from market.selectors import instrument_get, instrument_queryset
from market.selectors.orders import book_snapshot, fills_for, order_for, orders_for, positions_for, public_trades
from market.selectors.overview import SORT_CLASS_VOLUME, SORT_TIME, SORT_VOLUME, market_grid
from market.services import futures as futures_margin
from market.services import orders as order_services
from market.services.controls import kill_switch_engaged, kill_switch_refusal
from market.services.orders import check_price, entry_reservation, protection_price

BOOK_DEPTH = 10  # levels per side in the ladder
TAPE_LENGTH = 50  # trades in the tape
CHART_TRADES = 1000  # trades the price chart is drawn from (trading.js makes the candles)
# The candle intervals a trader can pick, in minutes (trading.js picks one to start with).
CHART_INTERVALS = [(1, "1m"), (5, "5m"), (15, "15m"), (60, "1h")]
ALL_ORDERS_LIMIT = 500  # rows on the all-open-orders page
DEFAULT_ZONE = "DE"  # the overview's zone until one is chosen
ORDERS_CHANGED = "rb:orders-changed"

# Errors the order service may raise without naming a field, and the field of
# the order form they are about (the others show above the form).
FIELD_OF_CODE = {
    "tick_size": "price",
    "price_out_of_bounds": "price",
    "insufficient_funds": "quantity",
    "insufficient_capacity": "quantity",
    "fok_not_fillable": "time_in_force",
    "post_only_would_trade": "post_only",
}


class TradingRequest(HttpRequest):
    """What the views see: login_required guarantees a user, HtmxMiddleware adds ``htmx``."""

    user: User
    htmx: HtmxDetails


# --- forms (shape only; the rules are the order service's) ----------------------------------


class OrderForm(forms.Form):
    side = forms.ChoiceField(label=gettext_lazy("Side"), choices=Side.choices, widget=forms.RadioSelect,
                             initial=Side.BUY)
    type = forms.ChoiceField(label=gettext_lazy("Order type"), choices=OrderType.choices, initial=OrderType.LIMIT)
    # No decimal places here: the tick is the service's rule (error tick_size).
    price = forms.DecimalField(
        label=gettext_lazy("Limit price (EUR/GPUh)"), required=False, localize=True, max_digits=14,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    quantity = forms.IntegerField(label=gettext_lazy("Quantity (GPUs)"), min_value=1,
                                  widget=forms.NumberInput(attrs={"inputmode": "numeric", "min": "1"}))
    time_in_force = forms.ChoiceField(
        label=gettext_lazy("Time in force"),
        choices=[(value, format_lazy("{} – {}", value, label)) for value, label in TimeInForce.choices],
        initial=TimeInForce.GTC,
    )
    expires_at = forms.DateTimeField(
        label=gettext_lazy("Expires at"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=gettext_lazy("Only for GTD; Europe/Berlin time."),
    )
    post_only = forms.BooleanField(label=gettext_lazy("Post-only (never takes liquidity)"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "0,00" or "0.00": the decimal separator the field accepts in this language.
        self.fields["price"].widget.attrs["placeholder"] = number_format(Decimal("0.00"), 2)


class AmendForm(forms.Form):
    quantity = forms.IntegerField(label=gettext_lazy("Quantity (GPUs)"), min_value=1,
                                  widget=forms.NumberInput(attrs={"inputmode": "numeric", "min": "1"}))
    price = forms.DecimalField(
        label=gettext_lazy("Limit price (EUR/GPUh)"), localize=True, max_digits=14,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )


def _zone_choices() -> list[tuple[str, str]]:
    return [(zone.code, f"{zone.code} – {zone.name}") for zone in DeliveryZone.objects.order_by("code")]


def _sort_choices() -> list[tuple[str, str]]:
    by_class = GpuClass.objects.filter(active=True).order_by("code").values_list("code", flat=True)
    return [(SORT_TIME, _("Delivery hour")), (SORT_VOLUME, _("Volume today, all classes"))] + [
        (f"{SORT_CLASS_VOLUME}{code}", _("Volume today, %(code)s") % {"code": code}) for code in by_class]


class OverviewFilterForm(forms.Form):
    """The grid's choices: one zone and one delivery day, empty instruments
    shown or not, the order of the hours. Every field has a default, so a
    bad or missing value falls back to it (``OverviewFilterForm.choice``)."""

    zone = forms.ChoiceField(label=gettext_lazy("Delivery zone"), required=False, choices=_zone_choices)
    delivery_date = forms.ChoiceField(label=gettext_lazy("Delivery day"), required=False)
    sort = forms.ChoiceField(label=gettext_lazy("Sort hours by"), required=False, choices=_sort_choices)
    show_empty = forms.BooleanField(label=gettext_lazy("Show empty instruments"), required=False)

    def __init__(self, *args: Any, today: datetime.date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tomorrow = today + datetime.timedelta(days=1)
        day = cast(forms.ChoiceField, self.fields["delivery_date"])
        day.choices = [(today.isoformat(), _("Today")), (tomorrow.isoformat(), _("Tomorrow"))]

    def choice(self, name: str, default: Any) -> Any:
        if self.is_bound and self.is_valid() and self.cleaned_data.get(name) not in (None, ""):
            return self.cleaned_data[name]
        return default


# --- helpers ------------------------------------------------------------------------------


def _instrument(symbol: str) -> Instrument:
    try:
        return instrument_get(symbol=symbol)
    except Instrument.DoesNotExist:
        raise Http404 from None


def _trading_refusal(membership: Membership | None) -> ExchangeError | None:
    try:
        trading_gate_check(membership, "trader")
    except ExchangeError as refused:
        return refused
    return None


def _ladder(bids: list[tuple[Decimal, int]], asks: list[tuple[Decimal, int]]) -> dict[str, Any]:
    """Rows of the book ladder as the page first shows it (trading.js redraws
    it from the WebSocket): asks from the highest down to the best, then bids
    from the best down, each padded to BOOK_DEPTH rows."""
    largest = max([quantity for _price, quantity in bids + asks] or [1])

    def rows(levels: list[tuple[Decimal, int]]) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        total = 0
        for price, quantity in levels[:BOOK_DEPTH]:
            total += quantity
            out.append({"price": price, "quantity": quantity, "total": total,
                        "share": round(quantity * 100 / largest)})
        return out + [None] * (BOOK_DEPTH - len(out))

    best_bid = bids[0][0] if bids else None
    best_ask = asks[0][0] if asks else None
    return {
        "asks": list(reversed(rows(asks))),
        "bids": rows(bids),
        "best_bid": best_bid,
        "best_ask": best_ask,
        "spread": best_ask - best_bid if best_bid is not None and best_ask is not None else None,
    }


def _tape_context(instrument: Instrument) -> dict[str, Any]:
    # The payloads are the trades stream's shape: trading.js draws the chart
    # from them and appends what the stream sends in the same shape.
    trades = public_trades(instrument=instrument, limit=CHART_TRADES)
    since = calendar.local_midnight(timezone.now().astimezone(calendar.BERLIN).date())
    tape = [{**trade, "price": Decimal(trade["price"]),
             "executed_at": datetime.datetime.fromisoformat(trade["executed_at"])} for trade in trades]
    return {
        "instrument": instrument,
        "tape": tape[:TAPE_LENGTH],
        "trade_data": trades,
        "last_trade": tape[0] if tape else None,
        "volume_today": sum(trade["quantity"] for trade in tape if trade["executed_at"] >= since),
    }


def _may_cancel(membership: Membership | None) -> bool:
    """The order service's cancel rule (traders and owners), on the membership read already."""
    try:
        trading_gate_check(membership, "trader" if membership is not None and membership.is_trader else "owner")
    except ExchangeError:
        return False
    return True


def _open_orders_context(membership: Membership | None, instrument: Instrument, **extra: Any) -> dict[str, Any]:
    orders = [] if membership is None else list(
        orders_for(organisation=membership.organisation, instrument=instrument, statuses=RESTING_STATUSES)
    )
    return {"instrument": instrument, "membership": membership, "open_orders": orders,
            "can_cancel": _may_cancel(membership), **extra}


def _fills_context(membership: Membership | None, instrument: Instrument) -> dict[str, Any]:
    fills = [] if membership is None else fills_for(
        organisation=membership.organisation, instrument=instrument, limit=TAPE_LENGTH)
    return {"instrument": instrument, "membership": membership,
            "fills": [(fill, fill.price * fill.quantity * instrument.hours) for fill in fills]}


def _form_context(instrument: Instrument, membership: Membership | None, form: OrderForm | None = None,
                  placed: Order | None = None) -> dict[str, Any]:
    return {
        "instrument": instrument,
        "form": form or OrderForm(auto_id="order_%s"),
        "placed": placed,
        "refusal": _trading_refusal(membership) or (
            kill_switch_refusal(organisation_id=membership.organisation_id) if membership is not None else None),
        "accepts_orders": instrument.accepts_orders_at(timezone.now()),
    }


def _instrument_page(request: HttpRequest, instrument: Instrument, *, form: OrderForm | None = None,
                     status: int = 200) -> HttpResponse:
    membership = membership_for(request.user)
    book = book_snapshot(instrument=instrument, depth=BOOK_DEPTH)
    context = {
        "instrument": instrument,
        "membership": membership,
        "book": _ladder(list(book.bids), list(book.asks)),
        "book_sequence": book.sequence,
        "book_depth": BOOK_DEPTH,
        **_tape_context(instrument),
        **_form_context(instrument, membership, form),
        **_open_orders_context(membership, instrument),
        **_fills_context(membership, instrument),
        "chart_intervals": CHART_INTERVALS,
        # Words trading.js writes into the page.
        "trading_text": {
            "live": _("live"), "offline": _("offline"), "buy": _("Buy"), "sell": _("Sell"),
            "bids": _("Bids"), "asks": _("Offers"), "gpus": _("GPUs"), "volume": _("Volume"),
            "open": pgettext("candle", "Open"), "high": pgettext("candle", "High"),
            "low": pgettext("candle", "Low"), "close": pgettext("candle", "Close"),
            "status": dict(OrderStatus.choices),
        },
    }
    return render(request, "market/trading/instrument.html", context, status=status)


def _own_order(membership: Membership | None, order_id: int) -> Order:
    """The organisation's order, or 404 (another member's order does not exist here)."""
    if membership is None:
        raise Http404
    view = order_for(organisation=membership.organisation, order_id=order_id)
    if view is None:
        raise Http404
    return view.order


def _place_error(form: forms.Form, error: ExchangeError) -> None:
    if not error.fields and error.code in FIELD_OF_CODE and FIELD_OF_CODE[error.code] in form.fields:
        error = ExchangeError(error.code, error.detail, {FIELD_OF_CODE[error.code]: [error.detail]})
    add_error_to_form(form, error)


# --- market overview ------------------------------------------------------------------------


@login_required
@require_GET
def market_overview(request: TradingRequest) -> HttpResponse:
    """The grid of delivery hours x GPU classes of one zone and day (docs:
    "Markets overview and trading screen"). Without a day it shows today,
    or tomorrow once today has nothing left to trade in the zone."""
    now = timezone.now()
    today = now.astimezone(calendar.BERLIN).date()
    form = OverviewFilterForm(request.GET or None, today=today)
    zone = form.choice("zone", DEFAULT_ZONE)
    day = datetime.date.fromisoformat(form.choice("delivery_date", today.isoformat()))
    show_empty = bool(form.choice("show_empty", False))
    sort = form.choice("sort", SORT_TIME)
    grid = market_grid(zone=zone, day=day, now=now, show_empty=show_empty, sort=sort)
    if not form.choice("delivery_date", "") and not grid.listed:
        day = today + datetime.timedelta(days=1)
        grid = market_grid(zone=zone, day=day, now=now, show_empty=show_empty, sort=sort)
    if not form.is_bound:
        form = OverviewFilterForm(initial={"zone": zone, "delivery_date": day.isoformat(), "sort": sort},
                                  today=today)
    query = {"zone": zone, "delivery_date": day.isoformat(), "sort": grid.sort}
    if show_empty:
        query["show_empty"] = "on"
    context = {"form": form, "grid": grid, "zone": zone, "day": day, "show_empty": show_empty,
               "query": urlencode(query), "now": now}
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "market/trading/_overview_grid.html", context)
    return render(request, "market/trading/overview.html", context)


# --- trading screen -------------------------------------------------------------------------


@login_required
@require_GET
def market_instrument(request: TradingRequest, symbol: str) -> HttpResponse:
    return _instrument_page(request, _instrument(symbol))


@login_required
@require_POST
def market_order_submit(request: TradingRequest, symbol: str) -> HttpResponse:
    instrument = _instrument(symbol)
    form = OrderForm(request.POST, auto_id="order_%s")
    placed: Order | None = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            result = order_services.order_submit(
                user=request.user, instrument=instrument, side=data["side"], type=data["type"],
                quantity=data["quantity"], price=data["price"], time_in_force=data["time_in_force"],
                expires_at=data["expires_at"], post_only=data["post_only"],
            )
        except ExchangeError as error:
            _place_error(form, error)
        else:
            placed = result.order
            if not request.htmx:
                messages.success(request, _order_summary(placed))
                return redirect("market_instrument", symbol=instrument.symbol)
            # A fresh form for the next order; side, type and time in force stay.
            form = OrderForm(auto_id="order_%s", initial={
                name: data[name] for name in ("side", "type", "time_in_force", "post_only")
            })
    if not request.htmx:
        return _instrument_page(request, instrument, form=form, status=400)
    membership = membership_for(request.user)
    response = render(request, "market/trading/_order_form.html",
                      _form_context(instrument, membership, form, placed))
    if placed is not None:
        trigger_client_event(response, ORDERS_CHANGED)
    return response


def _order_summary(order: Order) -> str:
    values = {"id": order.pk, "side": order.get_side_display(), "quantity": order.quantity,
              "price": number_format(order.price, 2), "status": order.get_status_display()}
    summary = _("Order %(id)s (%(side)s %(quantity)s GPUs at %(price)s EUR/GPUh): %(status)s.") % values
    return f"{summary} {order.reason_text}" if order.reason else summary


@login_required
@require_GET
def market_open_orders(request: TradingRequest, symbol: str) -> HttpResponse:
    instrument = _instrument(symbol)
    context = _open_orders_context(membership_for(request.user), instrument)
    return render(request, "market/trading/_open_orders.html", context)


@login_required
@require_GET
def market_fills(request: TradingRequest, symbol: str) -> HttpResponse:
    instrument = _instrument(symbol)
    return render(request, "market/trading/_fills.html", _fills_context(membership_for(request.user), instrument))


@login_required
@require_GET
def market_trades(request: TradingRequest, symbol: str) -> HttpResponse:
    return render(request, "market/trading/_trades.html", _tape_context(_instrument(symbol)))


def _open_orders_answer(request: TradingRequest, membership: Membership | None, instrument: Instrument,
                        **extra: Any) -> HttpResponse:
    response = render(request, "market/trading/_open_orders.html",
                      _open_orders_context(membership, instrument, **extra))
    # The amend row and the cancel button sit inside the list: answer the whole list.
    return reswap(retarget(response, "#open-orders"), "outerHTML")


@login_required
@require_POST
def market_order_cancel(request: TradingRequest, order_id: int) -> HttpResponse:
    membership = membership_for(request.user)
    order = _own_order(membership, order_id)
    error: ExchangeError | None = None
    try:
        order = order_services.order_cancel(user=request.user, order_id=order.pk)
    except ExchangeError as refused:
        error = refused
    from_all = request.POST.get("back") == "orders"  # the cancel button of the all-orders page
    notice = _("Order %(id)s is cancelled.") % {"id": order.pk}
    if not request.htmx:
        if error:
            messages.error(request, error.detail)
        else:
            messages.success(request, notice)
        if from_all:
            return redirect("market_orders")
        return redirect("market_instrument", symbol=order.instrument.symbol)
    if from_all and membership is not None:
        # The outcome goes to the page's messages (out of band): the list is
        # fetched again on the private event this cancel makes.
        if error:
            messages.error(request, error.detail)
        else:
            messages.success(request, notice)
        response = render(request, "market/trading/_all_orders.html",
                          _all_orders_context(membership, messages_oob=True))
        return trigger_client_event(reswap(retarget(response, "#all-orders"), "outerHTML"), ORDERS_CHANGED)
    response = _open_orders_answer(request, membership, order.instrument, error=error,
                                   notice=None if error else notice)
    return trigger_client_event(response, ORDERS_CHANGED)


@login_required
@require_http_methods(["GET", "POST"])
def market_order_amend(request: TradingRequest, order_id: int) -> HttpResponse:
    """GET: the order's row as a small form (htmx); POST: amend it."""
    membership = membership_for(request.user)
    order = _own_order(membership, order_id)
    auto_id = f"amend{order.pk}_%s"
    if request.method == "GET":
        if not request.htmx:
            return redirect("market_instrument", symbol=order.instrument.symbol)
        form = AmendForm(auto_id=auto_id, initial={"quantity": order.quantity, "price": order.price})
        return render(request, "market/trading/_order_amend_row.html", {"order": order, "form": form})
    form = AmendForm(request.POST, auto_id=auto_id)
    if form.is_valid():
        # Only what changed: the same price sent again would be a change of nothing.
        changes = {name: value for name, value in form.cleaned_data.items() if value != getattr(order, name)}
        try:
            order = order_services.order_amend(user=request.user, order_id=order.pk, **changes)
        except ExchangeError as error:
            _place_error(form, error)
        else:
            notice = _("Order %(id)s is amended.") % {"id": order.pk}
            if not request.htmx:
                messages.success(request, notice)
                return redirect("market_instrument", symbol=order.instrument.symbol)
            return trigger_client_event(
                _open_orders_answer(request, membership, order.instrument, notice=notice), ORDERS_CHANGED)
    if not request.htmx:
        for message in [*form.non_field_errors(), *(e for f in form for e in f.errors)]:
            messages.error(request, message)
        return redirect("market_instrument", symbol=order.instrument.symbol)
    return render(request, "market/trading/_order_amend_row.html", {"order": order, "form": form})


# --- cost preview -------------------------------------------------------------------------


@dataclass(frozen=True)
class CostPreview:
    """What an order would cost, computed by the functions the order service
    uses (``clearing.fees``), at the fee rates in force now, which the order
    keeps if it is sent now (a fill pays the lower of those and the rates at
    the fill)."""

    side: str
    type: str
    price: Decimal  # the limit, or a market order's protection price
    quantity: int
    hours: int
    value: Decimal  # at the limit: the most a buy pays, the least a sell receives
    max_fee: Decimal  # incl. VAT, at the taker rate
    reserved: Decimal  # cash taken at entry: reserved (0.00 for a spot sell), and a future's margin top-up
    rates: FeeRates
    cash_available: Decimal | None
    futures: bool = False
    margin_required: Decimal | None = None  # a future: the member's initial margin with the order
    margin_move: Decimal = Decimal("0.00")  # a future: what moves from cash into margin

    @property
    def taker_rate(self) -> str:
        return _rate_text(self.rates.taker)

    @property
    def maker_rate(self) -> str:
        return _rate_text(self.rates.maker)

    @property
    def proceeds_at_least(self) -> Decimal:
        return self.value - self.max_fee

    @property
    def shortfall(self) -> bool:
        return self.cash_available is not None and self.reserved > self.cash_available


def _rate_text(rate: Decimal) -> str:
    """A fee rate with the places it has, at least two: 0,015 and 0,005, not 0,0150."""
    places = max(2, -int(rate.normalize().as_tuple().exponent))
    return number_format(rate, places)


def _cost_preview(instrument: Instrument, membership: Membership | None, data: Any) -> CostPreview | str:
    """The preview of the order form's current values, or why there is none."""
    form = OrderForm(data, auto_id=False)
    form.is_valid()  # cleaned_data keeps the fields that are valid, whatever the others are
    values = form.cleaned_data
    side, type_, quantity, price = values.get("side"), values.get("type"), values.get("quantity"), values.get("price")
    if not side or not type_:
        return _("Choose buy or sell and the order type.")
    if not quantity:
        return _("Enter the quantity to see what the order costs.")
    futures = instrument.segment == Segment.FUTURES
    rates = fee_rates_at(timezone.now(), futures=futures)
    if type_ == OrderType.MARKET:
        price = protection_price(instrument, side, rates)
    elif price is None:
        return _("Enter the limit price to see what the order costs.")
    else:
        try:  # the order service's own rule and message
            price = check_price(instrument, side, price, rates)
        except ExchangeError as error:
            return error.detail
    hours = instrument.hours
    reserved = entry_reservation(instrument, side, price, quantity, rates)
    member = membership is not None and not membership.organisation.is_observer
    summary = account_summary(organisation=membership.organisation) if member and membership else None
    required, move = None, Decimal("0.00")
    if futures and summary is not None and membership is not None:
        # The order service's margin check, read without its lock: it decides again at entry.
        required = futures_margin.requirement_for(membership.organisation_id, extra=futures_margin.Extra(
            instrument_id=instrument.pk, side=side, quantity=quantity, price=price))
        move = max(required - summary["margin"], Decimal("0.00"))
    return CostPreview(side=side, type=type_, price=price, quantity=quantity, hours=hours,
                       value=fees.trade_value(price, quantity, hours),
                       max_fee=fees.max_fee(rates.taker, quantity, hours),
                       reserved=reserved + move, rates=rates,
                       cash_available=summary["cash_available"] if summary and (side == Side.BUY or futures)
                       else None, futures=futures, margin_required=required, margin_move=move)


@login_required
@require_GET
def market_order_preview(request: TradingRequest, symbol: str) -> HttpResponse:
    """The order form's cost preview (htmx, on every change of the form).
    A read: it reserves nothing and the order service checks everything again."""
    instrument = _instrument(symbol)
    preview = _cost_preview(instrument, membership_for(request.user), request.GET)
    context = {"instrument": instrument, "preview": preview if isinstance(preview, CostPreview) else None,
               "note": preview if isinstance(preview, str) else None}
    return render(request, "market/trading/_order_preview.html", context)


# --- all open orders ------------------------------------------------------------------------


def _all_orders_context(membership: Membership, **extra: Any) -> dict[str, Any]:
    rows = (orders_for(organisation=membership.organisation, statuses=RESTING_STATUSES)
            .select_related("instrument__gpu_class", "instrument__zone")
            .order_by("instrument__delivery_start", "instrument__symbol", "-created_at", "-id"))
    orders = list(rows[:ALL_ORDERS_LIMIT + 1])
    return {"membership": membership, "orders": orders[:ALL_ORDERS_LIMIT],
            "more": len(orders) > ALL_ORDERS_LIMIT, "limit": ALL_ORDERS_LIMIT,
            "can_cancel": _may_cancel(membership),
            "kill_switch": kill_switch_engaged(organisation=membership.organisation), **extra}


@login_required
@require_GET
def market_orders(request: TradingRequest) -> HttpResponse:
    """The organisation's resting orders in every instrument, with cancel;
    refreshed on each of its private events (static/js/notify.js)."""
    membership = membership_for(request.user)
    if membership is None or membership.organisation.is_observer:
        return render(request, "market/trading_refused.html", {"refusal": _trading_refusal(membership)}, status=403)
    context = _all_orders_context(membership)
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "market/trading/_all_orders.html", context)
    return render(request, "market/trading/orders.html", context)


# --- portfolio ------------------------------------------------------------------------------


@login_required
@require_GET
def portfolio(request: TradingRequest) -> HttpResponse:
    membership = membership_for(request.user)
    if membership is None or membership.organisation.is_observer:
        refusal = _trading_refusal(membership)
        return render(request, "market/trading_refused.html", {"refusal": refusal}, status=403)
    organisation = membership.organisation
    positions = positions_for(organisation=organisation)
    instruments = instrument_queryset().in_bulk([p.instrument for p in positions], field_name="symbol")
    context = {
        "organisation": organisation,
        "account": account_summary(organisation=organisation),
        "fee_reserve": fee_reserve_balance(organisation=organisation),
        "credits": credits_summary(organisation),
        "positions": [(position, instruments.get(position.instrument)) for position in positions],
    }
    return render(request, "market/trading/portfolio.html", context)


urlpatterns: list[URLPattern | URLResolver] = [
    path("markets/", market_overview, name="market_overview"),
    # Before markets/<symbol>/: "orders" is no symbol.
    path("markets/orders/", market_orders, name="market_orders"),
    path("markets/orders/<int:order_id>/cancel/", market_order_cancel, name="market_order_cancel"),
    path("markets/orders/<int:order_id>/amend/", market_order_amend, name="market_order_amend"),
    # <str:…> matches anything but "/": symbols contain dots and dashes.
    path("markets/<str:symbol>/", market_instrument, name="market_instrument"),
    path("markets/<str:symbol>/order/", market_order_submit, name="market_order_submit"),
    path("markets/<str:symbol>/order/preview/", market_order_preview, name="market_order_preview"),
    path("markets/<str:symbol>/open-orders/", market_open_orders, name="market_open_orders"),
    path("markets/<str:symbol>/fills/", market_fills, name="market_fills"),
    path("markets/<str:symbol>/trades/", market_trades, name="market_trades"),
    path("portfolio/", portfolio, name="portfolio"),
]

