"""The state's start financing (issue 12 part 1; docs/incentives.md): booked
into the incentive fund as a liability, repaid from a share of each month's
net fee revenue in the monthly sweep, public in JSON and on a page."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditLog
from clearing.models import Account, FeeAccrual, JournalEntry
from clearing.reconcile import reconcile
from clearing.selectors import house_balances
from clearing.services import fees as fee_services
from clearing.services.fees import fees_charge_month, month_bounds
from clearing.services.ledger import house_account, ledger_post
from exchange.errors import ExchangeError
from incentives.models import StartFinancing
from incentives.services import start_financing_book
from tests.clearing.conftest import make_organisation, make_user
from tests.clearing.test_fees_monthly import a_month_of_trades
from tests.market.orders_world import make_world

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def operator():
    return make_user("operator@incentives.test", staff=True)


def book(operator, amount="1000.00", share="0.5"):
    return start_financing_book(operator=operator, amount=D(amount), repayment_share=D(share),
                                reason="Zuwendungsbescheid BMDS 2026-17")


def month_of_revenue(month: date, accrued: dict[str, str]) -> None:
    """Charged fee accruals of ``month`` (the members' charges themselves are
    tested in tests/clearing/test_fees_monthly.py); the sweep reads only these."""
    for name, amount in accrued.items():
        FeeAccrual.objects.create(organisation=make_organisation(f"{name} {month:%Y-%m} GmbH"), month=month,
                                  accrued=D(amount), charged_at=month_bounds(month)[1])


def owed() -> Decimal:
    return -house_balances([Account.Kind.START_FINANCING])[Account.Kind.START_FINANCING]


def financing_breaches() -> list[str]:
    with translation.override("en"):
        return [b.detail for b in reconcile() if b.check == "start_financing_matches_bookings"]


def test_booking_raises_the_fund_and_records_the_debt(operator):
    financing = book(operator)

    balances = house_balances([Account.Kind.INCENTIVE_FUND, Account.Kind.START_FINANCING])
    assert balances == {"incentive_fund": D("1000.00"), "start_financing": D("-1000.00")}
    assert financing.entry.kind == JournalEntry.Kind.START_FINANCING
    log = AuditLog.objects.get(action="incentives.start_financing_book")
    assert log.actor == operator and log.reason == "Zuwendungsbescheid BMDS 2026-17"
    assert log.after["amount"] == "1000.00"
    assert financing_breaches() == []


@pytest.mark.parametrize(("amount", "share", "field"), [
    ("0.00", "0.5", "amount"), ("-5.00", "0.5", "amount"), ("1.001", "0.5", "amount"),
    ("100.00", "0", "repayment_share"), ("100.00", "1.5", "repayment_share"),
])
def test_bad_input_is_refused_and_nothing_written(operator, amount, share, field):
    with pytest.raises(ExchangeError) as error:
        book(operator, amount, share)
    assert error.value.code == "invalid" and field in error.value.fields
    assert not StartFinancing.objects.exists() and not JournalEntry.objects.exists()


def test_only_operators_book(db):
    member = make_user("member@incentives.test")
    with pytest.raises(ExchangeError) as error:
        book(member)
    assert error.value.code == "not_permitted"
    assert not StartFinancing.objects.exists()


def test_two_months_of_fee_revenue_repay_half_of_the_net_and_the_last_is_capped(operator):
    book(operator, "1000.00", "0.5")
    september, october, november = date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)

    # September: fees charged 1000.004 -> 1000.00 and 333.335 -> 333.34 (HALF_UP): 1333.34.
    # Incentive fund 20 %: r(266.668) = 266.67; R&D 10 %: r(133.334) = 133.33.
    # Net = 1333.34 - 266.67 - 133.33 = 933.34; half: r(466.67) = 466.67.
    month_of_revenue(september, {"A": "1000.004", "B": "333.335"})
    assert fee_services._sweep(september)
    assert owed() == D("533.33")
    repayment = JournalEntry.objects.get(kind=JournalEntry.Kind.FINANCING_REPAYMENT)
    assert repayment.reference == "financing-repayment:2026-09"
    assert sorted((line.account.kind, line.amount) for line in repayment.lines.all()) == [
        ("fee_revenue", D("-466.67")), ("start_financing", D("466.67"))]

    # October: 1500.00 charged; funds 300.00 + 150.00; net 1050.00; half 525.00.
    month_of_revenue(october, {"A": "1500.00"})
    assert fee_services._sweep(october)
    assert owed() == D("8.33")
    # Sweeping again books nothing twice.
    assert fee_services._sweep(october) is False
    assert owed() == D("8.33")

    # November: net 70.00, half 35.00, but only 8.33 is still owed.
    month_of_revenue(november, {"A": "100.00"})
    assert fee_services._sweep(november)
    assert owed() == D("0.00")
    last = JournalEntry.objects.get(reference="financing-repayment:2026-11")
    assert {line.account.kind: line.amount for line in last.lines.all()}["start_financing"] == D("8.33")

    # December: nothing owed, nothing repaid; the funds' sweep still runs.
    month_of_revenue(date(2026, 12, 1), {"A": "100.00"})
    assert fee_services._sweep(date(2026, 12, 1))
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.FINANCING_REPAYMENT).count() == 3
    # Incentive fund: 1000.00 financing + 266.67 + 300.00 + 20.00 + 20.00.
    assert house_balances([Account.Kind.INCENTIVE_FUND])["incentive_fund"] == D("1606.67")
    assert financing_breaches() == []


def test_the_real_monthly_charge_repays_from_real_trades(operator):
    # tests/clearing/test_fees_monthly.py: Alice 0.05, Charlie 0.11, Dora 0.01 net: 0.17.
    # Funds r(0.034) = 0.03 and r(0.017) = 0.02; net 0.12; half 0.06.
    world = make_world()
    book(operator, "10.00", "0.5")
    month = a_month_of_trades(world)
    assert fees_charge_month(month=month, now=month_bounds(month)[1] + timedelta(minutes=30)) == 3
    assert owed() == D("9.94")
    assert reconcile() == []


def test_reconcile_sees_a_debt_changed_outside_the_rules(operator):
    book(operator, "100.00")
    ledger_post(kind=JournalEntry.Kind.CORRECTION, lines=[
        (house_account(Account.Kind.START_FINANCING), D("5.00")),
        (house_account(Account.Kind.FEE_REVENUE), D("-5.00"))])
    breaches = financing_breaches()
    assert any("correction" in detail for detail in breaches)
    assert any("is not booked" in detail for detail in breaches)


def test_reconcile_sees_a_booking_without_its_entry(operator):
    financing = book(operator, "100.00")
    StartFinancing.objects.bulk_create([StartFinancing(amount=D("50.00"), reason="x", booked_by=operator,
                                                       entry=ledger_post(
        kind=JournalEntry.Kind.CORRECTION, lines=[(house_account(Account.Kind.BANK), D("1.00")),
                                                  (house_account(Account.Kind.CCP), D("-1.00"))]))])
    assert financing.pk
    assert any("Start financing booked 150.00" in detail for detail in financing_breaches())


# --- public -----------------------------------------------------------------------------


def test_the_json_is_public_and_not_projectable_without_repayments(client, operator):
    response = client.get("/api/v1/incentives/financing/")
    assert response.status_code == 200
    assert response.json() == {"financed": "0.00", "repaid": "0.00", "owed": "0.00", "repayment_share": None,
                               "incentive_fund_balance": "0.00", "repayments": [], "expected_payoff": None,
                               "projectable": False,
                               # Added by the programmes (issue 12 parts 2-6): the anonymous aggregate.
                               "startups_supported": 0, "credits_granted": "0.00", "credits_used": "0.00",
                               "credits_expired": "0.00", "programme_budgets_open": "0.00", "fund_balance": "0.00"}
    book(operator, "1000.00", "0.5")
    body = client.get(reverse("api-incentives-financing")).json()
    assert (body["owed"], body["repayment_share"], body["incentive_fund_balance"]) == ("1000.00", "0.5000",
                                                                                       "1000.00")
    assert body["expected_payoff"] is None and body["projectable"] is False


def test_the_json_shows_repayments_and_the_payoff(client, operator):
    book(operator, "1000.00", "0.5")
    month_of_revenue(date(2026, 9, 1), {"A": "1000.004", "B": "333.335"})
    fee_services._sweep(date(2026, 9, 1))
    month_of_revenue(date(2026, 10, 1), {"A": "1500.00"})
    fee_services._sweep(date(2026, 10, 1))
    body = client.get(reverse("api-incentives-financing")).json()
    assert body["repayments"] == [{"month": "2026-10", "amount": "525.00"}, {"month": "2026-09", "amount": "466.67"}]
    assert (body["financed"], body["repaid"], body["owed"]) == ("1000.00", "991.67", "8.33")
    # mean(466.67, 525.00) = 495.835; 8.33 owed: one more month after October.
    assert body["expected_payoff"] == "2026-11" and body["projectable"] is True


def test_the_page_is_public_and_german_by_default(client, operator):
    response = client.get(reverse("dashboard_incentives"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "Startfinanzierung" in text and "nicht absehbar" in text

    book(operator, "1234.50", "0.5")
    month_of_revenue(date(2026, 9, 1), {"A": "1000.00"})
    fee_services._sweep(date(2026, 9, 1))
    text = client.get(reverse("dashboard_incentives")).content.decode()
    # net 700.00, half 350.00: 884,50 owed; the fund holds 1234.50 + 200.00.
    assert "884,50" in text and "1.434,50" in text and "September 2026" in text


def test_the_page_in_english(client):
    with translation.override("en"):
        client.cookies["django_language"] = "en"
        text = client.get(reverse("dashboard_incentives")).content.decode()
    assert "not projectable" in text


# --- admin ------------------------------------------------------------------------------


@pytest.fixture
def superuser():
    from accounts.models import User

    return User.objects.create_superuser(email="root@incentives.test", password="correct horse battery")


def test_an_operator_books_in_admin_with_a_reason(client, superuser):
    operator = superuser
    client.force_login(operator)
    url = reverse("admin:incentives_startfinancing_add")
    assert client.get(url).status_code == 200
    response = client.post(url, {"amount": "250000.00", "repayment_share": "0.5", "reason": "Bescheid 17"})
    assert response.status_code == 302, response.content.decode()[:2000]
    financing = StartFinancing.objects.get()
    assert (financing.amount, financing.booked_by) == (D("250000.00"), operator)
    assert owed() == D("250000.00")


def test_admin_refuses_bad_input_and_writes_nothing(client, superuser):
    client.force_login(superuser)
    response = client.post(reverse("admin:incentives_startfinancing_add"),
                           {"amount": "100.00", "repayment_share": "2", "reason": ""})
    assert response.status_code == 200
    assert not StartFinancing.objects.exists() and not JournalEntry.objects.exists()


def test_a_member_cannot_reach_the_admin(client):
    member = make_user("member2@incentives.test")
    client.force_login(member)
    response = client.get(reverse("admin:incentives_startfinancing_add"))
    assert response.status_code == 302  # to the admin login


