"""Deposits, reservations and releases of member cash."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import translation

from accounts.models import Organisation
from clearing.models import Account, CashDeposit, JournalEntry, JournalLine
from clearing.selectors import account_summary, house_balances, trial_balance
from clearing.services import cash_deposit_book, cash_release, cash_reserve
from exchange.errors import ExchangeError
from tests.clearing.conftest import deposit, make_organisation

pytestmark = pytest.mark.django_db

D = Decimal


def nothing_written() -> tuple[int, int, int, dict[int, Decimal]]:
    return (CashDeposit.objects.count(), JournalEntry.objects.count(), JournalLine.objects.count(),
            dict(Account.objects.values_list("pk", "balance")))


def test_a_deposit_credits_available_cash_against_the_bank(alice_org, operator):
    booked = cash_deposit_book(operator=operator, organisation=alice_org, amount=D("1000.00"),
                               bank_reference="  SEPA-2026-0001 ")

    assert booked.bank_reference == "SEPA-2026-0001"
    assert (booked.amount, booked.booked_by, booked.organisation) == (D("1000.00"), operator, alice_org)
    assert booked.entry.kind == "deposit"
    assert booked.entry.actor == operator
    assert booked.entry.reference == "bank:SEPA-2026-0001"
    assert sorted(booked.entry.lines.values_list("account__kind", "amount")) == [
        ("bank", D("-1000.00")), ("cash_available", D("1000.00")),
    ]
    assert account_summary(organisation=alice_org) == {
        "cash_available": D("1000.00"), "cash_reserved": D("0.00"),
        "settlement_pending": D("0.00"), "margin": D("0.00"),
    }
    assert house_balances()["bank"] == D("-1000.00")
    assert trial_balance() == 0


def test_deposits_add_up_and_stay_with_their_organisation(alice_org, charlie_org, operator):
    deposit(operator, alice_org, "0.01")
    deposit(operator, alice_org, "99.99")
    whole_euros = deposit(operator, charlie_org, "5")

    # Quantised to the cent at the boundary, not only once it is read back.
    assert str(whole_euros.amount) == "5.00"
    assert [str(amount) for amount in whole_euros.entry.lines.values_list("amount", flat=True)] == ["5.00", "-5.00"]

    assert account_summary(organisation=alice_org)["cash_available"] == D("100.00")
    assert account_summary(organisation=charlie_org)["cash_available"] == D("5.00")
    assert house_balances()["bank"] == D("-105.00")


@pytest.mark.parametrize("amount", [D("0"), D("-5.00"), D("10.005"), D("NaN"), D("1e16"), 10.0])
def test_a_deposit_must_be_a_positive_amount_in_whole_cents(alice_org, operator, amount):
    before = nothing_written()
    with pytest.raises(ExchangeError) as raised:
        cash_deposit_book(operator=operator, organisation=alice_org, amount=amount, bank_reference="REF-1")
    assert raised.value.code == "invalid"
    assert list(raised.value.fields) == ["amount"]
    assert nothing_written() == before


@pytest.mark.parametrize("reference", ["", "   ", "x" * 101])
def test_a_deposit_needs_a_bank_reference(alice_org, operator, reference):
    with pytest.raises(ExchangeError) as raised:
        cash_deposit_book(operator=operator, organisation=alice_org, amount=D("1.00"), bank_reference=reference)
    assert raised.value.fields.keys() == {"bank_reference"}
    assert not CashDeposit.objects.exists()


def test_a_bank_transfer_is_booked_only_once(alice_org, charlie_org, operator):
    deposit_ = cash_deposit_book(operator=operator, organisation=alice_org, amount=D("10.00"),
                                 bank_reference="SEPA-42")
    before = nothing_written()

    with pytest.raises(ExchangeError) as raised:
        cash_deposit_book(operator=operator, organisation=charlie_org, amount=D("10.00"), bank_reference="SEPA-42")

    assert raised.value.code == "invalid"
    assert "bank_reference" in raised.value.fields
    assert nothing_written() == before
    assert CashDeposit.objects.get() == deposit_


def test_only_an_active_operator_books_deposits(alice_org, alice, operator):
    operator.is_active = False
    operator.save()
    for user in (alice, operator):
        with pytest.raises(ExchangeError) as raised:
            cash_deposit_book(operator=user, organisation=alice_org, amount=D("10.00"), bank_reference="SEPA-1")
        assert raised.value.code == "not_permitted"
    assert not JournalEntry.objects.exists()


def test_an_observer_holds_no_cash(operator):
    ministry = make_organisation("Bundesministerium für Rechenkapazität", kind=Organisation.Kind.OBSERVER)
    with pytest.raises(ExchangeError) as raised:
        cash_deposit_book(operator=operator, organisation=ministry, amount=D("10.00"), bank_reference="SEPA-1")
    assert raised.value.fields.keys() == {"organisation"}
    assert not JournalEntry.objects.exists()


def test_reserve_moves_available_to_reserved_and_release_moves_it_back(alice_org, operator):
    deposit(operator, alice_org, "100.00")

    reserve = cash_reserve(organisation=alice_org, amount=D("25.20"), reference="order:1")
    assert (reserve.kind, reserve.reference) == ("reserve", "order:1")
    assert account_summary(organisation=alice_org)["cash_available"] == D("74.80")
    assert account_summary(organisation=alice_org)["cash_reserved"] == D("25.20")

    release = cash_release(organisation=alice_org, amount=D("25.20"), reference="order:1")
    assert release.kind == "release"
    summary = account_summary(organisation=alice_org)
    assert (summary["cash_available"], summary["cash_reserved"]) == (D("100.00"), D("0.00"))
    assert trial_balance() == 0


def test_reserving_everything_is_allowed_but_not_a_cent_more(alice_org, operator):
    deposit(operator, alice_org, "100.00")
    cash_reserve(organisation=alice_org, amount=D("60.00"), reference="order:1")
    before = nothing_written()

    with pytest.raises(ExchangeError) as raised:
        cash_reserve(organisation=alice_org, amount=D("40.01"), reference="order:2")

    assert raised.value.code == "insufficient_funds"
    assert nothing_written() == before
    cash_reserve(organisation=alice_org, amount=D("40.00"), reference="order:3")
    assert account_summary(organisation=alice_org)["cash_available"] == D("0.00")


def test_a_member_without_money_cannot_reserve(charlie_org):
    with pytest.raises(ExchangeError) as raised:
        cash_reserve(organisation=charlie_org, amount=D("0.01"), reference="order:1")
    assert raised.value.code == "insufficient_funds"
    assert not JournalEntry.objects.exists()


def test_releasing_more_than_is_reserved_is_refused(alice_org, operator):
    deposit(operator, alice_org, "100.00")
    cash_reserve(organisation=alice_org, amount=D("10.00"), reference="order:1")
    before = nothing_written()

    with pytest.raises(ExchangeError) as raised:
        cash_release(organisation=alice_org, amount=D("10.01"), reference="order:1")

    assert raised.value.code == "insufficient_funds"
    assert nothing_written() == before


@pytest.mark.parametrize("amount", [D("0.00"), D("-1.00"), D("0.001"), D("2.345")])
def test_reserve_and_release_take_positive_whole_cents(alice_org, operator, amount):
    deposit(operator, alice_org, "100.00")
    for service in (cash_reserve, cash_release):
        with pytest.raises(ExchangeError) as raised:
            service(organisation=alice_org, amount=amount, reference="order:1")
        assert raised.value.code == "invalid"


def test_a_reservation_inside_an_order_transaction_rolls_back_with_it(alice_org, operator):
    # What the order service does: reserve inside its own (outer) transaction;
    # when a later step fails, the reservation goes too.
    deposit(operator, alice_org, "100.00")

    class OrderRejected(Exception):
        pass

    with pytest.raises(OrderRejected), transaction.atomic():
        cash_reserve(organisation=alice_org, amount=D("30.00"), reference="order:9")
        raise OrderRejected

    assert account_summary(organisation=alice_org)["cash_available"] == D("100.00")
    assert not JournalEntry.objects.filter(reference="order:9").exists()


def test_refusals_speak_german_by_default_and_english_on_request(charlie_org):
    with translation.override("de"), pytest.raises(ExchangeError) as german:
        cash_reserve(organisation=charlie_org, amount=D("1.00"), reference="order:1")
    with translation.override("en"), pytest.raises(ExchangeError) as english:
        cash_reserve(organisation=charlie_org, amount=D("1.00"), reference="order:1")
    assert german.value.detail == "Nicht genug verfügbares Guthaben: verfügbar 0,00 EUR, benötigt 1,00 EUR."
    assert english.value.detail == "Not enough cash available: available 0.00 EUR, needed 1.00 EUR."
