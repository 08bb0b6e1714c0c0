"""Fee invoices: consecutive numbers per Europe/Berlin year, idempotent per
reference, no gap after a rollback, and none under real concurrency on
PostgreSQL (with a control twin that shows the race)."""

import datetime
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.urls import reverse

from clearing.invoicing import VAT_NOTE, format_invoice_number, invoice_issue
from clearing.models import ImmutableError, Invoice, InvoiceLine, InvoiceSequence
from clearing.reconcile import reconcile
from tests.clearing.conftest import make_organisation, make_user
from tests.concurrency import run_at_once
from tests.factories import MembershipFactory, UserFactory, fee_line

D = Decimal
UTC = datetime.UTC
WINTER = datetime.datetime(2026, 2, 10, 12, 0, tzinfo=UTC)


def issue(organisation, reference: str, *amounts: str, at: datetime.datetime = WINTER) -> Invoice:
    return invoice_issue(organisation=organisation, reference=reference,
                         lines=[fee_line(amount) for amount in amounts or ("0.02",)], issued_at=at)


# --- numbering, amounts, idempotency ---------------------------------------------------------


@pytest.mark.django_db
def test_numbers_are_consecutive_per_year(alice_org, charlie_org):
    numbers = [issue(org, f"delivery:{i}:buyer").number for i, org in enumerate([alice_org, charlie_org, alice_org])]
    next_year = issue(alice_org, "delivery:9:buyer", at=datetime.datetime(2027, 3, 1, tzinfo=UTC))

    assert numbers == ["RB-2026-000001", "RB-2026-000002", "RB-2026-000003"]
    assert (next_year.number, next_year.year, next_year.sequence) == ("RB-2027-000001", 2027, 1)
    assert dict(InvoiceSequence.objects.values_list("year", "last_number")) == {2026: 3, 2027: 1}
    assert reconcile() == []


@pytest.mark.django_db
def test_the_year_is_the_europe_berlin_year(alice_org):
    # 23:30 UTC on New Year's Eve is 00:30 on 1 January in Berlin.
    invoice = issue(alice_org, "delivery:1:buyer", at=datetime.datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    assert invoice.number == "RB-2027-000001"


@pytest.mark.django_db
def test_amounts_vat_lines_and_recipient(alice_org):
    invoice = invoice_issue(
        organisation=alice_org, reference="delivery:7:buyer", issued_at=WINTER,
        lines=[fee_line("7.50", gpu_hours="500", rate="0.015", description="Taker fee H100.DE.2026-02-11T14"),
               fee_line("4.85", gpu_hours="970", rate="0.005", description="Maker fee H100.DE.2026-02-11T15")],
    )

    invoice.refresh_from_db()
    # 12.35 net; 19 % of it is 2.3465, HALF_UP 2.35; gross 14.70.
    assert (invoice.net_total, invoice.vat_rate, invoice.vat_amount, invoice.gross_total) == (
        D("12.35"), D("19.00"), D("2.35"), D("14.70"))
    assert invoice.vat_note == VAT_NOTE
    assert invoice.recipient == {"legal_name": "Alice Compute GmbH", "street": alice_org.street,
                                 "postal_code": alice_org.postal_code, "city": alice_org.city,
                                 "vat_id": alice_org.vat_id}
    assert list(invoice.lines.values_list("position", "description", "quantity", "unit_price", "amount")) == [
        (1, "Taker fee H100.DE.2026-02-11T14", D("500.000"), D("0.015000"), D("7.50")),
        (2, "Maker fee H100.DE.2026-02-11T15", D("970.000"), D("0.005000"), D("4.85")),
    ]


@pytest.mark.django_db
def test_the_same_reference_returns_the_invoice_already_issued(alice_org, charlie_org):
    first = issue(alice_org, "delivery:1:buyer", "1.00")
    again = issue(alice_org, "delivery:1:buyer", "5.00")

    assert again.pk == first.pk and again.net_total == D("1.00")
    assert Invoice.objects.count() == 1
    assert InvoiceSequence.objects.get().last_number == 1
    with pytest.raises(ValueError, match="another organisation"):
        issue(charlie_org, "delivery:1:buyer")


@pytest.mark.django_db
def test_a_rolled_back_transaction_leaves_no_gap(alice_org):
    issue(alice_org, "delivery:1:buyer")

    class SettlementFailed(Exception):
        pass

    with pytest.raises(SettlementFailed), transaction.atomic():
        rolled_back = issue(alice_org, "delivery:2:buyer")
        assert rolled_back.number == "RB-2026-000002"
        raise SettlementFailed

    assert not Invoice.objects.filter(reference="delivery:2:buyer").exists()
    assert issue(alice_org, "delivery:3:buyer").number == "RB-2026-000002"
    assert reconcile() == []


@pytest.mark.django_db
@pytest.mark.parametrize("lines", [[], [fee_line("0.001")], [fee_line("-1.00")]])
def test_bad_lines_are_refused_and_take_no_number(alice_org, lines):
    with pytest.raises(ValueError):
        invoice_issue(organisation=alice_org, reference="delivery:1:buyer", lines=lines)
    assert not InvoiceSequence.objects.exists() and not Invoice.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("reference", ["", "   ", "x" * 101])
def test_a_bad_reference_is_refused(alice_org, reference):
    with pytest.raises(ValueError):
        invoice_issue(organisation=alice_org, reference=reference, lines=[fee_line("1.00")])


@pytest.mark.django_db
def test_invoices_are_immutable(alice_org):
    invoice = issue(alice_org, "delivery:1:buyer")
    with pytest.raises(ImmutableError):
        invoice.save()
    with pytest.raises(ImmutableError):
        Invoice.objects.filter(pk=invoice.pk).update(net_total=D("0.00"))
    with pytest.raises(ImmutableError):
        InvoiceLine.objects.all().delete()


def test_number_format():
    assert format_invoice_number(2026, 1) == "RB-2026-000001"
    assert format_invoice_number(2026, 123456) == "RB-2026-123456"


# --- pages ------------------------------------------------------------------------------------


@pytest.fixture
def alice_owner(alice_org):
    return MembershipFactory(user=UserFactory(email="owner@clearing.test"), organisation=alice_org,
                             is_owner=True, is_trader=False).user


@pytest.mark.django_db
def test_owners_see_their_invoices_as_list_page_and_csv(client, alice_owner, alice_org, settings):
    settings.LANGUAGE_CODE = "de"
    invoice = issue(alice_org, "delivery:1:buyer", "1234.50")
    client.force_login(alice_owner)

    listing = client.get(reverse("invoices"))
    page = client.get(reverse("invoice_detail", args=[invoice.number]))
    csv_de = client.get(reverse("invoices_csv"))
    csv_en = client.get(reverse("invoices_csv") + "?lang=en")

    assert listing.status_code == 200 and list(listing.context["invoices"]) == [invoice]
    assert page.status_code == 200
    body = page.content.decode()
    assert "RB-2026-000001" in body and "1.234,50" in body and "234,56" in body and "1.469,06" in body
    assert VAT_NOTE in body and "Alice Compute GmbH" in body
    rows_de = csv_de.content.decode("utf-8-sig").splitlines()
    assert csv_de.content.startswith(b"\xef\xbb\xbf")
    assert rows_de[1] == "RB-2026-000001;10.02.2026 13:00:00;delivery:1:buyer;1234,50;19,00;234,56;1469,06"
    assert csv_en.content.decode().splitlines() == [
        "Invoice number,Issued at,Reference,Net total (EUR),VAT rate (%),VAT (EUR),Gross total (EUR)",
        "RB-2026-000001,2026-02-10T13:00:00+01:00,delivery:1:buyer,1234.50,19.00,234.56,1469.06",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["charlie_owner", "bob", "nobody"])
def test_invoices_do_not_exist_for_anyone_but_the_owners(client, alice_org, charlie_org, bob, who):
    invoice = issue(alice_org, "delivery:1:buyer")
    users = {
        "charlie_owner": lambda: MembershipFactory(organisation=charlie_org, is_owner=True).user,
        "bob": lambda: bob,  # Alice's colleague, a trader but not an owner
        "nobody": lambda: make_user("nobody@clearing.test"),
    }
    client.force_login(users[who]())

    assert client.get(reverse("invoice_detail", args=[invoice.number])).status_code == 404
    if who != "charlie_owner":
        assert client.get(reverse("invoices")).status_code == 404
        assert client.get(reverse("invoices_csv")).status_code == 404
    else:
        assert list(client.get(reverse("invoices")).context["invoices"]) == []
        assert "RB-2026" not in client.get(reverse("invoices_csv")).content.decode("utf-8-sig")


@pytest.mark.django_db
def test_operators_see_invoices_in_the_admin_read_only(client, alice_org):
    from accounts.models import User

    invoice = issue(alice_org, "delivery:1:buyer")
    client.force_login(User.objects.create_superuser(email="root@clearing.test", password="x" * 12))
    assert client.get(reverse("admin:clearing_invoice_changelist")).status_code == 200
    change = client.get(reverse("admin:clearing_invoice_change", args=[invoice.pk]))
    assert change.status_code == 200 and "RB-2026-000001" in change.content.decode()
    assert client.get(reverse("admin:clearing_invoice_add")).status_code == 403


# --- concurrency on PostgreSQL -------------------------------------------------------------------

THREADS = 20


@pytest.fixture
def racing_orgs():
    return [make_organisation(f"Race {i} GmbH") for i in range(4)]


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_issuers_get_exactly_one_to_twenty(racing_orgs):
    def work(i: int) -> str:
        with transaction.atomic(durable=True):  # as settlement will
            invoice = issue(racing_orgs[i % 4], f"delivery:{i}:buyer")
            time.sleep(0.01)  # hold the sequence lock a moment: the others must queue
        return invoice.number

    outcomes = run_at_once(THREADS, work)

    assert sorted(outcomes) == [format_invoice_number(2026, n) for n in range(1, THREADS + 1)]
    assert sorted(Invoice.objects.values_list("sequence", flat=True)) == list(range(1, THREADS + 1))
    assert InvoiceSequence.objects.get(year=2026).last_number == THREADS
    assert reconcile() == []


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_rollbacks_leave_no_gap(racing_orgs):
    class Abort(Exception):
        pass

    def work(i: int) -> str:
        try:
            with transaction.atomic(durable=True):
                issue(racing_orgs[i % 4], f"delivery:{i}:buyer")
                if i % 2:
                    raise Abort
        except Abort:
            return "rolled back"
        return "issued"

    outcomes = run_at_once(THREADS, work)

    assert outcomes == Counter({"issued": 10, "rolled back": 10})
    assert sorted(Invoice.objects.values_list("sequence", flat=True)) == list(range(1, 11))
    assert InvoiceSequence.objects.get(year=2026).last_number == 10


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_issuers_of_one_reference_get_the_same_invoice(racing_orgs):
    def work(i: int) -> str:
        with transaction.atomic(durable=True):
            return issue(racing_orgs[0], "delivery:1:buyer").number

    outcomes = run_at_once(10, work)

    assert outcomes == Counter({"RB-2026-000001": 10})
    assert Invoice.objects.count() == 1
    assert InvoiceSequence.objects.get(year=2026).last_number == 1


def naive_issue(organisation, reference: str) -> str:
    """The bug the service avoids: the next number read as max + 1, then
    inserted. The sleep between read and insert makes the race show on
    every run."""
    with transaction.atomic(durable=True):
        last = Invoice.objects.filter(year=2026).aggregate(last=Max("sequence"))["last"] or 0
        time.sleep(0.05)
        sequence = last + 1
        Invoice.objects.create(
            number=format_invoice_number(2026, sequence), year=2026, sequence=sequence, organisation=organisation,
            issued_at=WINTER, reference=reference, net_total=D("0.02"), vat_rate=D("19.00"), vat_amount=D("0.00"),
            gross_total=D("0.02"),
        )
    return "issued"


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_control_twin_naive_max_plus_one_numbers_collide(racing_orgs):
    def work(i: int) -> str:
        try:
            return naive_issue(racing_orgs[i % 4], f"delivery:{i}:buyer")
        except IntegrityError:
            return "duplicate number"  # the race showing: unique (year, sequence) caught it

    outcomes = run_at_once(THREADS, work)

    assert outcomes["duplicate number"] > 0, outcomes
    # Without the unique index these would have been duplicate invoice numbers.
    assert Invoice.objects.count() == outcomes["issued"] < THREADS

