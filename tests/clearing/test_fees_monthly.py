"""Fees as published (issue 7 item 7; docs/architecture.md "Fees as published"):
exact fees per trade, held per member and Europe/Berlin month, charged once a
month with VAT on one invoice per member, the funds' shares swept from the
month's revenue.

Actors from tests/market/orders_world.py: Alice's organisation sells (and
buys once), Charlie's buys, Dora's sells once. Rates maker 0.005, taker 0.015.
"""

import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from clearing.invoicing import BERLIN
from clearing.models import Account, FeeAccrual, Invoice, JournalEntry
from clearing.reconcile import reconcile
from clearing.selectors import house_balances
from clearing.services import fees as fee_services
from clearing.services.fees import fees_charge_month, month_bounds, month_of
from exchange.celery import app as celery_app
from market import calendar as market_calendar
from market.services.orders import order_submit
from tests.concurrency import run_at_once
from tests.factories import HourInstrumentFactory
from tests.market.orders_world import World, books_balance, held, make_world

D = Decimal


def charge(month: date) -> int:
    return fees_charge_month(month=month, now=month_bounds(month)[1] + timedelta(minutes=30))


def a_month_of_trades(world: World) -> date:
    """Alice takes 1 GPU from Dora (taker), then rests 7 sells of 1 GPU that
    Charlie takes one by one: Alice is maker 7 times."""
    instrument = world.instrument
    order_submit(user=world.dora, instrument=instrument, side="sell", price=D("12.50"), quantity=1)
    order_submit(user=world.alice, instrument=instrument, side="buy", price=D("12.50"), quantity=1)
    for _ in range(7):
        order_submit(user=world.alice, instrument=instrument, side="sell", price=D("12.00"), quantity=1)
    for _ in range(7):
        order_submit(user=world.charlie, instrument=instrument, side="buy", price=D("12.00"), quantity=1)
    return month_of(instrument.trades.latest("pk").executed_at)


# --- a month against hand-computed totals ---------------------------------------------------------


@pytest.mark.django_db
def test_a_month_of_fees_is_charged_once_rounded_once_with_vat():
    world = make_world()
    month = a_month_of_trades(world)
    # Alice: maker 7 x 0.005 = 0.035 and taker 0.015: 0.050 exact. Rounded per
    # fill as before, she would have paid 7 x 0.01 + 0.02 = 0.09 net.
    # Now: net r(0.050) = 0.05, VAT r(0.0095) = 0.01, held 0.06.
    # Charlie: taker 7 x 0.015 = 0.105: net 0.11, VAT r(0.0209) = 0.02, held 0.13.
    # Dora: maker 0.005: net 0.01 (HALF_UP), VAT r(0.0019) = 0.00, held 0.01.
    accrued = {row.organisation_id: (row.accrued, row.held) for row in FeeAccrual.objects.filter(month=month)}
    assert accrued == {world.org_a.pk: (D("0.05"), D("0.06")), world.org_c.pk: (D("0.105"), D("0.13")),
                       world.org_d.pk: (D("0.005"), D("0.01"))}
    assert (held(world.org_a), held(world.org_c), held(world.org_d)) == (D("0.06"), D("0.13"), D("0.01"))
    assert reconcile() == []

    assert charge(month) == 3

    # The charge is exactly what was held: every fee reserve is empty.
    assert (held(world.org_a), held(world.org_c), held(world.org_d)) == (D("0.00"), D("0.00"), D("0.00"))
    label = f"{month:%Y-%m}"
    entry = JournalEntry.objects.get(reference=f"fees:{world.org_a.pk}:{label}")
    assert entry.kind == "fee"
    assert sorted((line.account.kind, line.amount) for line in entry.lines.all()) == [
        ("fee_reserve", D("-0.06")), ("fee_revenue", D("0.05")), ("vat_payable", D("0.01"))]
    # One invoice per member and month, VAT as booked, lines summing to the net:
    # Alice's maker 0.035 and taker 0.015 cut to 0.03 + 0.01, the cent left
    # goes to the larger remainder (a tie: the first line).
    invoices = Invoice.objects.filter(reference__startswith="fees:")
    assert invoices.count() == 3
    alice = invoices.get(organisation=world.org_a)
    assert (alice.reference, alice.net_total, alice.vat_amount, alice.gross_total, alice.entry_id) == (
        f"fees:{world.org_a.pk}:{label}", D("0.05"), D("0.01"), D("0.06"), entry.pk)
    lines = [(line.quantity, line.unit, line.unit_price, line.amount) for line in alice.lines.order_by("position")]
    assert lines == [(D("7"), "GPUh", D("0.005"), D("0.04")), (D("1"), "GPUh", D("0.015"), D("0.01"))]
    assert "exakt 0,035 EUR" in alice.lines.get(position=1).description  # German number format (issue 8)
    charlie = invoices.get(organisation=world.org_c)
    assert (charlie.net_total, charlie.vat_amount, charlie.gross_total) == (D("0.11"), D("0.02"), D("0.13"))
    assert [line.amount for line in charlie.lines.all()] == [D("0.11")]

    # The sweep: net 0.05 + 0.11 + 0.01 = 0.17; incentive 20 % = 0.034 -> 0.03,
    # R&D 10 % = 0.017 -> 0.02; fee revenue keeps 0.12; VAT 0.01 + 0.02 + 0.00.
    assert house_balances(["fee_revenue", "incentive_fund", "rnd_fund", "vat_payable"]) == {
        "fee_revenue": D("0.12"), "incentive_fund": D("0.03"), "rnd_fund": D("0.02"), "vat_payable": D("0.03")}
    assert JournalEntry.objects.filter(reference=f"fees-sweep:{label}").count() == 1
    assert reconcile(now=month_bounds(month)[1] + timedelta(days=2)) == []
    books_balance()


@pytest.mark.django_db
def test_charging_a_month_twice_charges_once():
    world = make_world()
    month = a_month_of_trades(world)
    assert charge(month) == 3
    entries, invoices = JournalEntry.objects.count(), Invoice.objects.count()

    assert charge(month) == 0
    assert fees_charge_month(month=month, now=month_bounds(month)[1] + timedelta(days=40)) == 0

    assert (JournalEntry.objects.count(), Invoice.objects.count()) == (entries, invoices)
    assert reconcile(now=month_bounds(month)[1] + timedelta(days=2)) == []


@pytest.mark.django_db
def test_a_month_that_has_not_ended_is_not_charged():
    world = make_world()
    month = a_month_of_trades(world)
    with pytest.raises(ValueError, match="has not ended"):
        fees_charge_month(month=month, now=month_bounds(month)[1] - timedelta(seconds=1))
    assert not FeeAccrual.objects.filter(charged_at__isnull=False).exists()


@pytest.mark.django_db
def test_a_member_whose_month_cannot_be_charged_is_logged_and_the_sweep_waits(monkeypatch, caplog):
    world = make_world()
    month = a_month_of_trades(world)
    real = fee_services._invoice_lines

    def broken_for_charlie(organisation_id, *args):  # type: ignore[no-untyped-def]
        if organisation_id == world.org_c.pk:
            raise RuntimeError("invoice lines unavailable")
        return real(organisation_id, *args)

    monkeypatch.setattr(fee_services, "_invoice_lines", broken_for_charlie)
    assert charge(month) == 2
    assert "not charged" in caplog.text
    assert held(world.org_c) == D("0.13")  # rolled back whole: still held
    assert not JournalEntry.objects.filter(reference__startswith="fees-sweep:").exists()
    assert [breach.check for breach in reconcile(now=month_bounds(month)[1] + timedelta(days=2))] == [
        "fees_charged_monthly"]

    monkeypatch.setattr(fee_services, "_invoice_lines", real)
    assert charge(month) == 1
    assert reconcile(now=month_bounds(month)[1] + timedelta(days=2)) == []


@pytest.mark.django_db
def test_a_trade_into_a_month_already_charged_is_refused_as_a_conflict():
    # Only a transaction that read its clock before midnight and commits after
    # the charge run could do this; it is refused and the member tries again.
    world = make_world()
    month = a_month_of_trades(world)
    charge(month)
    executed = world.instrument.trades.latest("pk").executed_at
    order_submit(user=world.alice, instrument=world.instrument, side="sell", price=D("12.00"), quantity=1)
    from exchange.errors import ExchangeError

    with pytest.raises(ExchangeError) as refused:
        order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("12.00"), quantity=1,
                     now=executed)
    assert refused.value.code == "conflict"


# --- the month boundary (Europe/Berlin, summer and winter time) -------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("last_second", "first_instant"), [
    # 1 April 00:00 CEST is 31 March 22:00 UTC: still March in UTC.
    (datetime(2026, 3, 31, 23, 59, 59, tzinfo=BERLIN), datetime(2026, 4, 1, 0, 0, tzinfo=BERLIN)),
    # 1 November 00:00 CET (a week after the switch back) is 31 October 23:00 UTC.
    (datetime(2026, 10, 31, 23, 59, 59, tzinfo=BERLIN), datetime(2026, 11, 1, 0, 0, tzinfo=BERLIN)),
])
def test_trades_either_side_of_midnight_go_to_their_berlin_months(last_second, first_instant):
    world = make_world()
    instrument = HourInstrumentFactory(hour=market_calendar.delivery_hour(first_instant.date(), "10"))
    assert instrument.accepts_orders_at(last_second) and instrument.accepts_orders_at(first_instant)
    for now in (last_second, first_instant):
        order_submit(user=world.alice, instrument=instrument, side="sell", price=D("12.00"), quantity=1, now=now)
        order_submit(user=world.charlie, instrument=instrument, side="buy", price=D("12.00"), quantity=1, now=now)

    before, after = month_of(last_second), month_of(first_instant)
    assert (before.month % 12) + 1 == after.month
    rows = sorted(FeeAccrual.objects.filter(organisation=world.org_c).values_list("month", "accrued"))
    assert rows == [(before, D("0.015")), (after, D("0.015"))]  # one taker GPU-hour each
    assert reconcile(now=first_instant) == []
    # Charging the earlier month charges only its trade.
    assert fees_charge_month(month=before, now=first_instant) == 2
    assert held(world.org_c) == D("0.02")  # the later month's 0.015 -> 0.02 + VAT 0.00
    assert reconcile(now=first_instant) == []


def test_month_of_and_month_bounds_are_berlin_calendar_months():
    assert month_of(datetime(2026, 3, 31, 22, 0, tzinfo=UTC)) == date(2026, 4, 1)  # 00:00 CEST
    assert month_of(datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC)) == date(2026, 3, 1)
    assert month_of(datetime(2026, 10, 31, 23, 0, tzinfo=UTC)) == date(2026, 11, 1)  # 00:00 CET
    start, end = month_bounds(date(2026, 3, 1))
    assert (start.isoformat(), end.isoformat()) == ("2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00")
    assert fee_services.previous_month(datetime(2026, 1, 1, 0, 30, tzinfo=BERLIN)) == date(2025, 12, 1)


# --- two runs at once ---------------------------------------------------------------------------------


@pytest.fixture
def slow_charge(monkeypatch):  # type: ignore[no-untyped-def]
    """Both runs read the accrual before either writes: a pause right after the read."""
    real = fee_services.fee_held

    def paused(accrued, *args):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return real(accrued, *args)

    monkeypatch.setattr(fee_services, "fee_held", paused)


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_two_charge_runs_at_once_charge_each_member_once(slow_charge, caplog):
    world = make_world()
    month = a_month_of_trades(world)

    outcomes = run_at_once(2, lambda i: str(charge(month)))

    assert sum(int(count) for count in outcomes.elements()) == 3, outcomes
    assert "not charged" not in caplog.text
    assert Invoice.objects.filter(reference__startswith="fees:").count() == 3
    assert JournalEntry.objects.filter(kind="fee", reference__startswith="fees:").count() == 3
    assert JournalEntry.objects.filter(kind="fee", reference__startswith="fees-sweep:").count() == 1
    assert Account.objects.filter(kind="fee_reserve").exclude(balance=0).count() == 0
    assert reconcile(now=month_bounds(month)[1] + timedelta(days=2)) == []


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_control_twin_without_the_organisation_lock_both_runs_try_to_charge(slow_charge, monkeypatch, caplog):
    """Without the lock, both runs find the month uncharged and post; only the
    unique reference of the fee entry stops the second (the backstop), which
    fails and is logged. With the lock the second waits and finds it charged."""
    world = make_world()
    month = a_month_of_trades(world)
    monkeypatch.setattr(fee_services, "lock_organisations", lambda ids: list(ids))
    lost = threading.Event()
    real = fee_services.ledger_post

    def noting(**kwargs):  # type: ignore[no-untyped-def]
        try:
            return real(**kwargs)
        except Exception:
            lost.set()
            raise

    monkeypatch.setattr(fee_services, "ledger_post", noting)

    run_at_once(2, lambda i: str(charge(month)))

    assert lost.is_set()
    assert "not charged" in caplog.text
    # The backstop held: still one charge per member.
    assert JournalEntry.objects.filter(kind="fee", reference__startswith="fees:").count() == 3


# --- the command and the beat ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_charges_a_month_and_refuses_bad_ones(capsys):
    call_command("charge_fees", "--month", "2026-01")
    assert capsys.readouterr().out.strip() == "charged: 0"
    with pytest.raises(CommandError):
        call_command("charge_fees", "--month", "2026-13")
    with pytest.raises(CommandError, match="has not ended"):
        call_command("charge_fees", "--month", f"{month_of(datetime.now(tz=BERLIN)):%Y-%m}")


def test_the_charge_is_on_the_beat_at_half_past_midnight_on_the_first():
    schedule = celery_app.conf.beat_schedule["clearing-charge-fees"]
    assert schedule["task"] == "clearing.charge_fees"
    cron = schedule["schedule"]
    assert (cron.minute, cron.hour, cron.day_of_month) == ({30}, {0}, {1})
    assert celery_app.conf.timezone == "Europe/Berlin"
