"""Statements: the right lines with hand-computed running balances, local
(Europe/Berlin) day boundaries, the CSV parsed back, and nobody sees
another organisation's books."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import User
from clearing.services import cash_release, cash_reserve
from clearing.statements import csv_text, day_bounds, statement_for
from tests.clearing.conftest import deposit, make_user
from tests.factories import MembershipFactory, ObserverFactory, UserFactory, journal_time

pytestmark = pytest.mark.django_db

D = Decimal
UTC = datetime.UTC
DAY = datetime.date(2026, 1, 15)  # winter: CET, UTC+1


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def books(operator, alice_org, charlie_org):
    """Alice's bookings around 15 January 2026 (times in UTC):

    14 Jan 10:00  deposit 1000.00                      (14 Jan local)
    14 Jan 23:30  deposit   10.00  "SEPA-2"            (15 Jan 00:30 local)
    15 Jan 08:00  reserve  250.00  order:1             (09:00)
    15 Jan 12:30  deposit  500.00                      (13:30)
    15 Jan 16:00  release  100.00  order:1             (17:00)
    15 Jan 23:30  deposit   42.00                      (16 Jan 00:30 local)
    Charlie deposits 777.00 on 15 Jan 09:00: never on Alice's statement.
    """
    references = {}
    with journal_time(at("2026-01-14T10:00")):
        deposit(operator, alice_org, "1000.00")
    with journal_time(at("2026-01-14T23:30")):
        references["late"] = deposit(operator, alice_org, "10.00").entry
    with journal_time(at("2026-01-15T08:00")):
        references["reserve"] = cash_reserve(organisation=alice_org, amount=D("250.00"), reference="order:1")
    with journal_time(at("2026-01-15T09:00")):
        deposit(operator, charlie_org, "777.00")
    with journal_time(at("2026-01-15T12:30")):
        references["noon"] = deposit(operator, alice_org, "500.00").entry
    with journal_time(at("2026-01-15T16:00")):
        references["release"] = cash_release(organisation=alice_org, amount=D("100.00"), reference="order:1")
    with journal_time(at("2026-01-15T23:30")):
        references["next_day"] = deposit(operator, alice_org, "42.00").entry
    return references


def test_day_bounds_are_local_days():
    assert day_bounds(DAY) == (at("2026-01-14T23:00"), at("2026-01-15T23:00"))
    start, end = day_bounds(datetime.date(2026, 3, 29))  # spring forward: 23 hours
    assert end - start == datetime.timedelta(hours=23)
    start, end = day_bounds(datetime.date(2026, 10, 25))  # fall back: 25 hours
    assert end - start == datetime.timedelta(hours=25)


def test_the_statement_lists_the_days_lines_with_running_balances(books, alice_org):
    statement = statement_for(organisation=alice_org, day=DAY)

    assert [(line.at, line.entry_kind, line.reference, line.account_kind, line.amount, line.balance)
            for line in statement.lines] == [
        (at("2026-01-14T23:30"), "deposit", books["late"].reference, "cash_available", D("10.00"), D("1010.00")),
        (at("2026-01-15T08:00"), "reserve", "order:1", "cash_available", D("-250.00"), D("760.00")),
        (at("2026-01-15T08:00"), "reserve", "order:1", "cash_reserved", D("250.00"), D("250.00")),
        (at("2026-01-15T12:30"), "deposit", books["noon"].reference, "cash_available", D("500.00"), D("1260.00")),
        (at("2026-01-15T16:00"), "release", "order:1", "cash_reserved", D("-100.00"), D("150.00")),
        (at("2026-01-15T16:00"), "release", "order:1", "cash_available", D("100.00"), D("1360.00")),
    ]
    summary = {account.kind: (account.opening, account.debits, account.credits, account.closing)
               for account in statement.accounts}
    assert summary == {
        "cash_available": (D("1000.00"), D("-250.00"), D("610.00"), D("1360.00")),
        "cash_reserved": (D("0.00"), D("-100.00"), D("250.00"), D("150.00")),
        "settlement_pending": (D("0.00"), D("0.00"), D("0.00"), D("0.00")),
        "margin": (D("0.00"), D("0.00"), D("0.00"), D("0.00")),
    }


def test_a_line_at_23_30_utc_belongs_to_the_next_local_day_in_winter(books, alice_org):
    next_day = statement_for(organisation=alice_org, day=datetime.date(2026, 1, 16))
    [line] = next_day.lines
    assert (line.entry_id, line.amount, line.balance) == (books["next_day"].pk, D("42.00"), D("1402.00"))
    assert next_day.accounts[0].opening == D("1360.00")

    day_before = statement_for(organisation=alice_org, day=datetime.date(2026, 1, 14))
    assert [line.amount for line in day_before.lines] == [D("1000.00")]


def test_the_closing_balances_of_today_equal_the_accounts(books, alice_org):
    statement = statement_for(organisation=alice_org, day=datetime.date(2026, 1, 16))
    balances = dict(alice_org.clearing_accounts.values_list("kind", "balance"))
    assert {account.kind: account.closing for account in statement.accounts} == balances


# --- pages ------------------------------------------------------------------------------------


@pytest.fixture
def alice_viewer(alice_org):
    return MembershipFactory(user=UserFactory(email="viewer@clearing.test"), organisation=alice_org,
                             is_trader=False, is_viewer=True).user


def test_any_member_sees_the_statement_page(client, books, alice_viewer, settings):
    settings.LANGUAGE_CODE = "de"
    client.force_login(alice_viewer)

    response = client.get(reverse("statement_day", args=["2026-01-15"]))

    assert response.status_code == 200
    assert response.context["statement"].lines[-1].balance == D("1360.00")
    page = response.content.decode()
    assert "1.360,00" in page and "-250,00" in page and "order:1" in page
    assert "00:30:00" in page and "17:00:00" in page  # local times
    assert "777,00" not in page
    assert response.context["next_day"] == datetime.date(2026, 1, 16)


def test_statements_without_a_day_show_today_and_the_picker_redirects(client, alice):
    client.force_login(alice)
    today = client.get(reverse("statements"))
    assert today.status_code == 200 and today.context["next_day"] is None
    picked = client.get(reverse("statements") + "?day=2026-01-15")
    assert picked.status_code == 302 and picked["Location"] == reverse("statement_day", args=["2026-01-15"])


def test_the_csv_for_german_excel_parses_back(client, books, alice):
    client.force_login(alice)

    response = client.get(reverse("statement_csv", args=["2026-01-15"]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="kontoauszug-2026-01-15.csv"' in response["Content-Disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["Zeit", "Buchung", "Buchungsart", "Referenz", "Verwendungszweck", "Konto",
                       "Betrag (EUR)", "Saldo (EUR)"]
    assert rows[2] == ["15.01.2026 09:00:00", str(books["reserve"].pk), "Reservierung", "order:1", "",
                       "Verfügbares Guthaben", "-250,00", "760,00"]
    amounts = [D(row[6].replace(",", ".")) for row in rows[1:]]
    balances = [D(row[7].replace(",", ".")) for row in rows[1:]]
    assert amounts == [D("10.00"), D("-250.00"), D("250.00"), D("500.00"), D("-100.00"), D("100.00")]
    assert balances[-1] == D("1360.00")


def test_the_english_csv_parses_back(client, books, alice):
    client.force_login(alice)

    response = client.get(reverse("statement_day", args=["2026-01-15"]) + "?format=csv&lang=en")

    assert not response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == ["Time", "Entry", "Entry kind", "Reference", "Memo", "Account", "Amount (EUR)",
                             "Balance (EUR)"]
    assert rows[0]["Time"] == "2026-01-15T00:30:00+01:00"
    assert [D(row["Balance (EUR)"]) for row in rows] == [
        D("1010.00"), D("760.00"), D("250.00"), D("1260.00"), D("150.00"), D("1360.00")]


def test_formulas_are_defused_in_csv_text():
    assert [csv_text(text) for text in ("=HYPERLINK(1)", "+1", "-2", "@x", "bank:SEPA-1")] == [
        "'=HYPERLINK(1)", "'+1", "'-2", "'@x", "bank:SEPA-1"]


def test_charlie_sees_only_his_own_books(client, books, charlie):
    client.force_login(charlie)

    page = client.get(reverse("statement_day", args=["2026-01-15"]))
    csv_text_ = client.get(reverse("statement_csv", args=["2026-01-15"])).content.decode("utf-8-sig")

    assert [line.amount for line in page.context["statement"].lines] == [D("777.00")]
    assert "order:1" not in page.content.decode() and "order:1" not in csv_text_
    # Asking for Alice's organisation changes nothing: the organisation is always one's own.
    other = client.get(reverse("statement_day", args=["2026-01-15"]) + f"?organisation={books['late'].pk}")
    assert other.context["statement"].organisation.legal_name == "Charlie Cloud AG"


@pytest.mark.parametrize("path", ["/statements/", "/statements/2026-01-15/", "/statements/2026-01-15.csv"])
def test_a_user_without_an_organisation_gets_404(client, path):
    client.force_login(make_user("nobody@clearing.test"))
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", ["/statements/2026-02-30/", "/statements/2026-13-01.csv"])
def test_impossible_days_are_404(client, alice, path):
    client.force_login(alice)
    assert client.get(path).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/statements/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_members_have_the_nav_link(client, alice, settings):
    settings.LANGUAGE_CODE = "de"
    client.force_login(alice)
    assert 'href="/statements/"' in client.get("/organisation/").content.decode()
    assert "Kontoauszüge" in client.get("/statements/").content.decode()


def test_owners_find_the_withdrawals_from_the_statement(client, alice, alice_org):
    client.force_login(alice)  # a trader, not an owner
    assert 'href="/withdrawals/"' not in client.get("/statements/").content.decode()
    owner = MembershipFactory(user=UserFactory(email="owner@clearing.test"), organisation=alice_org,
                              is_owner=True).user
    client.force_login(owner)
    page = client.get("/statements/").content.decode()
    assert f'href="{reverse("withdrawals")}"' in page and f'href="{reverse("invoices")}"' in page


def test_operators_see_any_organisations_statement_in_the_admin(client, books, alice_org):
    client.force_login(User.objects.create_superuser(email="root@clearing.test", password="x" * 12))
    url = reverse("admin:clearing_statementorganisation_statement", args=[alice_org.pk])

    listing = client.get(reverse("admin:clearing_statementorganisation_changelist"))
    page = client.get(url + "?day=2026-01-15")
    csv_response = client.get(url + "?day=2026-01-15&format=csv&lang=en")

    assert listing.status_code == 200 and url in listing.content.decode()
    assert page.status_code == 200 and page.context["statement"].lines[-1].balance == D("1360.00")
    assert csv_response.content.decode().splitlines()[-1].endswith(",100.00,1360.00")


def test_members_cannot_open_the_operators_statement_page(client, alice, alice_org):
    client.force_login(alice)
    url = reverse("admin:clearing_statementorganisation_statement", args=[alice_org.pk])
    assert client.get(url).status_code == 302


def test_an_observer_has_no_statements(client):
    """A ministry holds no accounts: no statement page, no CSV (403, as for the trading area)."""
    observer = MembershipFactory(user=UserFactory(email="ministry@clearing.test"),
                                 organisation=ObserverFactory(), is_trader=False, is_viewer=True).user
    client.force_login(observer)

    assert client.get(reverse("statements")).status_code == 403
    assert client.get(reverse("statement_day", args=["2026-01-15"])).status_code == 403
    assert client.get(reverse("statement_csv", args=["2026-01-15"])).status_code == 403
