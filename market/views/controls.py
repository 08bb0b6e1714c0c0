"""Trader controls on the screens (docs/trader-controls.md): mass cancel on
the trading screen (this instrument) and the open-orders page (everything),
the owners' kill switch, and the order events page with its CSV download.

Every write goes through ``market.services`` (``orders_cancel_all``,
``controls.kill_switch_engage``/``_lift``), which decide who may."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget, trigger_client_event

from accounts.selectors import membership_for
from exchange.errors import ExchangeError
from market.selectors.events import order_events_csv_rows, order_events_for
from market.services import controls
from market.services import orders as order_services
from market.views.trading import (
    ORDERS_CHANGED,
    TradingRequest,
    _all_orders_context,
    _instrument,
    _open_orders_answer,
    _trading_refusal,
)

EVENTS_ON_PAGE = 200


def _cancelled_notice(count: int) -> str:
    if not count:
        return _("No order was resting: nothing to cancel.")
    return ngettext("%(count)d order is cancelled.", "%(count)d orders are cancelled.", count) % {"count": count}


@login_required
@require_POST
def market_orders_cancel_all(request: TradingRequest) -> HttpResponse:
    """Every resting order of the organisation (the open-orders page)."""
    membership = membership_for(request.user)
    try:
        notice = _cancelled_notice(len(order_services.orders_cancel_all(user=request.user)))
    except ExchangeError as refused:
        messages.error(request, refused.detail)
    else:
        messages.success(request, notice)
    if not request.htmx or membership is None:
        return redirect("market_orders")
    response = render(request, "market/trading/_all_orders.html",
                      _all_orders_context(membership, messages_oob=True))
    return trigger_client_event(reswap(retarget(response, "#all-orders"), "outerHTML"), ORDERS_CHANGED)


@login_required
@require_POST
def market_instrument_cancel_all(request: TradingRequest, symbol: str) -> HttpResponse:
    """Every resting order of the organisation in this instrument (the trading screen)."""
    instrument = _instrument(symbol)
    membership = membership_for(request.user)
    error: ExchangeError | None = None
    notice = None
    try:
        notice = _cancelled_notice(len(order_services.orders_cancel_all(user=request.user, instrument=instrument)))
    except ExchangeError as refused:
        error = refused
    if not request.htmx:
        if error:
            messages.error(request, error.detail)
        else:
            messages.success(request, str(notice))
        return redirect("market_instrument", symbol=instrument.symbol)
    return trigger_client_event(_open_orders_answer(request, membership, instrument, error=error, notice=notice),
                                ORDERS_CHANGED)


@login_required
@require_POST
def kill_switch(request: TradingRequest) -> HttpResponse:
    """Owners engage (``action=engage``, with an optional reason) or lift it."""
    try:
        if request.POST.get("action") == "lift":
            controls.kill_switch_lift(user=request.user)
            messages.success(request, _("The kill switch is lifted: your organisation may trade again."))
        else:
            cancelled = controls.kill_switch_engage(user=request.user, reason=request.POST.get("reason", "").strip())
            messages.warning(request, _("The kill switch is on: no new orders until it is lifted. %(cancelled)s")
                             % {"cancelled": _cancelled_notice(len(cancelled))})
    except ExchangeError as refused:
        messages.error(request, refused.detail)
    if request.htmx:  # the confirmed htmx post: load the page afresh, messages and all
        return HttpResponseClientRedirect(reverse("market_orders"))
    return redirect("market_orders")


class _Echo:
    """A file-like object whose write answers the line (csv to a stream)."""

    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def order_events(request: TradingRequest) -> HttpResponse | StreamingHttpResponse:
    """The organisation's order events, newest first; ``?format=csv`` downloads them all."""
    membership = membership_for(request.user)
    if membership is None or membership.organisation.is_observer:
        return render(request, "market/trading_refused.html", {"refusal": _trading_refusal(membership)}, status=403)
    symbol = request.GET.get("instrument", "").strip()
    order_id = request.GET.get("order", "").strip()
    rows = order_events_for(organisation=membership.organisation, instrument_symbol=symbol or None,
                            order_id=int(order_id) if order_id.isdigit() and len(order_id) < 19 else None)
    if request.GET.get("format") == "csv":
        writer = csv.writer(_Echo())
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response = StreamingHttpResponse((writer.writerow(row) for row in order_events_csv_rows(rows.iterator())),
                                         content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="order-events-{stamp}.csv"'
        return response
    events = list(rows[:EVENTS_ON_PAGE + 1])
    query = request.GET.copy()
    query["format"] = "csv"
    context: dict[str, Any] = {
        "membership": membership, "events": events[:EVENTS_ON_PAGE], "more": len(events) > EVENTS_ON_PAGE,
        "limit": EVENTS_ON_PAGE, "instrument": symbol, "order": order_id, "csv_query": query.urlencode(),
    }
    return render(request, "market/trading/events.html", context)


urlpatterns: list[URLPattern | URLResolver] = [
    # Before markets/<symbol>/: "events" is no symbol.
    path("markets/events/", order_events, name="market_order_events"),
    path("markets/orders/cancel-all/", market_orders_cancel_all, name="market_orders_cancel_all"),
    path("markets/kill-switch/", kill_switch, name="market_kill_switch"),
    path("markets/<str:symbol>/cancel-all/", market_instrument_cancel_all, name="market_instrument_cancel_all"),
]
