from django.urls import URLPattern, URLResolver, path

from market import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("instruments/", api.InstrumentListView.as_view(), name="api-instrument-list"),
    # <str:…> matches anything but "/": symbols contain dots and dashes.
    path("instruments/<str:symbol>/", api.InstrumentDetailView.as_view(), name="api-instrument-detail"),
]
