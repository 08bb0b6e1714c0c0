"""The versioned methodology of the compute price indices (public, no
login: the open data's documentation). ``/dashboard/methodology/index/``
redirects to the current version; each version is its own page and stays
published. The worked example is computed by ``market.indices`` itself
when the page is shown, so its numbers and hashes are always the rules'."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET

from market import calendar, indices
from market.api_index import METHODOLOGY_VERSIONS
from market.open_data import LICENCE_URL

TEMPLATES = {"v1": "market/methodology/index_v1.html"}

# The worked example: an invented Tuesday of H100 in zone DE (not market data).
EXAMPLE_DAY = date(2026, 11, 24)
EXAMPLE_CLASS = "H100"
EXAMPLE_ZONE = "DE"
EXAMPLE_PRICES = ("2.05", "1.95", "1.93", "1.92", "1.94", "2.01", "2.15", "2.32", "2.51", "2.58", "2.62", "2.66",
                  "2.61", "2.57", "2.63", "2.71", "2.74", "2.69", "2.55", "2.44", "2.31", "2.22", "2.12", "2.05")
EXAMPLE_VOLUMES = (40, 38, 36, 36, 37, 40, 52, 64, 80, 84, 86, 88, 85, 82, 86, 90, 92, 88, 78, 70, 62, 55, 48, 44)
# Continuous trades (hour, price, GPUs).
EXAMPLE_TRADES = (("09", "2.60", 5), ("09", "2.64", 3), ("14", "2.55", 10), ("21", "2.20", 4))


@dataclass(frozen=True)
class Step:
    """One value of the example: the sum, the count, their quotient (to six
    places; ``more`` is "…" where it goes on), the published value, the
    canonical JSON of its document and its SHA-256."""

    kind: str
    total: Decimal
    count: int
    quotient: Decimal
    more: str
    value: Decimal | None
    json: str
    sha256: str


def _step(record: indices.IndexRecord, total: Fraction, count: int) -> Step:
    quotient = total / count
    shown = (Decimal(quotient.numerator) / Decimal(quotient.denominator)).quantize(Decimal("0.000001"))
    return Step(kind=record.kind, total=Decimal(total.numerator) / Decimal(total.denominator), count=count,
                quotient=shown.normalize(), more="" if Fraction(shown) == quotient else "…", value=record.value,
                json=indices.canonical_json(record.document).decode(), sha256=record.sha256)


def worked_example() -> dict[str, object]:
    hours = calendar.day_hours(EXAMPLE_DAY)
    auction = [indices.AuctionHour(hour=hour.label, price=Decimal(price), volume=volume)
               for hour, price, volume in zip(hours, EXAMPLE_PRICES, EXAMPLE_VOLUMES, strict=True)]
    trades = [(label, Decimal(price), quantity) for label, price, quantity in EXAMPLE_TRADES]
    base = indices.base_record(day=EXAMPLE_DAY, gpu_class=EXAMPLE_CLASS, zone=EXAMPLE_ZONE, hours=auction)
    peak = indices.peak_record(day=EXAMPLE_DAY, gpu_class=EXAMPLE_CLASS, zone=EXAMPLE_ZONE, hours=auction)
    vwap = indices.intraday_vwap_record(day=EXAMPLE_DAY, gpu_class=EXAMPLE_CLASS, zone=EXAMPLE_ZONE,
                                        hours=indices.trade_hours(trades))
    peak_labels = set(indices.peak_labels(EXAMPLE_DAY))
    peak_hours = [hour for hour in auction if hour.hour in peak_labels]
    traded = [row for row in vwap.document["hours"] if row["quantity"]]
    hashes = {record.kind: record.sha256 for record in (base, peak, vwap)}
    return {
        "day": EXAMPLE_DAY, "gpu_class": EXAMPLE_CLASS, "zone": EXAMPLE_ZONE,
        "hours": [{"label": hour.hour, "price": hour.price, "volume": hour.volume, "peak": hour.hour in peak_labels}
                  for hour in auction],
        "trades": [{"hour": label, "price": price, "quantity": quantity} for label, price, quantity in trades],
        "traded_hours": traded,
        "steps": [
            _step(base, sum((Fraction(hour.price) for hour in auction if hour.price is not None), Fraction(0)),
                  len(auction)),
            _step(peak, sum((Fraction(hour.price) for hour in peak_hours if hour.price is not None), Fraction(0)),
                  len(peak_hours)),
            _step(vwap, sum((Fraction(row["notional"]) for row in traded), Fraction(0)),
                  sum(row["quantity"] for row in traded)),
        ],
        "concatenated": "".join(hashes[kind] for kind in indices.KINDS),
        "fingerprint": indices.day_fingerprint(hashes),
    }


@require_GET
def index_methodology(request: HttpRequest) -> HttpResponse:
    """Public: the current version (a temporary redirect, it moves with each new version)."""
    return redirect("index-methodology-version", version=METHODOLOGY_VERSIONS[-1])


@require_GET
def index_methodology_version(request: HttpRequest, version: str) -> HttpResponse:
    """Public: one version of the methodology, with its worked example."""
    template = TEMPLATES.get(version)
    if template is None:
        raise Http404
    example = worked_example()
    day_url = request.build_absolute_uri(reverse("api-index-day", kwargs={"date": EXAMPLE_DAY.isoformat()}))
    context = {
        "version": version,
        "current_version": METHODOLOGY_VERSIONS[-1],
        "versions": METHODOLOGY_VERSIONS,
        "example": example,
        "licence_url": LICENCE_URL,
        "list_url": request.build_absolute_uri(reverse("api-index-list")),
        "day_url": f"{day_url}?gpu_class={EXAMPLE_CLASS}&zone={EXAMPLE_ZONE}",
        "peak_first": f"{indices.PEAK_FIRST_HOUR:02d}:00",
        "peak_end": f"{indices.PEAK_END_HOUR:02d}:00",
    }
    return render(request, template, context)


urlpatterns: list[URLPattern] = [
    path("dashboard/methodology/index/", index_methodology, name="index-methodology"),
    path("dashboard/methodology/index/<str:version>/", index_methodology_version, name="index-methodology-version"),
]
