"""Trading screens: the market overview, the trading screen of one instrument
and the portfolio.

The trading screen is server-rendered and then kept live by three WebSockets
(``market.consumers``; ``static/js/trading.js``): the book ladder and the
trade tape from the public streams, and the member's own orders and fills,
which are fetched again as partials (``hx-trigger="rb:refresh"``) whenever
the private stream reports an order or fill event.

Looking needs a login; order entry needs ``trading_gate`` (the order service
asks it again). Every write goes through ``market.services.orders``; an
``ExchangeError`` comes back at the form field it names. With htmx the forms
answer their partial (errors included, status 200, because htmx does not
swap 4xx answers); without JavaScript the same URLs answer a redirect or the
whole page.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, URLResolver, path
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event
from django_htmx.middleware import HtmxDetails

from accounts.models import Membership, User
from accounts.selectors import membership_for
from accounts.services import trading_gate_check
from clearing.selectors import account_summary, fee_reserve_balance
from exchange.errors import ExchangeError, add_error_to_form
from market import calendar
from market.models import RESTING_STATUSES, DeliveryZone, GpuClass, Instrument, Order, OrderType, Side, TimeInForce
from market.selectors import InstrumentFilter, instrument_get, instrument_queryset
from market.selectors.orders import book_snapshot, fills_for, order_for, orders_for, positions_for, public_trades
from market.selectors.overview import instruments_overview
from market.services import orders as order_services

BOOK_DEPTH = 10  # levels per side in the ladder
TAPE_LENGTH = 50  # trades in the tape
CHART_TRADES = 500  # trades in the price chart
OVERVIEW_PAGE_SIZE = 50
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


def _every() -> list[tuple[str, str]]:
    return [("", _("All"))]


def _class_choices() -> list[tuple[str, str]]:
    return _every() + [(code, code) for code in GpuClass.objects.filter(active=True).values_list("code", flat=True)]


def _zone_choices() -> list[tuple[str, str]]:
    return _every() + [(zone.code, f"{zone.code} – {zone.name}") for zone in DeliveryZone.objects.order_by("code")]


class OverviewFilterForm(forms.Form):
    """The overview's filters; the parameter names are those of
    ``InstrumentFilter`` (and of the instruments API), which does the filtering."""

    gpu_class = forms.ChoiceField(label=gettext_lazy("GPU class"), required=False, choices=_class_choices)
    zone = forms.ChoiceField(label=gettext_lazy("Delivery zone"), required=False, choices=_zone_choices)
    delivery_date = forms.ChoiceField(label=gettext_lazy("Delivery day"), required=False)
    active = forms.BooleanField(label=gettext_lazy("Only with orders or trades"), required=False)

    def __init__(self, *args: Any, today: datetime.date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tomorrow = today + datetime.timedelta(days=1)
        day = cast(forms.ChoiceField, self.fields["delivery_date"])
        day.choices = _every() + [(today.isoformat(), _("Today")), (tomorrow.isoformat(), _("Tomorrow"))]


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


def _open_orders_context(membership: Membership | None, instrument: Instrument, **extra: Any) -> dict[str, Any]:
    orders = [] if membership is None else list(
        orders_for(organisation=membership.organisation, instrument=instrument, statuses=RESTING_STATUSES)
    )
    return {"instrument": instrument, "membership": membership, "open_orders": orders, **extra}


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
        "refusal": _trading_refusal(membership),
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
        # Words trading.js writes into the page.
        "trading_text": {"live": _("live"), "offline": _("offline"), "buy": _("Buy"), "sell": _("Sell")},
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
    now = timezone.now()
    today = now.astimezone(calendar.BERLIN).date()
    form = OverviewFilterForm(request.GET or None, today=today)
    active = form.is_valid() and form.cleaned_data["active"]
    filterset = InstrumentFilter(data=request.GET, queryset=instruments_overview(now=now, active_only=active))
    page = Paginator(filterset.qs, OVERVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode(), "now": now}
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "market/trading/_overview_table.html", context)
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
    if not request.htmx:
        if error:
            messages.error(request, error.detail)
        else:
            messages.success(request, _("Order %(id)s is cancelled.") % {"id": order.pk})
        return redirect("market_instrument", symbol=order.instrument.symbol)
    response = _open_orders_answer(request, membership, order.instrument, error=error,
                                   notice=None if error else _("Order %(id)s is cancelled.") % {"id": order.pk})
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
        "positions": [(position, instruments.get(position.instrument)) for position in positions],
    }
    return render(request, "market/trading/portfolio.html", context)


urlpatterns: list[URLPattern | URLResolver] = [
    path("markets/", market_overview, name="market_overview"),
    path("markets/orders/<int:order_id>/cancel/", market_order_cancel, name="market_order_cancel"),
    path("markets/orders/<int:order_id>/amend/", market_order_amend, name="market_order_amend"),
    # <str:…> matches anything but "/": symbols contain dots and dashes.
    path("markets/<str:symbol>/", market_instrument, name="market_instrument"),
    path("markets/<str:symbol>/order/", market_order_submit, name="market_order_submit"),
    path("markets/<str:symbol>/open-orders/", market_open_orders, name="market_open_orders"),
    path("markets/<str:symbol>/fills/", market_fills, name="market_fills"),
    path("markets/<str:symbol>/trades/", market_trades, name="market_trades"),
    path("portfolio/", portfolio, name="portfolio"),
]

