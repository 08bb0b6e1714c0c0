"""allauth's hooks where the exchange differs from allauth's defaults."""

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest
from django.urls import reverse

from accounts.selectors import membership_for


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request: HttpRequest) -> str:
        """Each person lands on what they can use: an observer (a public
        authority, read-only, never trading) on the markets' prices and
        volumes; everybody else on the landing page (``LOGIN_REDIRECT_URL``),
        which leads members to trading or to their organisation's KYC.
        A ``next`` given with the login still wins (allauth asks it first)."""
        membership = membership_for(request.user)
        if membership is not None and membership.organisation.is_observer:
            return reverse("market_overview")
        return super().get_login_redirect_url(request)
