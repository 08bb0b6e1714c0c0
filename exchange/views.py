"""Project-level pages: the landing page, health, error pages."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from django.db.models import Count, Field, Max, Min, Model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.defaults import page_not_found, server_error

from clearing.selectors import fee_terms_at
from exchange.errors import api_not_found, api_server_error
from exchange.health import run_checks
from market import calendar
from market.models import SEGMENTS_IN_SERVICE, GpuClass, Instrument, Segment


def _rate(rate: Decimal) -> Decimal:
    """A fee rate with its own decimals, at least three: 0.0150 -> 0.015, 0.0125 stays."""
    three = rate.quantize(Decimal("0.001"))
    return three if three == rate else rate


def _percent(rate: Decimal) -> Decimal:
    """A share as a percentage without trailing zeros: 0.1500 -> 15, 0.1250 -> 12.5."""
    percent = rate * 100
    return percent.quantize(Decimal(1)) if percent == percent.to_integral_value() else percent.normalize()


def _default(model: type[Model], name: str) -> Any:
    return cast(Field, model._meta.get_field(name)).get_default()


def market_facts(now: datetime) -> dict[str, Decimal]:
    """The figures of the market rules that the landing page explains, as in
    force at ``now``: the fee schedule (``clearing.selectors.fee_terms_at``),
    the tick every instrument is listed with, and the price bounds and
    initial margin of the active GPU classes (admin-configurable; the
    classes' field defaults while there is none)."""
    terms = fee_terms_at(now)
    classes = GpuClass.objects.filter(active=True).aggregate(
        n=Count("pk"), price_min=Min("min_price"), price_max=Max("max_price"),
        margin_min=Min("initial_margin_rate"), margin_max=Max("initial_margin_rate"))
    if not classes["n"]:
        for key, field in (("price_min", "min_price"), ("price_max", "max_price"),
                           ("margin_min", "initial_margin_rate"), ("margin_max", "initial_margin_rate")):
            classes[key] = _default(GpuClass, field)
    return {
        "tick": _default(Instrument, "tick_size"),
        "price_min": classes["price_min"],
        "price_max": classes["price_max"],
        "initial_margin_percent": _percent(classes["margin_min"]),
        "initial_margin_percent_max": _percent(classes["margin_max"]),
        "fee_day_ahead": _rate(terms.day_ahead_per_side),
        "fee_intraday_maker": _rate(terms.intraday.maker),
        "fee_intraday_taker": _rate(terms.intraday.taker),
        "fee_futures": _rate(terms.futures_per_side),
    }


def next_day_ahead_auction(now: datetime) -> tuple[datetime, date]:
    """The next gate closure after `now` and the delivery day of that auction.

    Gate closure for day D is 12:00 Berlin on D-1; at exactly 12:00 it has
    passed, so the next auction is the one for the day after tomorrow.
    """
    delivery_day = timezone.localtime(now, calendar.BERLIN).date() + timedelta(days=1)
    gate = calendar.dayahead_gate_closure(delivery_day)
    if now >= gate:
        delivery_day += timedelta(days=1)
        gate = calendar.dayahead_gate_closure(delivery_day)
    return gate, delivery_day


def _url(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def offer() -> dict[str, Any]:
    """What the exchange offers today, for the landing page: each segment of
    the market rules is usable once it is in ``SEGMENTS_IN_SERVICE`` (futures
    once the order service takes futures orders); the public dashboards and
    the start-up incentive programmes once their pages exist (URL names
    ``dashboard`` and ``incentives``). Until then the page announces them as
    coming, with no link."""
    return {
        "intraday": Segment.INTRADAY in SEGMENTS_IN_SERVICE,
        "dayahead": Segment.DAYAHEAD in SEGMENTS_IN_SERVICE,
        "futures": Segment.FUTURES in SEGMENTS_IN_SERVICE,
        "dashboard_url": _url("dashboard"),
        "incentives_url": _url("incentives"),
    }


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    gate_closure, delivery_day = next_day_ahead_auction(now)
    context = {"gate_closure": gate_closure, "delivery_day": delivery_day, "offer": offer(), **market_facts(now)}
    return render(request, "home.html", context)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    healthy = all(check.ok for check in checks.values())
    body = {
        "status": "ok" if healthy else "degraded",
        "checks": {name: {"ok": check.ok, "detail": check.detail} for name, check in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    # API clients get the contract's error shape, browsers the HTML page.
    if request.path.startswith("/api/"):
        return api_not_found(request, exception)
    return page_not_found(request, exception)


def server_failed(request: HttpRequest) -> HttpResponse:
    # As not_found: the API's error shape for API clients, the page for browsers
    # (templates/500.html, which needs no context and no database).
    if request.path.startswith("/api/"):
        return api_server_error(request)
    return server_error(request)
