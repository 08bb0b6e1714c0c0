"""The public price pages (issue 11): ``/dashboard/overview/``,
``/dashboard/prices/`` and ``/dashboard/generations/``, with their
methodology pages. Public, no login, nothing of any member. Each chart is
drawn by static/js/public_charts.js from the dataset's own serialised rows
(``json_script``), and links the same rows at /api/v1/open-data/<slug>/ with
the page's parameters; a bad parameter falls back to its default."""

from __future__ import annotations

from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from market import indices, price_stats
from market.models import DeliveryZone, GpuClass
from market.open_data import LICENCE, LICENCE_URL, Dataset, Rows


def _selectors() -> ModuleType:
    """The selectors module, imported when a page is asked for: its import registers the datasets,
    which belongs to the open-data registry's ``SOURCES`` and not to loading the URLs (a test that
    swaps the registry out would otherwise catch them)."""
    from market.selectors import public_prices

    return public_prices


def _links(dataset: Dataset, params: dict[str, str]) -> dict[str, str]:
    base = f"/api/v1/open-data/{dataset.slug}/"
    query = urlencode(params)
    return {"json": f"{base}?{query}" if query else base,
            "csv": f"{base}?{query}&format=csv" if query else f"{base}?format=csv"}


def _table(rows: Rows, series: str, value: str, x: str = "period") -> dict[str, Any]:
    """The rows as a table: one line per x, one column per series."""
    names = list(dict.fromkeys(row[series] for row in rows))
    lines: dict[Any, dict[str, Any]] = {}
    for row in rows:
        key = row["hour_start"] if x == "hour_start" else row[x]
        lines.setdefault(key, {})[row[series]] = row[value]
    return {"names": names, "lines": [(key, [cells.get(name) for name in names]) for key, cells in lines.items()]}


def _params(request: HttpRequest) -> dict[str, str]:
    """GET as the datasets read it; a multiple select's repeated gpu_class joined by commas."""
    params = {key: request.GET.get(key, "") for key in request.GET}
    classes = request.GET.getlist("gpu_class")
    if len(classes) > 1:
        params["gpu_class"] = ",".join(classes)
    return params


def _choices() -> dict[str, Any]:
    return {"classes": list(GpuClass.objects.filter(active=True).order_by("code")),
            "zones": list(DeliveryZone.objects.order_by("code")),
            "ranges": [("day", _("Day")), ("week", _("Week")), ("month", _("Month")), ("year", _("Year")),
                       ("all", _("All"))],
            "indexes": [(indices.BASE, _("Base")), (indices.PEAK, _("Peak"))],
            "licence": LICENCE, "licence_url": LICENCE_URL}


def _chart_text() -> dict[str, str]:
    return {"y_title": _("EUR per GPU-hour"), "y_perf": _("EUR per 1,000 units"),
            "spread": _("Spread")}


@require_GET
def public_overview(request: HttpRequest) -> HttpResponse:
    selectors = _selectors()
    latest = selectors.latest_rows()
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for row in latest:
        by_pair.setdefault((row["gpu_class"], row["zone"]), {})[row["index"]] = row
    return render(request, "market/public/overview.html", {
        "latest": [(pair, found) for pair, found in by_pair.items()],
        "latest_demo": any(row["is_demo"] for row in latest),
        "dayahead": selectors.dayahead_rows(), "front": selectors.front_rows(), "today": selectors.today(),
        "latest_links": _links(selectors.LATEST_INDICES, {}), "dayahead_links": _links(selectors.DAYAHEAD_BASE, {}),
        "front_links": _links(selectors.FORWARD_FRONT, {}), **_choices(),
    })


@require_GET
def public_prices(request: HttpRequest) -> HttpResponse:
    selectors = _selectors()
    asked = _params(request)
    query, errors = selectors.clean(asked)
    rows = selectors.history_rows(query)
    params = query.params()
    return render(request, "market/public/prices.html", {
        "query": query, "errors": errors, "hour_capped": "resolution" in errors and asked.get("resolution") == "hour",
        "rows": rows, "chart": selectors.PRICE_HISTORY.serialise(rows),
        "table": _table(rows, "gpu_class", "price", "hour_start" if query.resolution == "hour" else "period"),
        "links": _links(selectors.PRICE_HISTORY, params), "is_demo": any(row["is_demo"] for row in rows),
        "resolutions": [("hour", _("Hour")), ("day", _("Day")), ("week", _("Week")), ("month", _("Month"))],
        "chart_text": _chart_text(), **_choices(),
    })


@require_GET
def public_generations(request: HttpRequest) -> HttpResponse:
    selectors = _selectors()
    asked = _params(request)
    asked.setdefault("resolution", "week")  # five daily lines over a year are a thicket
    query, _errors = selectors.clean(asked, resolutions=selectors.PERFORMANCE_RESOLUTIONS,
                                     default_classes=tuple(c.code for c in GpuClass.objects.filter(active=True)))
    newer, older, _pair_errors = selectors.clean_pair(asked)
    rows = selectors.performance_rows(query)
    spread = selectors.spread_rows(query, newer, older)
    params = query.params()
    spread_params = {key: value for key, value in params.items() if key != "gpu_class"}
    spread_params.update({"newer": newer, "older": older})
    return render(request, "market/public/generations.html", {
        "query": query, "newer": newer, "older": older, "rows": rows, "spread": spread,
        "chart": selectors.PRICE_PER_PERFORMANCE.serialise(rows),
        "spread_chart": selectors.GENERATION_SPREAD.serialise(spread),
        "table": _table(rows, "gpu_class", "price_per_1000_units"),
        "links": _links(selectors.PRICE_PER_PERFORMANCE, params),
        "spread_links": _links(selectors.GENERATION_SPREAD, spread_params),
        "is_demo": any(row["is_demo"] for row in rows),
        "benchmarks": GpuClass.objects.filter(active=True).order_by("-min_benchmark_value", "code"),
        "resolutions": [("day", _("Day")), ("week", _("Week")), ("month", _("Month"))],
        "per_units": price_stats.PER_UNITS, "chart_text": _chart_text(), **_choices(),
    })


METHODOLOGIES = {("prices", "v1"): "market/public/methodology_prices_v1.html",
                 ("price-per-performance", "v1"): "market/public/methodology_performance_v1.html"}


@require_GET
def public_methodology(request: HttpRequest, indicator: str) -> HttpResponse:
    selectors = _selectors()
    if (indicator, selectors.METHODOLOGY_VERSION) not in METHODOLOGIES:
        raise Http404
    return redirect("public-methodology-version", indicator=indicator, version=selectors.METHODOLOGY_VERSION)


@require_GET
def public_methodology_version(request: HttpRequest, indicator: str, version: str) -> HttpResponse:
    template = METHODOLOGIES.get((indicator, version))
    if template is None:
        raise Http404
    return render(request, template, {"version": version, "per_units": price_stats.PER_UNITS,
                                      "peak_first": f"{indices.PEAK_FIRST_HOUR:02d}:00",
                                      "peak_end": f"{indices.PEAK_END_HOUR:02d}:00", **_choices()})


urlpatterns: list[URLPattern] = [
    path("dashboard/overview/", public_overview, name="public-overview"),
    path("dashboard/prices/", public_prices, name="public-prices"),
    path("dashboard/generations/", public_generations, name="public-generations"),
    # One path per indicator (the other dashboards have methodology pages under the same prefix).
    *[path(f"dashboard/methodology/{name}/", public_methodology, {"indicator": name}, name="public-methodology")
      for name in dict.fromkeys(indicator for indicator, _version in METHODOLOGIES)],
    *[path(f"dashboard/methodology/{name}/<str:version>/", public_methodology_version, {"indicator": name},
           name="public-methodology-version") for name in dict.fromkeys(indicator for indicator, _v in METHODOLOGIES)],
]
