"""Registering an organisation and its page."""

import datetime

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import AuditLog, KycCase, Membership, Organisation
from exchange.errors import ExchangeError
from tests.factories import UserFactory, invalid_vat_id, valid_vat_id

pytestmark = pytest.mark.django_db


def form_data(**overrides):
    data = {
        "legal_name": "Dora Datenwerk GmbH",
        "legal_form": "GmbH",
        "register_court": "Amtsgericht Leipzig",
        "register_type": "HRB",
        "register_number": "40711",
        "vat_id": valid_vat_id("81234567"),
        "street": "Petersstraße 1",
        "postal_code": "04109",
        "city": "Leipzig",
        "state": "DE-SN",
        "founding_date": "2023-05-02",
        "employees_band": "10-49",
        "turnover_band": "le2m",
    }
    data.update(overrides)
    return data


@pytest.fixture
def dora(db):
    return UserFactory(email="dora@example.com")


def counts():
    return (Organisation.objects.count(), Membership.objects.count(), KycCase.objects.count(), AuditLog.objects.count())


def test_dora_registers_her_organisation_and_becomes_owner_and_trader(client, dora):
    client.force_login(dora)
    typed_vat_id = "de 812 345 67" + valid_vat_id("81234567")[-1]
    response = client.post(reverse("organisation_create"), form_data(vat_id=typed_vat_id, register_number="HRB 40711"))

    assert response.status_code == 302
    assert response["Location"] == reverse("organisation_detail")
    organisation = Organisation.objects.get()
    assert organisation.vat_id == valid_vat_id("81234567")
    assert organisation.register_number == "40711"
    assert organisation.kind == Organisation.Kind.MEMBER
    assert organisation.founding_date == datetime.date(2023, 5, 2)
    assert organisation.kyc.status == KycCase.Status.DRAFT
    membership = Membership.objects.get(user=dora)
    assert (membership.is_owner, membership.is_trader, membership.is_provider) == (True, True, False)
    assert AuditLog.objects.filter(action="organisation.create", organisation=organisation, actor=dora).exists()


def test_a_wrong_vat_check_digit_shows_at_the_field_and_writes_nothing(client, dora):
    client.force_login(dora)
    before = counts()

    response = client.post(reverse("organisation_create"), form_data(vat_id=invalid_vat_id("81234567")))

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["vat_id"]
    assert b'class="field-error"' in response.content
    assert counts() == before


def test_missing_fields_show_at_each_field(client, dora):
    client.force_login(dora)
    response = client.post(reverse("organisation_create"), form_data(register_number="", founding_date=""))
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"register_number", "founding_date"}
    assert Organisation.objects.count() == 0


def test_a_vat_id_already_registered_is_named_at_the_field(client, dora, org_a):
    client.force_login(dora)
    before = counts()
    response = client.post(reverse("organisation_create"), form_data(vat_id=org_a.vat_id))
    assert response.status_code == 400
    assert "vat_id" in response.context["form"].errors
    assert counts() == before


def test_the_service_refuses_a_second_organisation_for_the_same_person(alice):
    before = counts()
    with pytest.raises(ExchangeError) as refused:
        services.organisation_create(user=alice, **{**form_data(), "founding_date": datetime.date(2020, 1, 1)})
    assert refused.value.code == "invalid"
    assert counts() == before


def test_the_service_checks_the_fields_itself(dora):
    before = counts()
    with pytest.raises(ExchangeError) as refused:
        services.organisation_create(
            user=dora, **{**form_data(vat_id=invalid_vat_id(), postal_code="1234"), "founding_date": None}
        )
    assert refused.value.code == "invalid"
    assert {"vat_id", "postal_code", "founding_date"} <= set(refused.value.fields)
    assert counts() == before


def test_a_member_is_sent_from_the_create_page_to_their_organisation(client, alice):
    client.force_login(alice)
    response = client.get(reverse("organisation_create"))
    assert response.status_code == 302
    assert response["Location"] == reverse("organisation_detail")


def test_without_an_organisation_the_page_leads_to_registering_one(client, dora):
    client.force_login(dora)
    response = client.get(reverse("organisation_detail"))
    assert response.status_code == 302
    assert response["Location"] == reverse("organisation_create")
    assert client.get(reverse("organisation_create")).status_code == 200


def test_alice_sees_status_documents_upload_submit_members_and_invite(client, alice, bob, org_a):
    client.force_login(alice)
    response = client.get(reverse("organisation_detail"))

    assert response.status_code == 200
    page = response.content.decode()
    assert org_a.legal_name in page
    assert 'class="badge badge-warn"' in page  # draft
    assert reverse("kyc_document_upload") in page
    assert reverse("kyc_submit") in page
    assert reverse("invitation_create") in page
    assert "bob@example.com" in page and "alice@example.com" in page


def test_bob_sees_the_members_but_no_documents_nor_owner_forms(client, bob, org_a):
    client.force_login(bob)
    response = client.get(reverse("organisation_detail"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "alice@example.com" in page
    assert reverse("kyc_document_upload") not in page
    assert reverse("invitation_create") not in page
    assert response.context["documents"] == []


def test_the_pages_need_a_login(client):
    for name in ("organisation_detail", "organisation_create"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert reverse("account_login") in response["Location"]


@pytest.mark.parametrize("name", ["kyc_document_upload", "kyc_submit", "invitation_create"])
def test_state_changing_views_take_post_only(client, alice, name):
    client.force_login(alice)
    assert client.get(reverse(name)).status_code == 405


def test_submit_without_documents_shows_what_is_missing(client, alice, org_a):
    client.force_login(alice)
    response = client.post(reverse("kyc_submit"), follow=True)
    assert response.status_code == 200
    assert any(message.level_tag == "error" for message in response.context["messages"])
    org_a.kyc.refresh_from_db()
    assert org_a.kyc.status == KycCase.Status.DRAFT
