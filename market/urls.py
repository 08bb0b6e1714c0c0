from django.urls import URLPattern, URLResolver, path

from market import views
from market.views import provider, trading

urlpatterns: list[URLPattern | URLResolver] = [
    path("trading/", views.trading_home, name="trading_home"),
    *trading.urlpatterns,
    *provider.urlpatterns,
]
