from django.urls import URLPattern, URLResolver, path

from market import views
from market.views import (
    controls,
    dashboard,
    dayahead,
    futures,
    indicators,
    methodology,
    power,
    provider,
    public,
    trading,
)

urlpatterns: list[URLPattern | URLResolver] = [
    path("trading/", views.trading_home, name="trading_home"),
    *dayahead.urlpatterns,
    *controls.urlpatterns,  # before trading's markets/<symbol>/
    *futures.urlpatterns,  # likewise
    *trading.urlpatterns,
    *provider.urlpatterns,
    *dashboard.urlpatterns,
    *methodology.urlpatterns,  # its index/ before public's <indicator>/
    *indicators.urlpatterns,
    *power.urlpatterns,
    *public.urlpatterns,
]
