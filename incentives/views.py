"""Public page of the start financing and the incentive fund (issue 12)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from incentives.selectors import financing_summary


@require_GET
def dashboard_incentives(request: HttpRequest) -> HttpResponse:
    """Public (no login): what the exchange owes the state, the repayments
    per month, the expected payoff month and the incentive fund's balance."""
    return render(request, "incentives/dashboard.html", {"summary": financing_summary()})
