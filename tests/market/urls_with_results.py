"""The project's URLs plus a stand-in for the public results page of an
auction (built by another part of issue 9), to show that the member page
links it as soon as it exists."""

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path

from exchange.urls import urlpatterns as exchange_urlpatterns


def stand_in(request: HttpRequest, day: str) -> HttpResponse:
    return HttpResponse("stand-in")


urlpatterns: list[URLPattern | URLResolver] = [
    path("dashboard/dayahead/<str:day>/", stand_in, name="dashboard-dayahead"),
    *exchange_urlpatterns,
]
