"""The project's URLs plus stand-ins for pages a later issue builds (the public
dashboards, the start-up incentive programmes), to show that the site links
them as soon as they exist."""

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path

from exchange.urls import urlpatterns as exchange_urlpatterns

handler404 = "exchange.views.not_found"


def stand_in(request: HttpRequest) -> HttpResponse:
    return HttpResponse("stand-in")


urlpatterns: list[URLPattern | URLResolver] = [
    path("dashboard/", stand_in, name="dashboard"),
    path("incentives/", stand_in, name="incentives"),
    *exchange_urlpatterns,
]
