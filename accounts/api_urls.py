from django.urls import URLPattern, URLResolver, path

from accounts import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("auth/token/", api.TokenView.as_view(), name="api_auth_token"),
    path("me/", api.MeView.as_view(), name="api_me"),
]
