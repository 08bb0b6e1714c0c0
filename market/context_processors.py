"""The margin call banner (issue 10): on every page of a member whose
organisation has an open margin call. At most one query, and none for
visitors and members without futures (no margin account opened)."""

from typing import Any

from django.http import HttpRequest

from accounts.context_processors import _membership
from market.models import MarginCall


def margin_call(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"open_margin_call": None}
    membership = _membership(request)
    if membership is None:
        return {"open_margin_call": None}
    call = (MarginCall.objects.filter(organisation_id=membership.organisation_id, met_at__isnull=True,
                                      closed_out_at__isnull=True).order_by("-date").first())
    return {"open_margin_call": call}
