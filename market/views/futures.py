"""Futures screens (issue 10, item 6): the board of a class's listed
futures with the forward curve, and the member's futures positions and
margin. Orders go through the trading screen of each future
(``market_instrument``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, URLResolver, path
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.selectors import membership_for
from market.models import GpuClass
from market.selectors import futures as selectors
from market.services import futures as services


@login_required
@require_GET
def futures_board(request: HttpRequest) -> HttpResponse:
    classes = list(GpuClass.objects.filter(active=True).order_by("code").values_list("code", flat=True))
    chosen = request.GET.get("gpu_class") or ("H100" if "H100" in classes else (classes[0] if classes else ""))
    if chosen not in classes:
        chosen = classes[0] if classes else ""
    rows = selectors.futures_board(gpu_class=chosen, now=timezone.now()) if chosen else []
    return render(request, "market/futures/board.html", {
        "classes": classes, "gpu_class": chosen, "rows": rows,
        "curve": selectors.forward_curve_points(rows),
    })


@login_required
@require_GET
def futures_margin(request: HttpRequest) -> HttpResponse:
    membership = membership_for(request.user)
    if membership is None or membership.organisation.is_observer:
        return render(request, "market/futures/margin.html", {"organisation": None}, status=403)
    organisation = membership.organisation
    calls, history = selectors.margin_history(organisation_id=organisation.pk)
    return render(request, "market/futures/margin.html", {
        "organisation": organisation,
        "margin": services.margin_summary(organisation_id=organisation.pk),
        "positions": selectors.futures_positions(organisation_id=organisation.pk),
        "calls": calls, "history": history,
    })


# Registered before trading's markets/<symbol>/: "futures" is no symbol.
urlpatterns: list[URLPattern | URLResolver] = [
    path("markets/futures/", futures_board, name="futures_board"),
    path("markets/futures/margin/", futures_margin, name="futures_margin"),
]
