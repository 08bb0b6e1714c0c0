import pytest
from django.urls import reverse

from exchange.health import record_heartbeat

pytestmark = pytest.mark.django_db


def test_healthz_reports_each_service_and_is_degraded_without_celery(client):
    response = client.get(reverse("healthz"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == {"ok": True, "detail": "postgresql"}
    assert body["checks"]["channel_layer"]["ok"] is True
    assert body["checks"]["channel_layer"]["detail"] == "RedisChannelLayer"
    assert body["checks"]["celery"] == {"ok": False, "detail": "no heartbeat yet"}


def test_healthz_is_ok_after_a_celery_heartbeat(client):
    record_heartbeat()

    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["checks"]["celery"]["ok"] is True


def test_healthz_is_not_cached(client):
    response = client.get(reverse("healthz"))
    assert "no-cache" in response["Cache-Control"]
