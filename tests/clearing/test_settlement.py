"""Settlement pays each delivery ticket exactly once: two runs at once (real
threads on PostgreSQL, with a control twin that has no claim and pays
twice), and a run that dies half-way then runs again
(docs/architecture.md, "Delivery and settlement (issue 4)")."""

import time
from decimal import Decimal

import pytest

from clearing.models import DeliveryTicket, Invoice, JournalEntry
from clearing.reconcile import reconcile
from clearing.services import deliveries_settle, delivery_confirm
from clearing.services import delivery as delivery_module
from tests.concurrency import run_at_once
from tests.factories import spot_trade
from tests.market.orders_world import World, make_world

D = Decimal


def confirmed_tickets(world: World, quantities: list[int], *, confirm: int | None = None) -> list[DeliveryTicket]:
    """One trade (Alice sells to Charlie) per quantity; the first ``confirm`` tickets confirmed."""
    tickets = []
    for quantity in quantities:
        trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=quantity)
        tickets.append(trade.delivery_tickets.get())
    for ticket in tickets[: len(tickets) if confirm is None else confirm]:
        delivery_confirm(user=world.charlie, ticket=ticket, now=ticket.delivery_start)  # from delivery start (issue 7)
    return tickets


def settlement_entries(ticket: DeliveryTicket) -> int:
    return JournalEntry.objects.filter(reference=f"delivery:{ticket.pk}").count()


def expected_lines(ticket: DeliveryTicket) -> list[tuple[int, str, Decimal]]:
    """The payout entry of one clean settlement, by the documented formula."""
    payout = ticket.value - ticket.seller_fee
    return sorted([(ticket.buyer_id, "settlement_pending", -ticket.value), (0, "ccp", ticket.value),
                   (ticket.seller_id, "settlement_pending", -payout), (ticket.seller_id, "cash_available", payout)])


def posted_lines(ticket: DeliveryTicket) -> list[list[tuple[int, str, Decimal]]]:
    return [sorted((line.account.organisation_id or 0, line.account.kind, line.amount) for line in entry.lines.all())
            for entry in JournalEntry.objects.filter(reference=f"delivery:{ticket.pk}").order_by("pk")]


# --- two runs at once -------------------------------------------------------------------------


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_two_settlement_runs_at_once_pay_each_ticket_once():
    world = make_world()
    tickets = confirmed_tickets(world, [1, 2, 3])
    outcomes = run_at_once(2, lambda i: str(deliveries_settle()))
    assert sum(int(count) for count in outcomes.elements()) == 3, outcomes
    for ticket in tickets:
        assert posted_lines(ticket) == [expected_lines(ticket)]
    assert not Invoice.objects.exists()  # fees are invoiced monthly, not per ticket
    assert reconcile() == []


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_control_twin_without_the_claim_pays_twice(monkeypatch):
    """The same two runs with a read-check-write instead of the conditional
    UPDATE: both see the ticket unsettled, and both pay it."""
    world = make_world()
    # Ticket 1 is confirmed; ticket 2's pending money lets a second payout of 1 pass the balance guards.
    first, _second = confirmed_tickets(world, [1, 4], confirm=1)

    def naive_claim(ticket_id: int, now):  # type: ignore[no-untyped-def]
        ticket = DeliveryTicket.objects.get(pk=ticket_id)
        if ticket.settled_at is not None or ticket.status != "confirmed":
            return False
        time.sleep(0.3)  # both runners get here before either writes
        DeliveryTicket.objects.filter(pk=ticket_id).update(status="settled", settled_at=now)
        return True

    monkeypatch.setattr(delivery_module, "_claim", naive_claim)
    outcomes = run_at_once(2, lambda i: str(deliveries_settle()))
    assert outcomes == {"1": 2}
    assert settlement_entries(first) == 2  # the double payout the claim prevents
    assert posted_lines(first) == [expected_lines(first)] * 2


# --- a crash half-way ---------------------------------------------------------------------------


class WorkerKilled(BaseException):
    """Stands in for the worker process dying (not an Exception: nothing catches it)."""


@pytest.mark.django_db
def test_a_run_killed_after_claiming_a_ticket_then_run_again_gives_the_clean_ledger(monkeypatch):
    world = make_world()
    tickets = confirmed_tickets(world, [1, 2, 3])
    entries_before = JournalEntry.objects.count()
    real = delivery_module.ledger_post

    def dies_on_the_second(**kwargs):  # type: ignore[no-untyped-def]
        entry = real(**kwargs)
        if kwargs["reference"] == f"delivery:{tickets[1].pk}":
            # After the claim and the payout posting, inside the ticket's transaction.
            assert DeliveryTicket.objects.get(pk=tickets[1].pk).status == "settled"
            assert settlement_entries(tickets[1]) == 1
            raise WorkerKilled
        return entry

    monkeypatch.setattr(delivery_module, "ledger_post", dies_on_the_second)
    with pytest.raises(WorkerKilled):
        deliveries_settle()
    # The first ticket committed; the second rolled back whole (claim, entry); the third never started.
    states = [DeliveryTicket.objects.get(pk=t.pk).status for t in tickets]
    assert states == ["settled", "confirmed", "confirmed"]
    assert [settlement_entries(t) for t in tickets] == [1, 0, 0]

    monkeypatch.setattr(delivery_module, "ledger_post", real)
    assert deliveries_settle() == 2
    assert deliveries_settle() == 0
    # The ledger of one clean run: one payout per ticket, nothing else.
    assert JournalEntry.objects.count() == entries_before + 3
    for ticket in tickets:
        assert posted_lines(ticket) == [expected_lines(ticket)]
    # Settlement issues no invoices: the fees are invoiced once a month.
    assert not Invoice.objects.exists()
    assert reconcile() == []


@pytest.mark.django_db
def test_a_ticket_that_cannot_settle_is_skipped_and_the_others_are_paid(monkeypatch):
    world = make_world()
    tickets = confirmed_tickets(world, [1, 2])
    real = delivery_module._settlement_lines

    def refused_for_the_first(ticket):  # type: ignore[no-untyped-def]
        if ticket.pk == tickets[0].pk:
            from exchange.errors import ExchangeError

            raise ExchangeError("insufficient_funds", "test")
        return real(ticket)

    monkeypatch.setattr(delivery_module, "_settlement_lines", refused_for_the_first)
    assert deliveries_settle() == 1
    assert [DeliveryTicket.objects.get(pk=t.pk).status for t in tickets] == ["confirmed", "settled"]
    monkeypatch.setattr(delivery_module, "_settlement_lines", real)
    assert deliveries_settle() == 1
    assert reconcile() == []


@pytest.mark.django_db
def test_the_command_settles_and_is_idempotent(capsys):
    from django.core.management import call_command

    world = make_world()
    confirmed_tickets(world, [2])
    call_command("settle_deliveries")
    call_command("settle_deliveries")
    assert capsys.readouterr().out.splitlines() == ["settled: 1", "settled: 0"]


def test_the_beat_runs_settlement_every_five_minutes():
    from exchange.celery import app

    entry = app.conf.beat_schedule["clearing-settle-deliveries"]
    assert entry["task"] == "clearing.settle_deliveries"
    assert str(entry["schedule"]._orig_minute) == "*/5"


@pytest.mark.django_db
def test_the_task_calls_the_service():
    from clearing.tasks import settle_deliveries

    world = make_world()
    confirmed_tickets(world, [1])
    assert settle_deliveries.apply().get() == {"settled": 1}
