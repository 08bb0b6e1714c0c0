"""The incentives API, the member screen and the public aggregate (issue 12
parts 3-6): a member sees only its own organisation's applications and
credits; the screen says in words why an organisation is not eligible; the
public figures name no member."""

from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from incentives.models import Application
from incentives.services import application_approve, application_submit, programme_open
from tests.incentives.conftest import fund, make_programme

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def programme(operator):
    fund(operator, "10000.00")
    return programme_open(operator=operator, programme=make_programme(budget=D("5000.00"),
                                                                       max_grant=D("2000.00")))


@pytest.fixture
def granted(programme, operator, alice):
    application = application_submit(user=alice, programme=programme, plan="Bildmodelle", amount=D("1500.00"))
    return application_approve(operator=operator, application=application)


def test_the_programme_list_is_public_and_names_no_member(programme, granted):
    response = APIClient().get("/api/v1/incentives/programmes/")
    assert response.status_code == 200
    [row] = response.json()
    assert row["name"] == "Gründungsrechnen 2026" and row["remaining_budget"] == "3500.00"
    assert row["rules"] == {"max_age_years": 5, "sme_only": True, "states": [], "first_time_buyers_only": False}
    assert "Alice" not in response.content.decode()


def test_eligibility_answers_reasons(programme, alice, charlie):
    api = APIClient()
    url = f"/api/v1/incentives/programmes/{programme.pk}/eligibility/"
    assert api.get(url).status_code in (401, 403)
    api.force_authenticate(alice)
    assert api.get(url).json()["eligible"] is True
    api.force_authenticate(charlie)
    body = api.get(url).json()
    assert body["eligible"] is False and body["reasons"] == ["too_old"]


def test_applying_through_the_api(programme, alice, charlie):
    api = APIClient()
    api.force_authenticate(alice)
    # The contract's body {"programme", "plan"} still works: the amount defaults to the maximum grant.
    response = api.post("/api/v1/incentives/applications/", {"programme": programme.pk, "plan": "Sprachmodelle"},
                        format="json")
    assert response.status_code == 201 and response.json()["requested_amount"] == "2000.00"
    again = api.post("/api/v1/incentives/applications/", {"programme": programme.pk, "plan": "Noch eins"},
                     format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    api.force_authenticate(charlie)
    refused = api.post("/api/v1/incentives/applications/", {"programme": programme.pk, "plan": "Alt"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "not_eligible"
    assert set(refused.json()) == {"code", "detail", "fields"}
    assert Application.objects.count() == 1


def test_a_member_never_sees_another_organisations_applications_or_credits(granted, alice, bob, charlie):
    api = APIClient()
    api.force_authenticate(charlie)
    assert api.get("/api/v1/incentives/applications/").json() == []
    credits = api.get("/api/v1/incentives/credits/").json()
    assert credits == {"credits_available": "0.00", "credits_reserved": "0.00", "grants": []}
    api.force_authenticate(bob)  # Alice's colleague sees their organisation's
    assert len(api.get("/api/v1/incentives/applications/").json()) == 1
    credits = api.get("/api/v1/incentives/credits/").json()
    assert credits["credits_available"] == "1500.00"
    assert [(g["amount"], g["used"], g["expired"], g["left"]) for g in credits["grants"]] == [
        ("1500.00", "0.00", "0.00", "1500.00")]
    assert APIClient().get("/api/v1/incentives/credits/").status_code in (401, 403)


def test_the_screen_shows_eligibility_and_the_reasons_in_german(programme, alice, charlie, client):
    client.force_login(charlie)
    page = client.get(reverse("incentives"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Gründungsrechnen 2026" in page
    assert "Ihre Organisation ist nicht förderfähig" in page
    assert "vor zu langer Zeit gegründet" in page
    assert f'name="p{programme.pk}-plan"' not in page
    client.force_login(alice)
    page = client.get(reverse("incentives")).content.decode()
    assert "Ihre Organisation ist förderfähig." in page and f'name="p{programme.pk}-plan"' in page
    assert 'href="/incentives/"' in page  # the member navigation links it


def test_applying_on_the_screen_with_errors_at_the_field(programme, alice, client):
    client.force_login(alice)
    response = client.post(reverse("incentives"), {"programme": programme.pk, f"p{programme.pk}-plan": "KI",
                                                     f"p{programme.pk}-amount": "2000,01"})
    assert response.status_code == 400
    assert "Höchstens 2.000,00 EUR je Organisation." in response.content.decode()
    response = client.post(reverse("incentives"), {"programme": programme.pk, f"p{programme.pk}-plan": "KI",
                                                     f"p{programme.pk}-amount": "1000,00"})
    assert response.status_code == 302
    assert Application.objects.get().requested_amount == D("1000.00")


def test_the_public_aggregate_names_no_member(granted, client):
    body = APIClient().get("/api/v1/incentives/financing/").json()
    assert body["startups_supported"] == 1 and body["credits_granted"] == "1500.00"
    assert body["credits_used"] == "0.00" and body["credits_expired"] == "0.00"
    assert body["programme_budgets_open"] == "3500.00" and body["fund_balance"] == "5000.00"
    assert body["incentive_fund_balance"] == "5000.00"  # the earlier fields stay
    page = client.get(reverse("dashboard_incentives")).content.decode()
    assert "Geförderte Start-ups" in page
    for text in (body, page):
        assert "Alice" not in str(text) and "alice@" not in str(text)
