"""The project's URLs plus a page and an API path that fail, to see the 500 answers."""

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path

from exchange.urls import urlpatterns as exchange_urlpatterns

handler404 = "exchange.views.not_found"
handler500 = "exchange.views.server_failed"


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug, on purpose")


urlpatterns: list[URLPattern | URLResolver] = [
    path("fails/", fail),
    path("api/v1/fails/", fail),
    *exchange_urlpatterns,
]
