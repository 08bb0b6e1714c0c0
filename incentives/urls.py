from django.urls import URLPattern, URLResolver, path

from incentives.views import dashboard_incentives, incentives

urlpatterns: list[URLPattern | URLResolver] = [
    path("dashboard/incentives/", dashboard_incentives, name="dashboard_incentives"),
    path("incentives/", incentives, name="incentives"),
]
