"""Programmes, applications, approvals and credit grants (issue 12 parts
2-3; docs/incentives.md): the budget moves out of the fund and back, the
approved amount is capped by hand-computed rules, four eyes above the
threshold, and nothing is written on a refusal."""

import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone, translation

from accounts.models import AuditLog
from clearing.models import Account, JournalEntry
from clearing.selectors import house_balances
from exchange.errors import ExchangeError
from incentives.models import Application, CreditGrant, Programme
from incentives.services import (
    application_approve,
    application_reject,
    application_submit,
    application_withdraw,
    grant_expiry,
    programme_close,
    programme_open,
)
from market.models import Trade
from tests.factories import HourInstrumentFactory, trade_row
from tests.incentives.conftest import fund, make_programme

pytestmark = pytest.mark.django_db

D = Decimal


def funds() -> dict[str, Decimal]:
    return house_balances([Account.Kind.INCENTIVE_FUND, Account.Kind.PROGRAMME_BUDGETS])


def credits_of(organisation) -> Decimal:
    return Account.objects.filter(organisation=organisation, kind=Account.Kind.CREDITS).values_list(
        "balance", flat=True).first() or D("0.00")


@pytest.fixture
def programme(operator):
    fund(operator, "100000.00")
    return programme_open(operator=operator, programme=make_programme(budget=D("50000.00")))


def apply(user, programme, amount="5000.00", plan="Trainieren eines Sprachmodells für Behördendeutsch."):
    return application_submit(user=user, programme=programme, plan=plan, amount=D(amount) if amount else None)


# --- opening and closing ---------------------------------------------------------------------


def test_opening_moves_the_budget_out_of_the_fund(programme):
    assert programme.status == Programme.Status.OPEN
    assert funds() == {"incentive_fund": D("50000.00"), "programme_budgets": D("50000.00")}
    assert programme.opened_entry.kind == JournalEntry.Kind.PROGRAMME_BUDGET
    assert programme.opened_entry.reference == f"programme-open:{programme.pk}"
    assert AuditLog.objects.filter(action="incentives.programme_open").count() == 1


def test_opening_beyond_the_fund_is_refused_and_nothing_written(operator):
    fund(operator, "1000.00")
    draft = make_programme(budget=D("1000.01"))
    with pytest.raises(ExchangeError) as error:
        programme_open(operator=operator, programme=draft)
    assert error.value.code == "insufficient_funds" and "budget" in error.value.fields
    draft.refresh_from_db()
    assert draft.status == Programme.Status.DRAFT and draft.opened_entry is None
    assert funds() == {"incentive_fund": D("1000.00"), "programme_budgets": D("0.00")}
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.PROGRAMME_BUDGET).exists()


def test_only_operators_open_and_a_programme_opens_once(operator, alice):
    fund(operator)
    draft = make_programme()
    with pytest.raises(ExchangeError) as error:
        programme_open(operator=alice, programme=draft)
    assert error.value.code == "not_permitted"
    programme_open(operator=operator, programme=draft)
    with pytest.raises(ExchangeError) as error:
        programme_open(operator=operator, programme=draft)
    assert error.value.code == "conflict"
    assert funds()["programme_budgets"] == D("50000.00")


def test_closing_returns_the_unspent_budget(programme, operator, alice, alice_org):
    application_approve(operator=operator, application=apply(alice, programme, "7500.00"))
    pending = apply(alice, programme, "100.00")  # open when the programme closes
    closed = programme_close(operator=operator, programme=programme)
    # 50,000.00 budget - 7,500.00 granted = 42,500.00 back to the fund (50,000.00 never left it).
    assert funds() == {"incentive_fund": D("92500.00"), "programme_budgets": D("0.00")}
    assert closed.status == Programme.Status.CLOSED
    assert closed.closed_entry.reference == f"programme-close:{programme.pk}"
    pending.refresh_from_db()
    assert pending.status == Application.Status.REJECTED
    assert credits_of(alice_org) == D("7500.00")


# --- applying --------------------------------------------------------------------------------


def test_an_eligible_startup_applies(programme, alice, alice_org):
    application = apply(alice, programme, "5000.00")
    assert application.status == Application.Status.SUBMITTED
    assert application.organisation == alice_org and application.requested_amount == D("5000.00")
    assert AuditLog.objects.filter(action="incentives.application_submit").count() == 1


def test_the_operators_get_a_mail_on_submission(programme, alice, settings, django_capture_on_commit_callbacks):
    settings.OPERATOR_EMAILS = ["ops@rechenboerse.example"]
    with django_capture_on_commit_callbacks(execute=True):
        apply(alice, programme)
    assert [m.to for m in mail.outbox] == [["ops@rechenboerse.example"]]
    assert "Alice KI GmbH" in mail.outbox[0].subject and "5.000,00" in mail.outbox[0].body


def test_an_old_company_is_refused_with_the_reasons_in_words(programme, charlie):
    with translation.override("de"), pytest.raises(ExchangeError) as error:
        apply(charlie, programme)
    assert error.value.code == "not_eligible" and error.value.status == 403
    assert error.value.fields["programme"] == [
        "Ihre Organisation wurde für dieses Programm vor zu langer Zeit gegründet."]
    assert not Application.objects.exists()


def test_a_second_open_application_is_refused(programme, alice, bob):
    apply(alice, programme)
    with pytest.raises(ExchangeError) as error:
        apply(bob, programme)
    assert error.value.code == "conflict"
    assert Application.objects.count() == 1


@pytest.mark.parametrize(("plan", "amount", "field"), [
    ("", "100.00", "plan"), ("x" * 2001, "100.00", "plan"), ("Plan", "0.00", "amount"),
    ("Plan", "100.001", "amount"), ("Plan", "20000.01", "amount"),
])
def test_bad_applications_are_refused(programme, alice, plan, amount, field):
    with pytest.raises(ExchangeError) as error:
        apply(alice, programme, amount, plan=plan)
    assert error.value.code == "invalid" and field in error.value.fields
    assert not Application.objects.exists()


def test_without_an_amount_the_maximum_grant_is_requested(programme, alice):
    assert apply(alice, programme, amount=None).requested_amount == D("20000.00")


def test_a_draft_or_ended_programme_takes_no_application(operator, alice):
    draft = make_programme()
    with pytest.raises(ExchangeError) as error:
        apply(alice, draft)
    assert error.value.code == "conflict"


def test_withdrawing(programme, alice, charlie):
    application = apply(alice, programme)
    with pytest.raises(ExchangeError) as error:
        application_withdraw(user=charlie, application=application)
    assert error.value.code == "not_permitted"
    assert application_withdraw(user=alice, application=application).status == Application.Status.WITHDRAWN
    apply(alice, programme)  # a new one may follow


# --- approving -------------------------------------------------------------------------------


def test_approval_grants_credits_expiring_at_the_end_of_the_day(programme, operator, alice, alice_org,
                                                               django_capture_on_commit_callbacks):
    application = apply(alice, programme, "5000.00")
    with django_capture_on_commit_callbacks(execute=True):
        approved = application_approve(operator=operator, application=application, amount=D("4000.00"))
    assert approved.status == Application.Status.APPROVED and approved.decided_amount == D("4000.00")
    grant = CreditGrant.objects.get(application=application)
    assert grant.amount == D("4000.00") and grant.entry.kind == JournalEntry.Kind.CREDIT_GRANT
    assert grant.entry.reference == f"credit-grant:{grant.pk}"
    assert sorted((line.account.kind, line.amount) for line in grant.entry.lines.all()) == [
        ("credits", D("4000.00")), ("programme_budgets", D("-4000.00"))]
    assert credits_of(alice_org) == D("4000.00")
    assert funds()["programme_budgets"] == D("46000.00")
    berlin = timezone.localtime(grant.expires_at)
    assert (berlin.hour, berlin.minute, berlin.second) == (23, 59, 59)
    # The applicant's organisation is mailed, in German.
    assert [m.to for m in mail.outbox] == [["alice@incentives.test"]]
    assert "genehmigt" in mail.outbox[0].subject and "4.000,00" in mail.outbox[0].body


def test_expiry_is_validity_months_later_end_of_day_berlin():
    berlin = ZoneInfo("Europe/Berlin")
    at = datetime.datetime(2026, 8, 31, 23, 30, tzinfo=datetime.UTC)  # 1 September 01:30 in Berlin
    assert grant_expiry(at, 6) == datetime.datetime(2027, 3, 1, 23, 59, 59, tzinfo=berlin)
    assert grant_expiry(datetime.datetime(2026, 8, 31, 10, 0, tzinfo=berlin), 6) == datetime.datetime(
        2027, 2, 28, 23, 59, 59, tzinfo=berlin)


def test_max_grant_per_organisation_counts_earlier_grants(programme, operator, alice, settings):
    settings.INCENTIVE_FOUR_EYES_THRESHOLD = D("50000.00")
    application_approve(operator=operator, application=apply(alice, programme, "9000.00"))
    second = apply(alice, programme, "12000.00")
    # 20,000.00 max - 9,000.00 held = 11,000.00 left for Alice.
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=operator, application=second, amount=D("11000.01"))
    assert error.value.code == "invalid" and "11.000,00" in error.value.fields["amount"][0]
    assert CreditGrant.objects.count() == 1
    application_approve(operator=operator, application=second, amount=D("11000.00"))
    assert CreditGrant.objects.count() == 2


def test_more_than_requested_is_refused(programme, operator, alice):
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=operator, application=apply(alice, programme, "500.00"), amount=D("500.01"))
    assert error.value.code == "invalid"


def test_the_remaining_budget_caps_the_grant(operator, alice, charlie_org):
    fund(operator, "6000.00")
    small = programme_open(operator=operator, programme=make_programme(budget=D("6000.00")))
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=operator, application=apply(alice, small, "6000.01"))
    # The application could not even be filed above max_grant; here it is above budget:
    assert error.value.code in {"insufficient_funds", "invalid"}


def test_the_remaining_budget_is_budget_less_grants(operator, alice, bob):
    fund(operator, "6000.00")
    small = programme_open(operator=operator, programme=make_programme(budget=D("6000.00")))
    application_approve(operator=operator, application=apply(alice, small, "4000.00"))
    from tests.clearing.conftest import make_user
    from tests.incentives.conftest import make_startup
    dora = make_user("dora@incentives.test", organisation=make_startup("Dora Daten UG"))
    late = apply(dora, small, "2500.00")
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=operator, application=late)
    # 6,000.00 - 4,000.00 = 2,000.00 left.
    assert error.value.code == "insufficient_funds" and "2.000,00" in error.value.detail
    application_approve(operator=operator, application=late, amount=D("2000.00"))
    assert funds()["programme_budgets"] == D("0.00")


def test_the_matching_rule_caps_by_own_purchases(operator, alice, alice_org):
    fund(operator)
    matched = programme_open(operator=operator, programme=make_programme(matching_ratio=D("1.50")))
    instrument = HourInstrumentFactory()
    trade = trade_row(instrument=instrument, price="2.50", quantity=400)  # 2.50 x 400 x 1 h = 1,000.00
    Trade.objects.filter(pk=trade.pk).update(buyer=alice_org)
    application = apply(alice, matched, "2000.00")
    # 1.50 x 1,000.00 own purchases = 1,500.00.
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=operator, application=application)
    assert error.value.code == "invalid" and "1.500,00" in error.value.fields["amount"][0]
    application_approve(operator=operator, application=application, amount=D("1500.00"))
    # Nothing more for Alice until she buys more with her own money.
    again = apply(alice, matched, "1.00")
    with pytest.raises(ExchangeError):
        application_approve(operator=operator, application=again)


def test_four_eyes_above_the_threshold(programme, operator, operator2, alice, alice_org, settings):
    settings.INCENTIVE_FOUR_EYES_THRESHOLD = D("10000.00")
    application = apply(alice, programme, "15000.00")
    first = application_approve(operator=operator, application=application)
    assert first.status == Application.Status.SUBMITTED and first.first_approver == operator
    assert first.awaits_second_approval and not CreditGrant.objects.exists()
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=operator, application=application)
    assert error.value.code == "not_permitted"
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=operator2, application=application, amount=D("14000.00"))
    assert error.value.code == "invalid"
    done = application_approve(operator=operator2, application=application)
    assert done.status == Application.Status.APPROVED and done.decided_by == operator2
    assert credits_of(alice_org) == D("15000.00")
    assert [log.actor for log in AuditLog.objects.filter(action__startswith="incentives.application_")
            .exclude(action="incentives.application_submit").order_by("id")] == [operator, operator2]


def test_exactly_the_threshold_needs_one_operator(programme, operator, alice, settings):
    settings.INCENTIVE_FOUR_EYES_THRESHOLD = D("10000.00")
    assert application_approve(operator=operator, application=apply(alice, programme, "10000.00")).status == \
        Application.Status.APPROVED


def test_an_operator_of_the_organisation_may_not_decide(programme, alice, alice_org):
    from tests.clearing.conftest import make_user
    insider = make_user("insider@incentives.test", organisation=alice_org, staff=True)
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=insider, application=apply(alice, programme))
    assert error.value.code == "not_permitted"


def test_rejection_needs_a_reason_and_is_mailed(programme, operator, alice, django_capture_on_commit_callbacks):
    application = apply(alice, programme)
    with pytest.raises(ExchangeError) as error:
        application_reject(operator=operator, application=application, reason="  ")
    assert error.value.code == "invalid" and "reason" in error.value.fields
    application.refresh_from_db()
    assert application.status == Application.Status.SUBMITTED
    with django_capture_on_commit_callbacks(execute=True):
        rejected = application_reject(operator=operator, application=application, reason="Plan zu vage.")
    assert rejected.status == Application.Status.REJECTED and rejected.reason == "Plan zu vage."
    assert "abgelehnt" in mail.outbox[0].subject and "Plan zu vage." in mail.outbox[0].body
    with pytest.raises(ExchangeError) as error:
        application_approve(operator=operator, application=application)
    assert error.value.code == "conflict"
