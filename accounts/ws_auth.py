"""Who is on the other end of a WebSocket.

Browsers sign in with their session cookie (channels' ``AuthMiddlewareStack``);
API clients with the same token as the REST API, sent one of three ways:

* ``Authorization: Token <key>`` (clients that can set headers);
* ``Sec-WebSocket-Protocol: token, <key>`` (browsers, which cannot set
  headers: ``new WebSocket(url, ["token", key])``; the server answers with
  the ``token`` subprotocol, never echoing the key);
* ``?token=<key>`` in the URL (last resort: URLs end up in logs).

A token, when one is sent, wins over the session: the client asked for that
identity explicitly. An unknown or revoked token leaves the socket anonymous,
it does not fall back to the cookie.

The origin check: browsers always send ``Origin`` on a WebSocket handshake,
and a page of another site must not ride on our session cookie (cross-site
WebSocket hijacking), so an Origin that is not one of ``ALLOWED_HOSTS`` is
refused. A handshake without ``Origin`` comes from a program, not a browser
page; it is let through, because the contract's market data and token-auth
streams are meant for exactly such clients.
"""

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from accounts.authentication import LAST_USED_RESOLUTION, hash_token
from accounts.models import ApiToken, User
from accounts.services import TOKEN_PREFIX

TOKEN_SUBPROTOCOL = "token"  # noqa: S105 - a protocol name, not a secret


class BrowserOriginValidator(OriginValidator):
    """``AllowedHostsOriginValidator`` that lets handshakes without Origin through (see module doc)."""

    def __init__(self, application: Any):
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)

    def valid_origin(self, parsed_origin: Any) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


def token_key_from_scope(scope: dict[str, Any]) -> str | None:
    """The API token the handshake carries, if any (see module doc for the three ways)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin1").split()
            if len(parts) == 2 and parts[0].lower() == "token":
                return parts[1]
    for protocol in scope.get("subprotocols", []):
        if protocol.startswith(TOKEN_PREFIX):
            return str(protocol)
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    keys = query.get("token")
    return keys[0] if keys else None


def user_for_token(key: str) -> User | None:
    """The active user holding this token, or None; notes its use like the REST API does."""
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_token(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


class ApiTokenAuthMiddleware(BaseMiddleware):
    """Sets ``scope["user"]`` from an API token when the handshake carries one.
    Goes inside ``AuthMiddlewareStack``, which set the session's user before."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = token_key_from_scope(scope)
        if key is not None:
            scope = dict(scope)
            user = await database_sync_to_async(user_for_token)(key)
            scope["user"] = user if user is not None else AnonymousUser()
        return await super().__call__(scope, receive, send)


def accepted_subprotocol(scope: dict[str, Any]) -> str | None:
    """What the server answers in Sec-WebSocket-Protocol: a browser that
    offered protocols fails the handshake unless one is echoed."""
    return TOKEN_SUBPROTOCOL if TOKEN_SUBPROTOCOL in scope.get("subprotocols", []) else None
