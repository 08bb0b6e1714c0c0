"""The operator's review in the admin."""

import datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken, AuditLog, KycCase, KycDocument, Organisation
from tests.factories import PDF_BYTES, PNG_BYTES, ObserverFactory, OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, operator):
    operator.is_superuser = True
    operator.save()
    client.force_login(operator)
    return client


@pytest.fixture
def submitted(alice, org_a, private_storage):
    from django.core.files.uploadedfile import SimpleUploadedFile

    services.kyc_document_add(user=alice, organisation=org_a, kind=KycDocument.Kind.REGISTER_EXTRACT,
                              upload=SimpleUploadedFile("auszug.pdf", PDF_BYTES))
    services.kyc_document_add(user=alice, organisation=org_a, kind=KycDocument.Kind.REPRESENTATIVE_ID,
                              upload=SimpleUploadedFile("ausweis.png", PNG_BYTES))
    return services.kyc_submit(user=alice, organisation=org_a)


@pytest.mark.parametrize(
    "name",
    ["accounts_user", "accounts_organisation", "accounts_kyccase", "accounts_auditlog", "accounts_apitoken",
     "accounts_invitation"],
)
def test_each_list_opens(operator_client, alice, bob, charlie, name):
    assert operator_client.get(reverse(f"admin:{name}_changelist")).status_code == 200


def test_the_user_pages_work_without_a_username(operator_client, alice):
    assert operator_client.get(reverse("admin:accounts_user_change", args=[alice.pk])).status_code == 200
    response = operator_client.post(
        reverse("admin:accounts_user_add"),
        {"email": "new@example.com", "usable_password": "true", "password1": "a long passphrase 1",
         "password2": "a long passphrase 1"},
    )
    assert response.status_code == 302
    assert type(alice).objects.filter(email="new@example.com").exists()


def test_organisations_are_found_by_name_vat_id_register_number_and_member_email(operator_client, alice, org_a,
                                                                                   org_c):
    url = reverse("admin:accounts_organisation_changelist")
    typed = f"{org_a.vat_id[:2].lower()} {org_a.vat_id[2:5]} {org_a.vat_id[5:]}"
    for term in ("Alice Rechenwerk", org_a.vat_id, typed, org_a.register_number, "alice@example.com"):
        found = list(operator_client.get(url, {"q": term}).context["cl"].result_list)
        assert found == [org_a], term


def test_organisations_are_filtered_by_kyc_kind_state_sme_and_startup(operator_client):
    today = timezone.localdate()
    startup = OrganisationFactory(founding_date=today.replace(year=today.year - 1), kyc__status="approved")
    large = OrganisationFactory(founding_date=datetime.date(2000, 1, 1), employees_band="250+",
                                state="DE-NW", kyc__status="submitted")
    ministry = ObserverFactory(state="DE-BE")
    url = reverse("admin:accounts_organisation_changelist")

    def listed(**params):
        return set(operator_client.get(url, params).context["cl"].result_list)

    assert listed(startup="yes") == {startup}
    assert listed(startup="no") == {large, ministry}
    assert listed(sme="yes") == {startup}
    assert listed(sme="no") == {large, ministry}
    assert listed(kind="observer") == {ministry}
    assert listed(state="DE-NW") == {large}
    assert listed(kyc_status="approved") == {startup}
    assert listed(kyc_status="submitted") == {large}


def test_the_case_page_lists_the_documents_with_links_to_the_protected_view(operator_client, submitted):
    response = operator_client.get(reverse("admin:accounts_kyccase_change", args=[submitted.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    for document in submitted.documents.all():
        assert reverse("kyc_document_download", args=[document.pk]) in page
    assert reverse("admin:accounts_kyccase_decide", args=[submitted.pk]) in page
    # The operator downloads through the link.
    document = submitted.documents.first()
    assert operator_client.get(reverse("kyc_document_download", args=[document.pk])).status_code == 200


def test_the_operator_approves_on_the_decision_page(operator_client, operator, submitted,
                                                    django_capture_on_commit_callbacks):
    url = reverse("admin:accounts_kyccase_decide", args=[submitted.pk])
    assert operator_client.get(url, {"decision": "approve"}).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(url, {"decision": "approve", "reason": ""})

    assert response.status_code == 302
    submitted.refresh_from_db()
    assert (submitted.status, submitted.decided_by) == (KycCase.Status.APPROVED, operator)
    assert AuditLog.objects.filter(action="kyc.approve", actor=operator).exists()
    assert mail.outbox[0].to == ["alice@example.com"]


def test_rejecting_on_the_decision_page_needs_a_reason(operator_client, submitted):
    url = reverse("admin:accounts_kyccase_decide", args=[submitted.pk])
    response = operator_client.post(url, {"decision": "reject", "reason": ""})
    assert response.status_code == 400
    assert response.context["form"].errors["reason"]
    submitted.refresh_from_db()
    assert submitted.status == KycCase.Status.SUBMITTED
    assert not AuditLog.objects.filter(action="kyc.reject").exists()


def test_a_bulk_action_asks_for_the_reason_first(operator_client, submitted, django_capture_on_commit_callbacks):
    url = reverse("admin:accounts_kyccase_changelist")
    data = {"action": "needs_info_selected", ACTION_CHECKBOX_NAME: [submitted.pk]}

    page = operator_client.post(url, data)
    assert page.status_code == 200
    assert "form" in page.context
    submitted.refresh_from_db()
    assert submitted.status == KycCase.Status.SUBMITTED

    without_reason = operator_client.post(url, {**data, "apply": "yes", "reason": ""})
    assert without_reason.status_code == 200
    assert without_reason.context["form"].errors["reason"]
    submitted.refresh_from_db()
    assert submitted.status == KycCase.Status.SUBMITTED

    with django_capture_on_commit_callbacks(execute=True):
        done = operator_client.post(url, {**data, "apply": "yes", "reason": "Bitte aktuellen Auszug."})
    assert done.status_code == 302
    submitted.refresh_from_db()
    assert (submitted.status, submitted.reason) == (KycCase.Status.NEEDS_INFO, "Bitte aktuellen Auszug.")
    assert "Bitte aktuellen Auszug." in mail.outbox[0].body


def test_the_audit_log_can_be_read_but_not_added_changed_or_deleted(operator_client, submitted):
    entry = AuditLog.objects.first()
    assert operator_client.get(reverse("admin:accounts_auditlog_change", args=[entry.pk])).status_code == 200
    assert operator_client.get(reverse("admin:accounts_auditlog_add")).status_code == 403
    assert operator_client.post(reverse("admin:accounts_auditlog_change", args=[entry.pk]),
                                {"reason": "x"}).status_code == 403
    assert operator_client.post(reverse("admin:accounts_auditlog_delete", args=[entry.pk]),
                                {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk, reason="").exists()


def test_an_operator_revokes_an_api_token(operator_client, alice):
    issued = services.api_token_create(email=alice.email, password="correct horse battery staple")
    assert operator_client.get(reverse("admin:accounts_apitoken_change", args=[issued.token.pk])).status_code == 200

    response = operator_client.post(
        reverse("admin:accounts_apitoken_changelist"),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [issued.token.pk]},
    )

    assert response.status_code == 302
    assert not ApiToken.objects.exists()


def test_a_member_is_kept_out_of_the_admin(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:accounts_kyccase_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_staff_member_without_permissions_cannot_decide(client, submitted):
    staff = UserFactory(email="staff@example.com", is_staff=True)
    client.force_login(staff)
    response = client.post(reverse("admin:accounts_kyccase_decide", args=[submitted.pk]),
                           {"decision": "approve"})
    assert response.status_code == 403
    submitted.refresh_from_db()
    assert submitted.status == KycCase.Status.SUBMITTED


def inline_management(prefix="memberships"):
    return {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000"}


def test_an_operator_sets_up_an_authority_as_observer_and_it_is_audited(operator_client, operator):
    response = operator_client.post(reverse("admin:accounts_organisation_add"), {
        "kind": "observer", "legal_name": "Bundesamt für Rechenkraft", "legal_form": "Bundesoberbehörde",
        "street": "Am Markt 1", "postal_code": "53113", "city": "Bonn", "state": "DE-NW",
        **inline_management(),
    })

    assert response.status_code == 302, response.context["adminform"].form.errors
    authority = Organisation.objects.get(legal_name="Bundesamt für Rechenkraft")
    assert authority.is_observer
    assert authority.kyc.status == KycCase.Status.DRAFT
    row = AuditLog.objects.get(action="organisation.create", organisation=authority)
    assert row.actor == operator
    assert row.after["kind"] == "observer"


def test_an_operators_edit_is_audited_with_before_and_after(operator_client, operator, org_a):
    url = reverse("admin:accounts_organisation_change", args=[org_a.pk])
    form = operator_client.get(url).context["adminform"].form
    data = {name: ("" if value is None else value) for name, value in form.initial.items()
            if name in form.fields}
    data.update(founding_date=org_a.founding_date.isoformat(), city="Augsburg", **inline_management())

    response = operator_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    row = AuditLog.objects.get(action="organisation.change", organisation=org_a)
    assert (row.actor, row.before, row.after) == (operator, {"city": "München"}, {"city": "Augsburg"})


def test_a_member_organisation_needs_its_kyc_fields_in_the_admin_too(operator_client):
    response = operator_client.post(reverse("admin:accounts_organisation_add"), {
        "kind": "member", "legal_name": "Ohne Register GmbH", "legal_form": "GmbH",
        "street": "Am Markt 1", "postal_code": "53113", "city": "Bonn", "state": "DE-NW",
        **inline_management(),
    })
    assert response.status_code == 200
    assert {"vat_id", "register_number"} <= set(response.context["adminform"].form.errors)
    assert not Organisation.objects.filter(legal_name="Ohne Register GmbH").exists()
