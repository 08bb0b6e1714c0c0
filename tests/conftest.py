"""Suite-wide fixtures. The suite runs on real PostgreSQL and Redis
(`make test` provides them, see scripts/services.sh)."""

import copy
import os
import uuid

import pytest
from django.conf import settings as django_settings


def pytest_configure(config: pytest.Config) -> None:
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.exit("The suite runs on PostgreSQL: use `make test`, or set DATABASE_URL and REDIS_URL.", 2)
    if not django_settings.REDIS_URL:
        pytest.exit("The suite runs on Redis: use `make test`, or set REDIS_URL.", 2)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        # Each xdist worker's test databases hold the same instrument symbols,
        # so their channel-layer groups (book.<symbol>) must not share a
        # Redis prefix: one worker's broadcasts reached the other's sockets.
        layers = copy.deepcopy(django_settings.CHANNEL_LAYERS)
        layers["default"]["CONFIG"]["prefix"] = f"{layers['default']['CONFIG']['prefix']}:{worker}"
        django_settings.CHANNEL_LAYERS = layers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Browser journeys last: Playwright's sync API keeps an event loop in the
    # main thread while its session-wide browser lives, and async_to_sync
    # (channel-layer broadcasts) refuses to run in a thread with a loop.
    items.sort(key=lambda item: "tests/browser/" in str(item.path))


@pytest.fixture(autouse=True)
def _test_settings(settings):  # type: ignore[no-untyped-def]
    # Fast hashing for tests only.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A fresh key prefix per test: rate limits and heartbeats of one test never
    # leak into the next, and nothing needs flushing on the shared Redis.
    caches = {alias: dict(conf) for alias, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"{settings.REDIS_PREFIX}:{uuid.uuid4().hex[:12]}"
    settings.CACHES = caches


@pytest.fixture(autouse=True)
def _fresh_fee_schedule():  # type: ignore[no-untyped-def]
    # Each process keeps a copy of the fee schedule (clearing.selectors); a
    # test's rows are rolled back behind its back, so start every test afresh.
    from clearing.selectors import fee_schedule_forget

    fee_schedule_forget()
    yield
    fee_schedule_forget()
