"""KYC documents (upload, protected download) and the review's state machine."""

import hashlib

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from accounts import services
from accounts.models import AuditLog, KycCase, KycDocument
from exchange.errors import ExchangeError
from tests.accounts.helpers import stored_files
from tests.factories import JPEG_BYTES, PDF_BYTES, PNG_BYTES, KycDocumentFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def add(user, organisation, kind=KycDocument.Kind.REGISTER_EXTRACT, name="auszug.pdf", content=PDF_BYTES):
    return services.kyc_document_add(user=user, organisation=organisation, kind=kind, upload=upload(name, content))


def add_required(user, organisation):
    add(user, organisation, KycDocument.Kind.REGISTER_EXTRACT)
    add(user, organisation, KycDocument.Kind.REPRESENTATIVE_ID, "ausweis.png", PNG_BYTES)


# --- upload ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [("auszug.pdf", PDF_BYTES, "application/pdf"), ("scan.PNG", PNG_BYTES, "image/png"),
     ("ausweis.jpeg", JPEG_BYTES, "image/jpeg"), ("ohne-endung", PDF_BYTES, "application/pdf")],
)
def test_an_owner_uploads_a_document_whose_type_is_detected_from_its_content(
    alice, org_a, private_storage, name, content, content_type
):
    document = add(alice, org_a, name=name, content=content)

    assert document.content_type == content_type
    assert document.original_name == name
    assert document.size == len(content)
    assert document.sha256 == hashlib.sha256(content).hexdigest()
    assert document.uploaded_by == alice
    # Stored under a random name in the private storage, not under the uploader's.
    [path] = stored_files(private_storage)
    assert path.read_bytes() == content
    assert name not in str(path)
    assert AuditLog.objects.filter(action="kyc.document_add", object_id=str(document.pk)).exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("auszug.pdf", b"MZ\x90\x00 this is a Windows program, not a PDF" * 10, "PDF, PNG"),
        ("auszug.pdf", b"just some text pretending to be a PDF", "PDF, PNG"),
        ("auszug.pdf", PNG_BYTES, "PNG"),  # a real PNG named .pdf: name and content disagree
        ("notes.txt", b"plain text", "PDF, PNG"),
        ("leer.pdf", b"", "empty"),
    ],
)
def test_a_file_that_is_not_what_it_claims_is_refused_and_nothing_is_written(
    alice, org_a, private_storage, name, content, message, settings
):
    settings.LANGUAGE_CODE = "en"
    audit_rows = AuditLog.objects.count()
    with pytest.raises(ExchangeError) as refused:
        add(alice, org_a, name=name, content=content)

    assert refused.value.code == "invalid"
    assert message in refused.value.fields["file"][0]
    assert KycDocument.objects.count() == 0
    assert AuditLog.objects.count() == audit_rows
    assert stored_files(private_storage) == []


def test_a_file_one_byte_over_the_limit_is_refused_and_nothing_is_written(alice, org_a, private_storage, settings):
    too_big = PDF_BYTES + b"0" * (settings.KYC_MAX_UPLOAD_BYTES + 1 - len(PDF_BYTES))
    assert len(too_big) == 10 * 1024 * 1024 + 1

    with pytest.raises(ExchangeError) as refused:
        add(alice, org_a, content=too_big)

    assert refused.value.code == "invalid"
    assert "10" in refused.value.fields["file"][0]
    assert KycDocument.objects.count() == 0
    assert stored_files(private_storage) == []


def test_a_file_exactly_at_the_limit_is_accepted(alice, org_a, private_storage, settings):
    settings.KYC_MAX_UPLOAD_BYTES = 4096
    document = add(alice, org_a, content=PDF_BYTES + b"0" * (4096 - len(PDF_BYTES)))
    assert document.size == 4096


def test_the_upload_page_shows_the_error_at_the_file_field_and_writes_nothing(
    client, alice, org_a, private_storage
):
    client.force_login(alice)
    fake = SimpleUploadedFile("auszug.pdf", b"GIF89a not a pdf at all", content_type="application/pdf")

    response = client.post(reverse("kyc_document_upload"), {"kind": "register_extract", "file": fake})

    assert response.status_code == 400
    assert response.context["upload_form"].errors["file"]
    assert b'class="field-error"' in response.content
    assert KycDocument.objects.count() == 0
    assert stored_files(private_storage) == []


def test_the_upload_page_refuses_an_oversized_file(client, alice, org_a, private_storage, settings):
    client.force_login(alice)
    big = SimpleUploadedFile("auszug.pdf", PDF_BYTES + b"0" * settings.KYC_MAX_UPLOAD_BYTES)

    response = client.post(reverse("kyc_document_upload"), {"kind": "register_extract", "file": big})

    assert response.status_code == 400
    assert response.context["upload_form"].errors["file"]
    assert KycDocument.objects.count() == 0
    assert stored_files(private_storage) == []


def test_the_upload_page_stores_a_good_file(client, alice, org_a, private_storage):
    client.force_login(alice)
    response = client.post(
        reverse("kyc_document_upload"),
        {"kind": "representative_id", "file": SimpleUploadedFile("ausweis.jpg", JPEG_BYTES)},
    )
    assert response.status_code == 302
    document = KycDocument.objects.get()
    assert (document.kind, document.content_type) == ("representative_id", "image/jpeg")


def test_bob_who_is_no_owner_cannot_upload(bob, org_a, private_storage):
    with pytest.raises(ExchangeError) as refused:
        add(bob, org_a)
    assert refused.value.code == "not_permitted"
    assert KycDocument.objects.count() == 0


def test_charlie_cannot_upload_to_alices_organisation(charlie, org_a, private_storage):
    with pytest.raises(ExchangeError) as refused:
        add(charlie, org_a)
    assert refused.value.code == "not_permitted"


def test_no_uploads_once_the_case_is_submitted(alice, org_a, private_storage):
    add_required(alice, org_a)
    services.kyc_submit(user=alice, organisation=org_a)
    with pytest.raises(ExchangeError) as refused:
        add(alice, org_a)
    assert refused.value.code == "invalid"
    assert KycDocument.objects.count() == 2


# --- protected download ------------------------------------------------------------------------


@pytest.fixture
def alices_document(alice, org_a, private_storage):
    return add(alice, org_a, KycDocument.Kind.REPRESENTATIVE_ID, "Ausweis Müller.png", PNG_BYTES)


def download(client, pk):
    return client.get(reverse("kyc_document_download", args=[pk]))


def test_alice_downloads_her_document_as_an_attachment(client, alice, alices_document):
    client.force_login(alice)
    response = download(client, alices_document.pk)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "Ausweis" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == PNG_BYTES
    assert "no-store" in response["Cache-Control"]


def test_an_operator_downloads_any_document(client, operator, alices_document):
    client.force_login(operator)
    response = download(client, alices_document.pk)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content) == PNG_BYTES


def test_charlie_gets_404_for_alices_document_and_for_a_made_up_id(client, charlie, alices_document):
    client.force_login(charlie)
    assert download(client, alices_document.pk).status_code == 404
    assert download(client, alices_document.pk + 1000).status_code == 404


def test_bob_on_alices_team_but_no_owner_gets_404(client, bob, alices_document):
    client.force_login(bob)
    assert download(client, alices_document.pk).status_code == 404


def test_a_visitor_is_sent_to_log_in(client, alices_document):
    response = download(client, alices_document.pk)
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_a_document_has_no_public_url(client, operator, alices_document, settings):
    # The storage root is under no URL; nothing but the view serves it.
    assert settings.STORAGES["default"]["OPTIONS"]["base_url"] is None
    client.force_login(operator)
    for guess in (f"/{alices_document.file.name}", f"/media/{alices_document.file.name}",
                  f"/static/{alices_document.file.name}", f"/private/{alices_document.file.name}"):
        assert client.get(guess).status_code == 404, guess


# --- the review's state machine ----------------------------------------------------------------


def test_submitting_needs_the_register_extract_and_the_representatives_id(alice, org_a, private_storage):
    with pytest.raises(ExchangeError) as refused:
        services.kyc_submit(user=alice, organisation=org_a)
    assert refused.value.code == "invalid"
    assert "documents" in refused.value.fields

    add(alice, org_a, KycDocument.Kind.REGISTER_EXTRACT)
    add(alice, org_a, KycDocument.Kind.OTHER)
    with pytest.raises(ExchangeError):
        services.kyc_submit(user=alice, organisation=org_a)
    org_a.kyc.refresh_from_db()
    assert org_a.kyc.status == KycCase.Status.DRAFT

    add(alice, org_a, KycDocument.Kind.REPRESENTATIVE_ID, "id.jpg", JPEG_BYTES)
    case = services.kyc_submit(user=alice, organisation=org_a)
    assert case.status == KycCase.Status.SUBMITTED
    assert case.submitted_at is not None
    row = AuditLog.objects.get(action="kyc.submit")
    assert (row.actor, row.before, row.after) == (alice, {"status": "draft"}, {"status": "submitted"})


def test_only_an_owner_submits(bob, alice, org_a, private_storage):
    add_required(alice, org_a)
    with pytest.raises(ExchangeError) as refused:
        services.kyc_submit(user=bob, organisation=org_a)
    assert refused.value.code == "not_permitted"


def test_submitting_tells_the_operators(alice, org_a, private_storage, settings, django_capture_on_commit_callbacks):
    settings.OPERATOR_EMAILS = ["kyc@rechenboerse.example"]
    add_required(alice, org_a)
    with django_capture_on_commit_callbacks(execute=True):
        services.kyc_submit(user=alice, organisation=org_a)
    assert [message.to for message in mail.outbox] == [["kyc@rechenboerse.example"]]
    assert org_a.legal_name in mail.outbox[0].subject


@pytest.fixture
def submitted(alice, org_a, private_storage):
    add_required(alice, org_a)
    return services.kyc_submit(user=alice, organisation=org_a)


def test_a_draft_cannot_be_decided(operator, org_a):
    with pytest.raises(ExchangeError) as refused:
        services.kyc_decide(operator=operator, case=org_a.kyc, decision="approve")
    assert refused.value.code == "invalid"
    org_a.kyc.refresh_from_db()
    assert org_a.kyc.status == KycCase.Status.DRAFT
    assert not AuditLog.objects.filter(action__startswith="kyc.approve").exists()


@pytest.mark.parametrize("decision", ["reject", "needs_info"])
def test_reject_and_needs_info_need_a_reason(operator, submitted, decision):
    with pytest.raises(ExchangeError) as refused:
        services.kyc_decide(operator=operator, case=submitted, decision=decision, reason="   ")
    assert refused.value.code == "invalid"
    assert refused.value.fields["reason"]
    submitted.refresh_from_db()
    assert submitted.status == KycCase.Status.SUBMITTED
    assert not AuditLog.objects.filter(action=f"kyc.{decision}").exists()


def test_a_member_is_no_operator(alice, submitted):
    with pytest.raises(ExchangeError) as refused:
        services.kyc_decide(operator=alice, case=submitted, decision="approve")
    assert refused.value.code == "not_permitted"


def test_an_operator_may_not_decide_their_own_organisations_case(operator, org_a, submitted):
    MembershipFactory(user=operator, organisation=org_a, is_viewer=True, is_trader=False)
    with pytest.raises(ExchangeError) as refused:
        services.kyc_decide(operator=operator, case=submitted, decision="approve")
    assert refused.value.code == "not_permitted"


@pytest.mark.parametrize(
    ("decision", "status", "reason"),
    [("approve", "approved", ""), ("reject", "rejected", "Register extract is for another company."),
     ("needs_info", "needs_info", "The ID document is expired.")],
)
def test_each_decision_is_audited_and_mailed_to_the_owners(
    operator, alice, bob, org_a, submitted, django_capture_on_commit_callbacks, decision, status, reason
):
    second_owner = UserFactory(email="alina@example.com")
    MembershipFactory(user=second_owner, organisation=org_a, is_owner=True, is_trader=False)

    with django_capture_on_commit_callbacks(execute=True):
        case = services.kyc_decide(operator=operator, case=submitted, decision=decision, reason=reason)

    assert case.status == status
    assert (case.decided_by, case.reason) == (operator, reason)
    row = AuditLog.objects.get(action=f"kyc.{decision}")
    assert row.actor == operator
    assert row.organisation == org_a
    assert (row.object_type, row.object_id) == ("accounts.KycCase", str(case.pk))
    assert row.before == {"status": "submitted"}
    assert row.after == {"status": status}
    assert row.reason == reason
    assert row.created_at is not None
    # One e-mail to the owners (Alice and Alina), not to Bob who only trades.
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["alice@example.com", "alina@example.com"]
    assert org_a.legal_name in mail.outbox[0].subject
    if reason:
        assert reason in mail.outbox[0].body


def test_a_decided_case_cannot_be_decided_again(operator, submitted):
    services.kyc_decide(operator=operator, case=submitted, decision="approve")
    with pytest.raises(ExchangeError) as refused:
        services.kyc_decide(operator=operator, case=submitted, decision="reject", reason="changed my mind")
    assert refused.value.code == "invalid"
    submitted.refresh_from_db()
    assert submitted.status == KycCase.Status.APPROVED


def test_after_needs_info_the_owner_adds_a_document_and_submits_again(alice, operator, org_a, submitted):
    services.kyc_decide(operator=operator, case=submitted, decision="needs_info", reason="Please add the ID back.")
    add(alice, org_a, KycDocument.Kind.OTHER, "vollmacht.pdf")
    case = services.kyc_submit(user=alice, organisation=org_a)
    assert case.status == KycCase.Status.SUBMITTED
    assert list(AuditLog.objects.filter(action__startswith="kyc.").exclude(action="kyc.document_add")
                .order_by("pk").values_list("action", flat=True)) == ["kyc.submit", "kyc.needs_info", "kyc.submit"]


def test_a_rejected_case_is_final(alice, operator, org_a, submitted):
    services.kyc_decide(operator=operator, case=submitted, decision="reject", reason="Not a German company.")
    with pytest.raises(ExchangeError):
        services.kyc_submit(user=alice, organisation=org_a)
    with pytest.raises(ExchangeError):
        add(alice, org_a)


def test_the_factory_stores_a_document(private_storage):
    document = KycDocumentFactory()
    assert document.file.read() == PDF_BYTES


def test_the_decision_mail_is_in_the_sites_language_whatever_the_operator_reads(
    operator, submitted, django_capture_on_commit_callbacks
):
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        services.kyc_decide(operator=operator, case=submitted, decision="needs_info", reason="Bitte neu scannen.")
    message = mail.outbox[0]
    assert "weitere Informationen" in message.subject
    assert "Begründung des Betreibers" in message.body
    assert "Bitte neu scannen." in message.body
