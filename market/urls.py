from django.urls import URLPattern, URLResolver, path

from market import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("trading/", views.trading_home, name="trading_home"),
]
