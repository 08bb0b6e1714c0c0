from django.urls import URLPattern, URLResolver, path

from incentives import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("incentives/financing/", api.FinancingView.as_view(), name="api-incentives-financing"),
]
