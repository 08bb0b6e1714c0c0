"""The public dashboards (issue 9, item 5; market rules §5; the contract's
"Public pages"): ``/dashboard/``, the entry page, and
``/dashboard/dayahead/<date>/``, the results of one day-ahead auction.

Public: no login, and nothing of any member. The pages read through
``market.selectors.dayahead_public``, as the API does, and their charts are
drawn by ``static/js/dayahead.js`` from the API's own payloads, put in the
page with ``json_script`` (the Content-Security-Policy allows no inline
script). The entry page is a column of sections, one per kind of public
data; issue 11 adds its indicators as further sections.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from exchange.views import next_day_ahead_auction
from market import calendar
from market.api_dayahead_public import curves_payload, indicative_payload, results_payload
from market.models import AuctionStatus, DayAheadAuction, DayAheadHour, GpuClass
from market.selectors import dayahead_public as selectors
from market.views.trading import _zone_choices

DEFAULT_CLASS = "H100"
DEFAULT_ZONE = "DE"


class DashboardRequest(HttpRequest):
    htmx: HtmxDetails  # HtmxMiddleware


def _chart_text() -> dict[str, str]:
    """The words static/js/dayahead.js puts on the charts, in the page's language."""
    return {
        "price": _("Price"), "indicative_price": _("Indicative price"), "volume": _("Volume"),
        "indicative_volume": _("Indicative volume"), "gpus": _("GPUs"), "hour": _("Hour"),
        "buy": _("Buy curve"), "sell": _("Sell curve"), "clearing": _("Clearing point"),
        "no_bids": _("No bids in this hour."),
    }


def _class_choices() -> list[tuple[str, str]]:
    return [(c.code, f"{c.code} – {c.name}") for c in GpuClass.objects.filter(active=True).order_by("code")]


class DayAheadChoiceForm(forms.Form):
    """The class and zone a day page shows; a bad or missing value falls back
    to the default (``choice``)."""

    gpu_class = forms.ChoiceField(label=gettext_lazy("GPU class"), required=False, choices=_class_choices)
    zone = forms.ChoiceField(label=gettext_lazy("Delivery zone"), required=False, choices=_zone_choices)

    def choice(self, name: str, default: str) -> str:
        if self.is_bound and self.is_valid() and self.cleaned_data.get(name):
            return str(self.cleaned_data[name])
        return default


def _default_class() -> str:
    codes = list(GpuClass.objects.filter(active=True).order_by("code").values_list("code", flat=True))
    return DEFAULT_CLASS if DEFAULT_CLASS in codes or not codes else codes[0]


@dataclass(frozen=True)
class HourRow:
    """One row of an hourly table: the calendar's hour and the published (or
    indicative) figures of it; ``offset`` ("UTC+2") only on the days the
    clocks change, where two rows may read 02:00."""

    label: str
    start: datetime.datetime
    end: datetime.datetime
    offset: str
    price: Decimal | None
    volume: int | None
    buy_volume: int | None = None
    sell_volume: int | None = None


def _offset(at: datetime.datetime) -> str:
    hours = int((at.astimezone(calendar.BERLIN).utcoffset() or datetime.timedelta()).total_seconds() // 3600)
    return f"UTC{hours:+d}"


def _rows(day: datetime.date, figures: dict[str, dict[str, Any]]) -> list[HourRow]:
    hours = calendar.day_hours(day)
    changes = len(hours) != 24
    rows = []
    for hour in hours:
        found = figures.get(hour.label, {})
        price = found.get("price")
        rows.append(HourRow(
            label=hour.label, start=hour.start, end=hour.end, offset=_offset(hour.start) if changes else "",
            price=None if price is None else Decimal(str(price)), volume=found.get("volume"),
            buy_volume=found.get("buy_volume"), sell_volume=found.get("sell_volume")))
    return rows


def _summary(rows: list[HourRow]) -> dict[str, Any]:
    """The day in figures: mean, lowest and highest price (with the first
    hour of each), GPU-hours traded, hours with a price."""
    priced = [row for row in rows if row.price is not None]
    lowest = min(priced, key=lambda row: row.price or 0, default=None)
    highest = max(priced, key=lambda row: row.price or 0, default=None)
    return {"mean_price": selectors.mean_price([row.price for row in priced if row.price is not None]),
            "low": lowest.price if lowest else None, "low_hour": lowest.label if lowest else None,
            "high": highest.price if highest else None, "high_hour": highest.label if highest else None,
            "volume": sum(row.volume or 0 for row in rows), "priced_hours": len(priced)}


def _curve_hour(request: DashboardRequest, hours: list[DayAheadHour]) -> str:
    """The hour whose curves the page shows: the one asked for, else the one
    with the largest volume (the first of equals)."""
    labels = [hour.hour for hour in hours]
    asked = request.GET.get("hour", "")
    if asked in labels:
        return asked
    return max(hours, key=lambda hour: (hour.volume, -hour.position)).hour


def _day_url(day: datetime.date, query: dict[str, str]) -> str | None:
    if not calendar.MIN_YEAR <= day.year <= calendar.MAX_YEAR:
        return None
    return f"{reverse('dashboard_dayahead', args=[day.isoformat()])}?{urlencode(query)}"


def _api_url(name: str, day: datetime.date, query: dict[str, str]) -> str:
    return f"{reverse(name, args=[day.isoformat()])}?{urlencode(query)}"


# --- the day page -----------------------------------------------------------------------------


def _cleared_context(request: DashboardRequest, day: datetime.date, auction: DayAheadAuction,
                     query: dict[str, str]) -> dict[str, Any]:
    hours = selectors.dayahead_hours(auction=auction)
    payload = results_payload(auction, hours)
    rows = _rows(day, {row["hour"]: row for row in payload["hours"]})
    context: dict[str, Any] = {"results": payload, "rows": rows, "summary": _summary(rows),
                               "cleared_at": auction.cleared_at}
    hour = selectors.dayahead_hour(auction=auction, label=_curve_hour(request, hours)) if hours else None
    if hour is not None:
        context.update({
            "curve_hour": hour.hour, "curve_hours": [h.hour for h in hours], "curves": curves_payload(auction, hour),
            "curves_json_url": _api_url("api-dayahead-curves", day, {**query, "hour": hour.hour}),
        })
    return context


@require_GET
def dashboard_dayahead(request: DashboardRequest, day: str) -> HttpResponse:
    """Public (no login): one delivery day's auction for a class and zone."""
    try:
        delivery_day = calendar.parse_day(day)
    except calendar.CalendarError:
        raise Http404 from None
    now = timezone.now()
    form = DayAheadChoiceForm(request.GET or None)
    gpu_class = form.choice("gpu_class", _default_class())
    zone = form.choice("zone", DEFAULT_ZONE)
    if not form.is_bound or not form.is_valid():
        form = DayAheadChoiceForm(initial={"gpu_class": gpu_class, "zone": zone})
    query = {"gpu_class": gpu_class, "zone": zone}
    state = selectors.dayahead_day_state(day=delivery_day, now=now)
    auction = selectors.dayahead_auction(day=delivery_day, gpu_class=gpu_class, zone=zone)
    hours = calendar.day_hours(delivery_day)
    context: dict[str, Any] = {
        "day": delivery_day, "form": form, "gpu_class": gpu_class, "zone": zone, "state": state, "now": now,
        "auction_status": selectors.auction_status(auction, now) if auction else None,
        "hour_count": len(hours),
        "previous_url": _day_url(delivery_day - datetime.timedelta(days=1), query),
        "next_url": _day_url(delivery_day + datetime.timedelta(days=1), query),
        "results_json_url": _api_url("api-dayahead-results", delivery_day, query),
        "results_csv_url": _api_url("api-dayahead-results", delivery_day, {**query, "format": "csv"}),
        "day_json_url": reverse("api-dayahead-day", args=[delivery_day.isoformat()]),
        "chart_text": _chart_text(),
    }
    if auction is not None and auction.status == AuctionStatus.CLEARED:
        context.update(_cleared_context(request, delivery_day, auction, query))
        if request.htmx and request.htmx.target == "curves":
            return render(request, "market/dashboard/_curves.html", context)
    elif auction is not None:
        indicative = selectors.dayahead_indicative(auction=auction)
        if indicative is not None:
            payload = indicative_payload(auction, indicative)
            context.update({"indicative": payload, "computed_at": indicative.computed_at,
                            "rows": _rows(delivery_day, {row["hour"]: row for row in payload["hours"]}),
                            "indicative_json_url": _api_url("api-dayahead-indicative", delivery_day, query)})
            context["summary"] = _summary(context["rows"])
    return render(request, "market/dashboard/dayahead.html", context)


# --- the entry page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuctionDay:
    """A delivery day's auction on the entry page: its state and, while it
    is not cleared, the indicative figures per class and zone."""

    state: selectors.DayState
    indicative: list[selectors.DaySummary]
    url: str


@require_GET
def dashboard_home(request: HttpRequest) -> HttpResponse:
    """Public (no login): the entry page of the public dashboards."""
    now = timezone.now()
    tomorrow = now.astimezone(calendar.BERLIN).date() + datetime.timedelta(days=1)
    _gate, next_day = next_day_ahead_auction(now)
    days = []
    for day in dict.fromkeys([tomorrow, next_day]):  # one day when tomorrow's book is still open
        state = selectors.dayahead_day_state(day=day, now=now)
        days.append(AuctionDay(state=state, indicative=selectors.indicative_summaries(day=day, now=now),
                               url=reverse("dashboard_dayahead", args=[day.isoformat()])))
    context = {"days": days, "latest": selectors.latest_cleared(), "now": now}
    return render(request, "market/dashboard/home.html", context)


@require_GET
def dashboard_futures(request: HttpRequest) -> HttpResponse:
    """Public (no login): the forward curve of a class, the latest daily
    settlement price of every listed future, with the JSON and CSV links."""
    from market.selectors.futures import forward_curve_points, futures_board

    classes = [code for code, _label in _class_choices()]
    chosen = request.GET.get("gpu_class") or _default_class()
    if chosen not in classes:
        chosen = _default_class()
    rows = futures_board(gpu_class=chosen, now=timezone.now()) if chosen else []
    query = urlencode({"gpu_class": chosen})
    return render(request, "market/dashboard/futures.html", {
        "classes": classes, "gpu_class": chosen, "rows": rows, "curve": forward_curve_points(rows),
        "json_url": f"{reverse('api-futures-settlement-prices')}?{query}",
        "csv_url": f"{reverse('api-futures-settlement-prices')}?{query}&format=csv",
    })


urlpatterns: list[URLPattern | URLResolver] = [
    path("dashboard/", dashboard_home, name="dashboard"),
    path("dashboard/futures/", dashboard_futures, name="dashboard_futures"),
    path("dashboard/dayahead/<str:day>/", dashboard_dayahead, name="dashboard_dayahead"),
]
