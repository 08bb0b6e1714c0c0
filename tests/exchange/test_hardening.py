"""Hardening (issue 7, item 10): malformed input, headers and edges that must
never end in a 500 or leak a private page into a cache."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework.views import APIView

from exchange.parsers import SafeJSONParser
from market.models import Order
from tests.market.orders_world import make_world

pytestmark = pytest.mark.django_db

NESTED = "[" * 100_000


def _api_routes() -> list[tuple[str, type[APIView]]]:
    """(path with placeholders filled, view class) of every /api/v1/ route."""
    routes: list[tuple[str, type[APIView]]] = []

    def walk(patterns, prefix: str) -> None:  # type: ignore[no-untyped-def]
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view_class = getattr(pattern.callback, "view_class", None)
                route = prefix + str(pattern.pattern)
                if route.startswith("api/v1/") and view_class is not None:
                    filled = route.replace("<int:order_id>", "1").replace("<int:pk>", "1").replace("<str:symbol>", "X")
                    routes.append(("/" + filled, view_class))

    walk(get_resolver().url_patterns, "")
    return routes


def test_every_api_view_parses_json_with_the_safe_parser():
    routes = _api_routes()
    assert len(routes) >= 15  # the walk found the API, not nothing
    for path, view_class in routes:
        parsers = view_class().get_parsers()
        assert parsers and all(isinstance(parser, SafeJSONParser) for parser in parsers), path


def _refused_as_invalid(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.content[:200]
    body = response.json()
    assert set(body) == {"code", "detail", "fields"}
    assert body["code"] == "invalid"


def test_deeply_nested_json_is_a_400_on_the_unauthenticated_token_endpoint():
    response = APIClient().post("/api/v1/auth/token/", NESTED, content_type="application/json")
    _refused_as_invalid(response)


def test_deeply_nested_json_is_a_400_on_order_entry_and_writes_nothing():
    world = make_world()
    client = APIClient()
    client.force_authenticate(world.alice)
    before = Order.objects.count()

    _refused_as_invalid(client.post("/api/v1/orders/", NESTED, content_type="application/json"))
    _refused_as_invalid(client.post("/api/v1/orders/batch/", NESTED, content_type="application/json"))
    placed = client.post("/api/v1/orders/", {"instrument": world.instrument.symbol, "side": "buy", "type": "limit",
                                             "price": "10.00", "quantity": 1}, format="json")
    assert placed.status_code == 201, placed.content
    _refused_as_invalid(client.patch(f"/api/v1/orders/{placed.json()['id']}/", NESTED,
                                     content_type="application/json"))
    assert Order.objects.count() == before + 1


def test_no_api_route_answers_deeply_nested_json_with_a_server_error():
    world = make_world()
    client = APIClient()
    client.force_authenticate(world.alice)
    client.raise_request_exception = False
    for path, view_class in _api_routes():
        for method in ("post", "put", "patch", "delete"):
            if not hasattr(view_class, method):
                continue
            response = getattr(client, method)(path, NESTED, content_type="application/json")
            assert response.status_code < 500, (method, path, response.status_code)


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_the_delivery_date_filter_at_the_edge_of_the_calendar_finds_nothing_instead_of_failing(client, day):
    world = make_world()
    client.raise_request_exception = False
    client.force_login(world.alice)

    listed = client.get(f"/api/v1/instruments/?delivery_date={day}")
    overview = client.get(f"/markets/?delivery_date={day}")

    assert listed.status_code == 200, listed.content[:300]
    assert listed.json() == [] or listed.json().get("results") == []
    assert overview.status_code == 200
    assert world.instrument.symbol not in overview.content.decode()


def test_the_api_limit_counts_in_windows_with_one_key_per_user_and_window(monkeypatch):
    """exchange.throttling: one counter per user and window (not DRF's list of
    every request's time); the next window starts afresh."""
    from django.core.cache import cache
    from rest_framework.test import APIRequestFactory

    from exchange.throttling import UserRateThrottle

    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min"})
    clock = [1_000_040.0]  # 20 s into a minute (minutes start at multiples of 60 s)
    throttle = UserRateThrottle()
    throttle.timer = lambda: clock[0]
    request = APIRequestFactory().get("/api/v1/orders/")
    request.user = type("U", (), {"is_authenticated": True, "pk": 4242})()

    assert [throttle.allow_request(request, None) for _ in range(4)] == [True, True, True, False]
    assert 39 <= throttle.wait() <= 40  # the rest of this minute
    assert cache.get(f"{throttle.key}:{int(clock[0] // 60)}") == 4
    clock[0] += 40  # the next minute
    assert throttle.allow_request(request, None) is True
