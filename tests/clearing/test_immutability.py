"""The books are append-only: in the ORM, and on PostgreSQL in the database."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from clearing.models import Account, CashDeposit, ImmutableError, JournalEntry, JournalLine
from clearing.selectors import trial_balance
from clearing.services import accounts_for, house_account, ledger_post
from tests.clearing.conftest import deposit

D = Decimal


@pytest.fixture
def booked(alice_org, operator) -> CashDeposit:
    return deposit(operator, alice_org, "100.00")


@pytest.mark.django_db
def test_the_orm_refuses_to_change_or_delete_journal_rows(booked):
    entry = booked.entry
    line = entry.lines.first()
    assert line is not None

    for row in (entry, line, booked):
        with pytest.raises(ImmutableError):
            row.save()
        with pytest.raises(ImmutableError):
            row.delete()
    with pytest.raises(ImmutableError):
        JournalLine.objects.filter(pk=line.pk).update(amount=D("1.00"))
    with pytest.raises(ImmutableError):
        JournalEntry.objects.all().delete()
    with pytest.raises(ImmutableError):
        CashDeposit.objects.all().update(amount=D("1.00"))

    line.refresh_from_db()
    assert line.amount in (D("100.00"), D("-100.00"))
    assert JournalEntry.objects.count() == 1


@pytest.mark.django_db
def test_the_orm_refuses_to_save_or_delete_an_account(booked, alice_org):
    account = accounts_for(organisation=alice_org)["cash_available"]
    account.balance = D("1000000.00")
    with pytest.raises(ImmutableError):
        account.save()
    with pytest.raises(ImmutableError):
        account.delete()
    with pytest.raises(ImmutableError):
        Account.objects.create(kind="ccp", balance=D("5.00"))  # money enters by entries only
    account.refresh_from_db()
    assert account.balance == D("100.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE clearing_journalline SET amount = amount * 2",
        "DELETE FROM clearing_journalline",
        "UPDATE clearing_journalentry SET memo = 'rewritten'",
        "DELETE FROM clearing_journalentry",
        "UPDATE clearing_cashdeposit SET amount = 1",
        "DELETE FROM clearing_cashdeposit",
    ],
)
def test_postgresql_refuses_update_and_delete_of_journal_rows(booked, sql):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)

    assert sorted(JournalLine.objects.values_list("amount", flat=True)) == [D("-100.00"), D("100.00")]
    assert JournalEntry.objects.get().memo == booked.entry.memo
    assert CashDeposit.objects.get().amount == D("100.00")


@pytest.mark.django_db
def test_postgresql_refuses_a_negative_member_balance_even_bypassing_the_service(booked, alice_org):
    available = accounts_for(organisation=alice_org)["cash_available"]
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=available.pk).update(balance=D("-0.01"))
    with pytest.raises(IntegrityError), transaction.atomic():
        # A member account without a member, or a house account with one, cannot exist.
        Account.objects.create(organisation=alice_org, kind="bank")


@pytest.mark.django_db
def test_a_zero_line_is_refused_by_the_database(booked):
    with pytest.raises(IntegrityError), transaction.atomic():
        JournalLine.objects.create(entry=booked.entry, account=house_account("ccp"), amount=D("0.00"))


@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_to_commit_an_entry_that_does_not_balance(alice_org):
    available = accounts_for(organisation=alice_org)["cash_available"]

    # Bypassing ledger_post: an entry with one line, written directly.
    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        entry = JournalEntry.objects.create(kind="correction")
        JournalLine.objects.create(entry=entry, account=available, amount=D("5.00"))

    assert not JournalEntry.objects.exists()
    assert not JournalLine.objects.exists()

    # The same through the service commits.
    with transaction.atomic():
        ledger_post(kind="correction", lines=[(house_account("ccp"), D("-5.00")), (available, D("5.00"))])
    assert JournalLine.objects.count() == 2
    assert trial_balance() == 0
