"""ASGI entry point: Django for HTTP, Channels for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.ws_auth import ApiTokenAuthMiddleware, BrowserOriginValidator  # noqa: E402
from exchange.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin checked for browsers only; session cookie first, an API token wins (accounts.ws_auth).
        "websocket": BrowserOriginValidator(
            AuthMiddlewareStack(ApiTokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
