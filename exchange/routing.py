"""WebSocket routes (API contract, "Market data"). Authentication (session or
API token) and the origin check wrap these in ``exchange.asgi``."""

from django.urls import URLPattern, URLResolver, path

from market import consumers

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    # <str:…> matches anything but "/": symbols contain dots and dashes.
    path("ws/book/<str:symbol>/", consumers.BookConsumer.as_asgi()),
    path("ws/trades/<str:symbol>/", consumers.TradesConsumer.as_asgi()),
    path("ws/private/", consumers.PrivateConsumer.as_asgi()),
]
