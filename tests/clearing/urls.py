"""The project's URLs plus the clearing API, until exchange/urls.py includes
clearing.api_urls in api_v1 (then this module is redundant but harmless)."""

from django.urls import URLPattern, URLResolver, include, path

from exchange.urls import urlpatterns as exchange_urlpatterns

handler404 = "exchange.views.not_found"

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/", include("clearing.api_urls")),
    *exchange_urlpatterns,
]
