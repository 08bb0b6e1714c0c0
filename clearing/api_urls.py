from django.urls import URLPattern, URLResolver, path

from clearing import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("account/", api.AccountView.as_view(), name="api-account"),
]
