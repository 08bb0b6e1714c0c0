"""Response headers that keep pages safe: a Content-Security-Policy with a
per-request script nonce, and ``Cache-Control: no-store`` on everything a
logged-in user is shown (docs/architecture.md, "Hardening").

Django 5.2 has no CSP support of its own (it arrives in 6.0).
"""

import secrets
from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control


def content_security_policy(*, nonce: str, host: str | None) -> str:
    # WebSockets (htmx's ws extension, the trading screen) go to this host.
    # CSP 3 browsers count ws/wss of the page's host as 'self'; older ones do not.
    sockets = f" ws://{host} wss://{host}" if host else ""
    directives = [
        "default-src 'self'",
        # Scripts only from our static files, or inline when they carry this
        # response's nonce. No inline event handlers, no eval.
        f"script-src 'self' 'nonce-{nonce}'",
        # Inline styles stay allowed: htmx inserts its indicator styles, Plotly
        # its chart styles, Swagger UI and the admin use style attributes, and
        # a few templates have a <style> block. A style cannot run code.
        "style-src 'self' 'unsafe-inline'",
        # data: for the SVG icons Swagger UI inlines.
        "img-src 'self' data:",
        f"connect-src 'self'{sockets}",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    """Gives each request a nonce (``request.csp_nonce``; templates get it as
    ``csp_nonce`` from the context processor below) and each response the policy."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(18)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:  # a view may set a policy of its own
            try:
                host: str | None = request.get_host()
            except DisallowedHost:  # answered 400 already; no sockets for a host we do not serve
                host = None
            response["Content-Security-Policy"] = content_security_policy(nonce=nonce, host=host)
        return response


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    """Context processor: ``{{ csp_nonce }}`` for inline scripts (``<script nonce="{{ csp_nonce }}">``);
    django-htmx's ``{% htmx_script %}`` reads the same name."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


class PrivateNoStoreMiddleware:
    """Nothing shown to a logged-in user is kept by a browser or proxy cache:
    trading, portfolio, organisation, deliveries, statements, invoices,
    withdrawals, provider and admin pages, and the API answers of a member.
    Public pages seen anonymously keep their caching. Must come after
    AuthenticationMiddleware; DRF's token users count too (DRF sets the user
    on the Django request)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response
