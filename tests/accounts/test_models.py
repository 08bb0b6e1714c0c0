import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import (
    AppendOnlyError,
    AuditLog,
    Membership,
    Organisation,
    normalize_register_number,
    normalize_vat_id,
    validate_german_vat_id,
    years_before,
)
from tests.factories import ObserverFactory, OrganisationFactory, UserFactory, invalid_vat_id, valid_vat_id

pytestmark = pytest.mark.django_db


# --- VAT ID ------------------------------------------------------------------------------


def test_a_vat_id_with_the_right_check_digit_is_valid():
    validate_german_vat_id("DE136695976")  # the example of stdnum's documentation
    validate_german_vat_id(valid_vat_id("27451890"))


def test_a_vat_id_with_a_wrong_check_digit_is_refused_with_a_clear_message():
    with pytest.raises(ValidationError) as refused:
        validate_german_vat_id(invalid_vat_id())
    assert refused.value.code == "vat_checksum"
    assert "check digit" in str(refused.value.messages[0]) or "Prüfziffer" in str(refused.value.messages[0])


@pytest.mark.parametrize("value", ["DE12345678", "DE1234567890", "AT136695976", "136695976X", ""])
def test_a_vat_id_of_the_wrong_shape_is_refused(value):
    with pytest.raises(ValidationError) as refused:
        validate_german_vat_id(value)
    assert refused.value.code == "vat_format"


def test_vat_ids_and_register_numbers_are_normalised_from_how_people_type_them():
    assert normalize_vat_id("de 136.695 976") == "DE136695976"
    assert normalize_vat_id("136695976") == "DE136695976"
    assert normalize_register_number("hrb  12345 b") == "12345 B"
    assert normalize_register_number("HRA4711") == "4711"


def test_a_member_needs_every_kyc_field_but_an_observer_does_not():
    member = OrganisationFactory.build(register_number="", vat_id="", founding_date=None, turnover_band="")
    with pytest.raises(ValidationError) as refused:
        member.full_clean(validate_constraints=False)
    assert {"register_number", "vat_id", "founding_date", "turnover_band"} <= set(refused.value.message_dict)

    ObserverFactory.build().full_clean(validate_constraints=False)


def test_register_number_and_postal_code_are_checked():
    organisation = OrganisationFactory.build(register_number="12-345", postal_code="8080")
    with pytest.raises(ValidationError) as refused:
        organisation.full_clean(validate_constraints=False)
    assert set(refused.value.message_dict) == {"register_number", "postal_code"}
    OrganisationFactory.build(register_number="12345 B").full_clean(validate_constraints=False)


def test_the_founding_date_cannot_be_in_the_future():
    organisation = OrganisationFactory.build(founding_date=timezone.localdate() + datetime.timedelta(days=2))
    with pytest.raises(ValidationError) as refused:
        organisation.full_clean(validate_constraints=False)
    assert "founding_date" in refused.value.message_dict


def test_the_database_refuses_a_second_organisation_with_the_same_vat_id():
    first = OrganisationFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        OrganisationFactory(vat_id=first.vat_id)


# --- derived SME and start-up --------------------------------------------------------------


@pytest.mark.parametrize(
    ("employees", "turnover", "sme"),
    [
        (Organisation.EmployeesBand.MICRO, Organisation.TurnoverBand.UP_TO_2M, True),
        (Organisation.EmployeesBand.MEDIUM, Organisation.TurnoverBand.UP_TO_50M, True),  # 249 staff, 50 M EUR
        (Organisation.EmployeesBand.LARGE, Organisation.TurnoverBand.UP_TO_2M, False),  # 250 staff
        (Organisation.EmployeesBand.SMALL, Organisation.TurnoverBand.OVER_50M, False),  # > 50 M EUR
    ],
)
def test_sme_is_derived_from_the_bands(employees, turnover, sme):
    organisation = OrganisationFactory(employees_band=employees, turnover_band=turnover)
    assert organisation.is_sme() is sme
    assert Organisation.objects.with_derived().get(pk=organisation.pk).sme is sme


@pytest.mark.parametrize(
    ("founded", "startup"),
    [
        (datetime.date(2021, 6, 15), True),  # exactly 5 years before the day asked about
        (datetime.date(2021, 6, 16), True),
        (datetime.date(2021, 6, 14), False),  # 5 years and a day
        (datetime.date(2026, 6, 15), True),  # founded that very day
        (datetime.date(2026, 6, 16), False),  # not founded yet on that day
    ],
)
def test_startup_is_founded_at_most_five_years_before_the_day_asked_about(founded, startup):
    on = datetime.date(2026, 6, 15)
    organisation = OrganisationFactory(founding_date=founded)
    assert organisation.is_startup(on=on) is startup
    assert Organisation.objects.with_derived(on).get(pk=organisation.pk).startup is startup


def test_startup_boundary_on_29_february():
    assert years_before(datetime.date(2028, 2, 29), 5) == datetime.date(2023, 2, 28)
    organisation = OrganisationFactory(founding_date=datetime.date(2023, 2, 28))
    assert organisation.is_startup(on=datetime.date(2028, 2, 29))
    assert not organisation.is_startup(on=datetime.date(2028, 3, 1))


def test_an_observer_is_never_an_sme_or_a_startup():
    authority = ObserverFactory(founding_date=timezone.localdate(), employees_band="10-49")
    assert not authority.is_sme()
    assert not authority.is_startup()
    derived = Organisation.objects.with_derived().get(pk=authority.pk)
    assert (derived.sme, derived.startup) == (False, False)


# --- membership --------------------------------------------------------------------------


def test_a_membership_without_any_role_is_refused_by_the_database():
    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, organisation=OrganisationFactory())


def test_a_user_has_at_most_one_membership():
    user = UserFactory()
    Membership.objects.create(user=user, organisation=OrganisationFactory(), is_trader=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, organisation=OrganisationFactory(), is_trader=True)


# --- audit log ---------------------------------------------------------------------------


@pytest.fixture
def entry():
    organisation = OrganisationFactory()
    return AuditLog.objects.create(
        actor=UserFactory(), action="kyc.approve", organisation=organisation,
        object_type="accounts.KycCase", object_id=str(organisation.kyc.pk),
        before={"status": "submitted"}, after={"status": "approved"},
    )


def test_the_audit_log_refuses_changes_through_the_orm(entry):
    entry.reason = "rewritten history"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.filter(pk=entry.pk).delete()
    entry.refresh_from_db()
    assert entry.reason == ""


def test_the_audit_log_refuses_changes_in_the_database(entry):
    assert connection.vendor == "postgresql"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_auditlog SET reason = 'rewritten' WHERE id = %s", [entry.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditlog WHERE id = %s", [entry.pk])
    assert AuditLog.objects.filter(pk=entry.pk, reason="").exists()


def test_a_user_named_in_the_audit_log_cannot_be_deleted(entry):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        entry.actor.delete()
