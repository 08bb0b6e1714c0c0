"""HTML screens of the market. The trading area's entry page asks the one
gate, ``accounts.services.trading_gate``, whether the member may trade, and
leads to the markets and the portfolio (``market.views.trading``)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.selectors import kyc_status_of
from accounts.services import trading_gate
from clearing.selectors import account_summary
from exchange.errors import ExchangeError


@login_required
@require_GET
def trading_home(request: HttpRequest) -> HttpResponse:
    try:
        membership = trading_gate(user=request.user, role="trader")
    except ExchangeError as refused:
        return render(request, "market/trading_refused.html", {"refusal": refused}, status=refused.status)
    context = {
        "membership": membership,
        "organisation": membership.organisation,
        "kyc_status": kyc_status_of(membership.organisation),
        "account": account_summary(organisation=membership.organisation),
    }
    return render(request, "market/trading_home.html", context)
