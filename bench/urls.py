"""The exchange's URLs plus the benchmark's reference endpoint (bench only)."""

from django.urls import path

from bench.reference import ReferenceOrderView
from exchange.urls import handler404
from exchange.urls import urlpatterns as exchange_urlpatterns

urlpatterns = [path("bench/reference/", ReferenceOrderView.as_view()), *exchange_urlpatterns]

__all__ = ["handler404", "urlpatterns"]
