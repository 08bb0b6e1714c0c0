from typing import Any

from django.http import HttpRequest

from accounts.models import Membership
from accounts.selectors import membership_for
from accounts.services import trading_gate_check
from exchange.errors import ExchangeError

_CACHE_ATTR = "_rb_current_membership"


def _membership(request: HttpRequest) -> Membership | None:
    # Several templates may render in one request; ask the database once.
    if not hasattr(request, _CACHE_ATTR):
        setattr(request, _CACHE_ATTR, membership_for(getattr(request, "user", None)))
    return getattr(request, _CACHE_ATTR)


def membership(request: HttpRequest) -> dict[str, Any]:
    """Navigation by role: what the signed-in person may see. At most one
    query (the membership with its organisation and KYC case)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {
            "current_membership": None,
            "can_trade": False,
            "is_operator": False,
            "is_observer": False,
            "is_provider": False,
            "is_owner": False,
        }
    current = _membership(request)
    try:
        trading_gate_check(current, "trader")
        can_trade = True
    except ExchangeError:
        can_trade = False
    observer = current is not None and current.organisation.is_observer
    return {
        "current_membership": current,
        "can_trade": can_trade,
        "is_operator": bool(user.is_staff),
        "is_observer": observer,
        "is_provider": current is not None and current.is_provider and not observer,
        "is_owner": current is not None and current.is_owner,
    }
