"""Delivery tickets: allocation, access details, confirmation, disputes and the
whole lifecycle of one trade with hand-computed amounts
(docs/architecture.md, "Delivery and settlement (issue 4)").

Actors from tests/market/orders_world.py: Alice's organisation sells from its
Bavarian site (100 H100), Charlie's buys; Dora's organisation is the third
party that must see none of their tickets; Vera is Alice's viewer.
"""

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditLog
from clearing.fees import fee_step
from clearing.models import Account, DeliveryTicket, Invoice, JournalEntry
from clearing.reconcile import reconcile
from clearing.selectors import account_summary
from clearing.services import (
    deliveries_settle,
    delivery_access_post,
    delivery_confirm,
    delivery_dispute,
    dispute_resolve,
    house_account,
    may_read_access,
    tickets_visible_to,
)
from clearing.services.allocation import split_cents
from clearing.statements import local_today, statement_for
from exchange.errors import ExchangeError
from market import calendar
from market.models import SiteUsage
from market.services.orders import order_submit
from tests.factories import (
    OpenInstrumentFactory,
    SiteCapacityFactory,
    SiteFactory,
    TraderFactory,
    UserFactory,
    spot_trade,
)
from tests.market.orders_world import CASH, World, make_world

D = Decimal


@pytest.fixture
def world(db: None) -> World:
    return make_world()


@pytest.fixture
def operator(db: None):  # type: ignore[no-untyped-def]
    return UserFactory(email="ops@delivery.test", is_staff=True)


def ticket_of(trade) -> DeliveryTicket:  # type: ignore[no-untyped-def]
    (ticket,) = DeliveryTicket.objects.filter(trade=trade)
    return ticket


def after_window(ticket: DeliveryTicket) -> datetime:
    return ticket.delivery_end + timedelta(hours=24, seconds=1)


def start_delivery(ticket: DeliveryTicket) -> None:
    """Move the ticket's delivery start to a minute ago, as if the clock had
    reached it (the views and the API read the real clock)."""
    DeliveryTicket.objects.filter(pk=ticket.pk).update(delivery_start=timezone.now() - timedelta(minutes=1))


# --- the lifecycle ----------------------------------------------------------------------------


def test_one_trade_from_ticket_to_payout_with_hand_computed_amounts(world: World):
    # Alice rests 4 H100 at 12.30 (maker, 0.005/GPUh), Charlie takes them (taker, 0.015/GPUh).
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=4)
    assert (trade.buyer_fee, trade.seller_fee) == (D("0.06"), D("0.02"))
    # Held for the month's fees: Charlie 0.06 + VAT r(0.0114) = 0.07, Alice 0.02 + r(0.0038) = 0.02.
    # V = 12.30 x 4 x 1 = 49.20; Charlie reserved 49.32 and got 49.32 - 49.20 - 0.07 = 0.05 back.
    assert account_summary(organisation=world.org_c)["settlement_pending"] == D("49.20")
    assert account_summary(organisation=world.org_a)["settlement_pending"] == D("49.18")

    ticket = ticket_of(trade)
    site = world.org_a.sites.get()
    assert (ticket.seller_id, ticket.seller_site_id, ticket.buyer_id, ticket.gpus) == (
        world.org_a.pk, site.pk, world.org_c.pk, 4)
    assert (ticket.value, ticket.buyer_fee, ticket.seller_fee) == (D("49.20"), D("0.07"), D("0.02"))
    assert (ticket.delivery_start, ticket.delivery_end) == (
        world.instrument.delivery_start, world.instrument.delivery_end)
    assert ticket.status == DeliveryTicket.Status.AWAITING_ACCESS

    # Nothing is due before confirmation or the window's end.
    assert deliveries_settle() == 0

    ticket = delivery_access_post(user=world.alice, ticket=ticket, endpoint="ssh gpu@by-1.alice.test",
                                  instructions="Key: see the attached fingerprint")
    assert ticket.status == "access_posted" and ticket.access_posted_late is False
    ticket = delivery_confirm(user=world.charlie, ticket=ticket, now=ticket.delivery_start)
    assert ticket.status == "confirmed"

    assert deliveries_settle() == 1
    assert deliveries_settle() == 0  # idempotent
    ticket.refresh_from_db()
    assert ticket.status == "settled" and ticket.settled_at is not None

    # Payout: Charlie's pending 49.20 goes to the CCP; Alice's 49.18 becomes available.
    assert account_summary(organisation=world.org_c) == {
        "cash_available": D("9950.73"), "cash_reserved": D("0.00"), "settlement_pending": D("0.00"),
        "margin": D("0.00")}
    assert account_summary(organisation=world.org_a) == {
        "cash_available": CASH + D("49.18"), "cash_reserved": D("0.00"), "settlement_pending": D("0.00"),
        "margin": D("0.00")}
    assert house_account(Account.Kind.CCP).balance == D("0.00")
    entry = ticket.settlement_entry
    assert entry is not None and entry.kind == JournalEntry.Kind.SETTLEMENT
    assert entry.reference == f"delivery:{ticket.pk}"
    assert sorted((line.account.organisation_id or 0, line.account.kind, line.amount)
                  for line in entry.lines.all()) \
        == sorted([(world.org_c.pk, "settlement_pending", D("-49.20")), (0, "ccp", D("49.20")),
                   (world.org_a.pk, "settlement_pending", D("-49.18")),
                   (world.org_a.pk, "cash_available", D("49.18"))])

    # No fee invoice per ticket: the fees are invoiced once a month (clearing.services.fees).
    assert not Invoice.objects.exists()

    # Alice's statement of today shows the payout line with its running balance.
    statement = statement_for(organisation=world.org_a, day=local_today())
    payout = [item for item in statement.lines if item.entry_id == entry.pk]
    assert sorted((item.account_kind, item.amount, item.balance) for item in payout) == [
        ("cash_available", D("49.18"), CASH + D("49.18")), ("settlement_pending", D("-49.18"), D("0.00"))]
    assert reconcile() == []


def test_a_dispute_with_a_partial_refund_charged_to_the_seller(world: World, operator):
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=4)
    ticket = ticket_of(trade)
    with pytest.raises(ExchangeError) as refused:
        delivery_dispute(user=world.charlie, ticket=ticket, reason="  ")
    assert refused.value.code == "invalid" and "reason" in refused.value.fields
    ticket = delivery_dispute(user=world.charlie, ticket=ticket, reason="Only 2 of 4 GPUs reachable")
    assert ticket.status == "disputed"
    # A disputed ticket is not paid when its window passes.
    assert deliveries_settle(now=after_window(ticket)) == 0
    with pytest.raises(ExchangeError) as again:
        delivery_confirm(user=world.charlie, ticket=ticket)
    assert again.value.code == "conflict"

    with pytest.raises(ExchangeError) as too_much:
        dispute_resolve(operator=operator, ticket=ticket, refund_amount=D("49.21"), reason="half")
    assert too_much.value.code == "invalid" and "refund_amount" in too_much.value.fields
    with pytest.raises(ExchangeError) as not_operator:
        dispute_resolve(operator=world.alice, ticket=ticket, refund_amount=D("24.60"), reason="half")
    assert not_operator.value.code == "not_permitted"

    ticket = dispute_resolve(operator=operator, ticket=ticket, refund_amount=D("24.60"),
                             reason="Half the GPUs were unreachable all hour")
    assert ticket.status == "settled" and ticket.refund_amount == D("24.60")
    # Refund 24.60 to Charlie; Alice gets 49.18 - 24.60 = 24.58; the CCP is flat again.
    assert account_summary(organisation=world.org_c)["cash_available"] == D("9950.73") + D("24.60")
    assert account_summary(organisation=world.org_c)["settlement_pending"] == D("0.00")
    assert account_summary(organisation=world.org_a)["cash_available"] == CASH + D("24.58")
    assert account_summary(organisation=world.org_a)["settlement_pending"] == D("0.00")
    assert house_account(Account.Kind.CCP).balance == D("0.00")
    assert ticket.settlement_entry is not None and ticket.settlement_entry.kind == "refund"
    log = AuditLog.objects.get(action="delivery.dispute_resolve")
    assert (log.actor_id, log.object_id, log.reason) == (operator.pk, str(ticket.pk),
                                                         "Half the GPUs were unreachable all hour")
    assert log.after["refund_amount"] == "24.60"
    assert not Invoice.objects.exists()  # the fees are invoiced with the month's
    assert deliveries_settle(now=after_window(ticket)) == 0
    assert reconcile() == []


def test_a_full_refund_takes_the_sellers_fee_from_its_available_cash(world: World, operator):
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=4)
    ticket = delivery_dispute(user=world.charlie, ticket=ticket_of(trade), reason="Nothing delivered")
    dispute_resolve(operator=operator, ticket=ticket, refund_amount=D("49.20"), reason="No access at all")
    # Charlie has everything but the fee held (0.07 with VAT) back; Alice bears her own fee 0.02.
    assert account_summary(organisation=world.org_c)["cash_available"] == CASH - D("0.07")
    assert account_summary(organisation=world.org_a)["cash_available"] == CASH - D("0.02")
    assert reconcile() == []


def test_automatic_payout_24_hours_after_delivery_end_with_a_frozen_clock(world: World):
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=4)
    ticket = delivery_access_post(user=world.alice, ticket=ticket_of(trade), endpoint="ssh gpu@by", instructions="")
    deadline = ticket.delivery_end + timedelta(hours=24)
    assert deliveries_settle(now=deadline - timedelta(seconds=1)) == 0
    assert deliveries_settle(now=deadline) == 1  # access on time, never confirmed nor disputed: paid
    ticket.refresh_from_db()
    assert ticket.status == "settled" and ticket.settled_at == deadline and ticket.confirmed_at is None
    assert account_summary(organisation=world.org_a)["cash_available"] == CASH + D("49.18")
    # The buyer's window has closed.
    with pytest.raises(ExchangeError) as late:
        delivery_dispute(user=world.charlie, ticket=ticket, reason="too late", now=deadline + timedelta(seconds=1))
    assert late.value.code == "conflict"
    assert reconcile() == []


def test_the_buyer_may_not_act_after_the_window_even_before_settlement(world: World):
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=1))
    with pytest.raises(ExchangeError) as late:
        delivery_confirm(user=world.charlie, ticket=ticket, now=after_window(ticket))
    assert late.value.code == "conflict"


def test_access_posted_after_delivery_start_is_accepted_and_flagged_late(world: World):
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=1))
    ticket = delivery_access_post(user=world.alice, ticket=ticket, endpoint="https://late.test", instructions="",
                                  now=ticket.delivery_start + timedelta(minutes=5))
    assert ticket.access_posted_late is True


# --- who may do and see what --------------------------------------------------------------------


def test_only_parties_see_a_ticket_and_only_the_buyer_and_operators_its_access(world: World, operator):
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=2))
    delivery_access_post(user=world.alice, ticket=ticket, endpoint="ssh x", instructions="secret")
    assert list(tickets_visible_to(user=world.dora)) == []
    assert [t.pk for t in tickets_visible_to(user=world.charlie)] == [ticket.pk]
    assert [t.pk for t in tickets_visible_to(user=world.vera)] == [ticket.pk]
    assert [t.pk for t in tickets_visible_to(user=operator)] == [ticket.pk]
    readers = {name: may_read_access(user=user, ticket=ticket) for name, user in
               (("alice", world.alice), ("vera", world.vera), ("charlie", world.charlie),
                ("dora", world.dora), ("operator", operator))}
    assert readers == {"alice": False, "vera": False, "charlie": True, "dora": False, "operator": True}


def test_the_wrong_party_or_role_is_refused(world: World):
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=2))
    cases = [
        (lambda: delivery_access_post(user=world.dora, ticket=ticket, endpoint="x", instructions=""), "not_found"),
        (lambda: delivery_access_post(user=world.charlie, ticket=ticket, endpoint="x", instructions=""),
         "not_permitted"),
        (lambda: delivery_access_post(user=world.vera, ticket=ticket, endpoint="x", instructions=""),
         "not_permitted"),
        (lambda: delivery_confirm(user=world.alice, ticket=ticket), "not_permitted"),
        (lambda: delivery_confirm(user=world.dora, ticket=ticket), "not_found"),
        (lambda: delivery_access_post(user=world.bob, ticket=ticket, endpoint="", instructions=""), "invalid"),
    ]
    for call, code in cases:
        with pytest.raises(ExchangeError) as refused:
            call()
        assert refused.value.code == code
    ticket.refresh_from_db()
    assert ticket.status == "awaiting_access" and ticket.access_endpoint == ""


# --- allocation ---------------------------------------------------------------------------------


def test_split_cents_by_largest_remainder_adds_up_exactly():
    assert split_cents(D("1.00"), [1, 1, 1]) == [D("0.34"), D("0.33"), D("0.33")]
    assert split_cents(D("0.05"), [3, 1]) == [D("0.04"), D("0.01")]
    assert split_cents(D("49.20"), [4]) == [D("49.20")]
    parts = split_cents(D("123.47"), [7, 5, 3, 1])
    assert sum(parts) == D("123.47") and parts == [D("54.02"), D("38.58"), D("23.15"), D("7.72")]


def test_a_sale_is_split_over_sites_by_free_capacity_then_site_id(world: World):
    # Alice: BY site 100 (first), plus BW 30 and NW 30 (equal free: lower id first).
    bw = SiteFactory(organisation=world.org_a, state="DE-BW")
    nw = SiteFactory(organisation=world.org_a, state="DE-NW")
    for site in (bw, nw):
        SiteCapacityFactory(site=site, gpu_class=world.instrument.gpu_class, gpus=30)
    by = world.org_a.sites.get(state="DE-BY")
    first = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=90)
    second = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=45,
                        price=D("12.40"))
    tickets = lambda trade: [(t.seller_site_id, t.gpus) for t in trade.delivery_tickets.order_by("pk")]  # noqa: E731
    assert tickets(first) == [(by.pk, 90)]
    # Free now: BY 10, BW 30, NW 30 -> BW 30, NW 15.
    assert tickets(second) == [(bw.pk, 30), (nw.pk, 15)]
    # The money of the second trade over its tickets adds up exactly: V = 12.40 x 45 = 558.00.
    rows = list(second.delivery_tickets.order_by("pk"))
    assert sum(t.value for t in rows) == D("558.00") == second.price * second.quantity
    # The fees on the tickets are what each side moved into its fee reserve for
    # this trade: Charlie's month 1.35 -> 2.025 holds 1.61 -> 2.42 (+0.81),
    # Alice's 0.45 -> 0.675 holds 0.54 -> 0.81 (+0.27).
    assert (second.buyer_fee, second.seller_fee) == (D("0.675"), D("0.225"))
    assert sum(t.buyer_fee for t in rows) == D("0.81") == fee_step(first.buyer_fee, second.buyer_fee)
    assert sum(t.seller_fee for t in rows) == D("0.27") == fee_step(first.seller_fee, second.seller_fee)
    assert reconcile() == []


def test_resale_chains_to_the_resellers_inbound_ticket(world: World):
    # Charlie buys 10 from Alice, then sells 4 of them to Dora: Charlie has no site.
    inbound = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument,
                                   quantity=10))
    resale = spot_trade(seller=world.charlie, buyer=world.dora, instrument=world.instrument, quantity=4,
                        price=D("12.50"))
    ticket = ticket_of(resale)
    assert (ticket.seller_id, ticket.seller_site_id, ticket.source_ticket_id, ticket.gpus) == (
        world.org_c.pk, None, inbound.pk, 4)
    assert ticket.value == D("50.00")
    # Charlie forwards access to Dora, who confirms; each trade settles on its own.
    delivery_access_post(user=world.charlie, ticket=ticket, endpoint="ssh sub@alice", instructions="")
    delivery_confirm(user=world.dora, ticket=ticket, now=ticket.delivery_start)
    assert deliveries_settle() == 1
    inbound.refresh_from_db()
    assert inbound.status == "awaiting_access"
    delivery_access_post(user=world.alice, ticket=inbound, endpoint="ssh gpu@by", instructions="")
    assert deliveries_settle(now=after_window(inbound)) == 1
    assert reconcile() == []


def test_reconcile_reports_a_trade_whose_tickets_do_not_add_up(world: World):
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=4)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clearing_deliveryticket SET gpus = 3 WHERE trade_id = %s", [trade.pk])
    breaches = reconcile()
    # The site's recorded use (4) no longer matches its tickets (3) either.
    assert sorted(b.check for b in breaches) == ["delivered_equals_traded", "site_use_within_capacity"]
    (breach,) = [b for b in breaches if b.check == "delivered_equals_traded"]
    assert f"#{trade.pk}" in breach.detail and "4" in breach.detail and "3" in breach.detail


def test_a_resting_sell_its_sites_cannot_deliver_is_cancelled_and_the_buy_is_not_refused(world: World):
    # Dora offers her 50 Bavarian H100; the capacity row is then cut to 20
    # behind the service's back (the service itself refuses such a cut). No
    # site is allocated more than it has: Dora's sell is cancelled for its own
    # reason, and Charlie's buy is entered as if it had not been there.
    resting = order_submit(user=world.dora, instrument=world.instrument, side="sell", price=D("12.30"),
                           quantity=50).order
    site = world.org_d.sites.get()
    site.capacities.update(gpus=20)
    buy = order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("12.30"),
                       quantity=50).order

    resting.refresh_from_db()
    assert (resting.status, resting.reason) == ("cancelled", "cannot_deliver")
    assert (buy.status, buy.filled_quantity) == ("open", 0)
    assert not world.instrument.trades.exists()
    assert not SiteUsage.objects.filter(gpus__gt=0).exists()
    assert reconcile() == []


def test_a_de_sale_then_a_state_sale_of_the_same_hour_both_get_deliverable_tickets(world: World):
    """Issue 7 item 6: a provider with 10 GPUs in Bavaria and 10 in NRW sells
    10 in DE and then 10 in DE-BY. Its DE tickets are moved out of Bavaria
    to make room, so every ticket names a site that has the GPUs."""
    provider = TraderFactory(is_provider=True).user
    organisation = provider.membership.organisation
    gpu_class = world.instrument.gpu_class
    bavaria = SiteFactory(organisation=organisation, state="DE-BY", name="München")
    nrw = SiteFactory(organisation=organisation, state="DE-NW", name="Köln")
    SiteCapacityFactory(site=bavaria, gpu_class=gpu_class, gpus=10)
    SiteCapacityFactory(site=nrw, gpu_class=gpu_class, gpus=10)
    hour = calendar.hour_at(world.instrument.delivery_start)
    by = OpenInstrumentFactory(gpu_class=gpu_class, zone_code="DE-BY", hour=hour)

    # Bavaria sorts first on a tie (the lower site id): the DE sale lands there.
    order_submit(user=provider, instrument=world.instrument, side="sell", price=D("12.00"), quantity=10)
    order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("12.00"), quantity=10)
    assert SiteUsage.objects.get(site=bavaria).gpus == 10

    order_submit(user=provider, instrument=by, side="sell", price=D("12.00"), quantity=10)
    order_submit(user=world.charlie, instrument=by, side="buy", price=D("12.00"), quantity=10)

    tickets = {t.zone.code: (t.seller_site_id, t.gpus) for t in DeliveryTicket.objects.filter(seller=organisation)}
    assert tickets == {"DE": (nrw.pk, 10), "DE-BY": (bavaria.pk, 10)}
    assert dict(SiteUsage.objects.filter(site__organisation=organisation).values_list("site_id", "gpus")) == {
        bavaria.pk: 10, nrw.pk: 10}
    assert reconcile() == []


def test_a_de_sale_leaves_a_states_own_commitments_free(world: World):
    provider = TraderFactory(is_provider=True).user
    organisation = provider.membership.organisation
    gpu_class = world.instrument.gpu_class
    bavaria = SiteFactory(organisation=organisation, state="DE-BY", name="München")
    nrw = SiteFactory(organisation=organisation, state="DE-NW", name="Köln")
    SiteCapacityFactory(site=bavaria, gpu_class=gpu_class, gpus=10)
    SiteCapacityFactory(site=nrw, gpu_class=gpu_class, gpus=10)
    by = OpenInstrumentFactory(gpu_class=gpu_class, zone_code="DE-BY",
                               hour=calendar.hour_at(world.instrument.delivery_start))
    # A resting DE-BY sell of 6 commits 6 of Bavaria's 10: a DE sale of 14
    # takes NRW's 10 and Bavaria's 4 spare, never the 6 Bavaria still owes.
    order_submit(user=provider, instrument=by, side="sell", price=D("20.00"), quantity=6)
    order_submit(user=provider, instrument=world.instrument, side="sell", price=D("12.00"), quantity=14)
    order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("12.00"), quantity=14)

    used = dict(SiteUsage.objects.filter(site__organisation=organisation).values_list("site_id", "gpus"))
    assert used == {nrw.pk: 10, bavaria.pk: 4}
    order_submit(user=world.charlie, instrument=by, side="buy", price=D("20.00"), quantity=6)
    used = dict(SiteUsage.objects.filter(site__organisation=organisation).values_list("site_id", "gpus"))
    assert used == {nrw.pk: 10, bavaria.pk: 10}
    assert reconcile() == []


# --- the API ------------------------------------------------------------------------------------


def api_as(user):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_shows_tickets_to_their_parties_only_and_access_to_the_buyer_only(world: World, operator):
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=2))
    url = f"/api/v1/deliveries/{ticket.pk}/"

    posted = api_as(world.alice).post(url + "access/", {"endpoint": "ssh gpu@by", "instructions": "key 42"},
                                      format="json")
    assert posted.status_code == 200, posted.json()
    assert posted.json()["status"] == "access_posted"
    assert posted.json()["access_endpoint"] is None  # the seller does not read them back

    # Dora's organisation is no party: 404 on every path, and an empty list.
    dora = api_as(world.dora)
    assert dora.get("/api/v1/deliveries/").json() == []
    for response in (dora.get(url), dora.post(url + "confirm/"), dora.post(url + "dispute/", {"reason": "x"}),
                     dora.post(url + "access/", {"endpoint": "x"})):
        assert response.status_code == 404 and response.json()["code"] == "not_found"

    vera = api_as(world.vera).get(url).json()  # Alice's viewer
    assert (vera["role"], vera["access_endpoint"], vera["access_instructions"]) == ("seller", None, None)
    assert vera["value"] == "24.60" and vera["fee"] == "0.01"  # 0.01 maker, VAT r(0.0019) = 0.00

    buyer = api_as(world.charlie).get("/api/v1/deliveries/").json()
    assert [(row["id"], row["role"], row["access_endpoint"], row["access_instructions"]) for row in buyer] == [
        (ticket.pk, "buyer", "ssh gpu@by", "key 42")]
    assert buyer[0]["fee"] == "0.04" and buyer[0]["instrument"] == world.instrument.symbol
    assert api_as(operator).get(url).json()["access_instructions"] == "key 42"

    # Wrong side: the seller may not confirm; a dispute needs a reason; the buyer confirms once.
    refused = api_as(world.alice).post(url + "confirm/")
    assert refused.status_code == 403 and refused.json()["code"] == "not_permitted"
    blank = api_as(world.charlie).post(url + "dispute/", {"reason": ""}, format="json")
    assert blank.status_code == 400 and "reason" in blank.json()["fields"]
    early = api_as(world.charlie).post(url + "confirm/")  # before delivery start
    assert early.status_code == 409 and early.json()["code"] == "conflict"
    assert "once it has started" in early.json()["detail"] or "sobald sie begonnen hat" in early.json()["detail"]
    start_delivery(ticket)
    confirmed = api_as(world.charlie).post(url + "confirm/")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    again = api_as(world.charlie).post(url + "dispute/", {"reason": "late"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_the_api_dispute(world: World):
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=1))
    response = api_as(world.charlie).post(f"/api/v1/deliveries/{ticket.pk}/dispute/", {"reason": "no access"},
                                          format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["dispute_reason"]) == ("disputed", "no access")


# --- screens and admin --------------------------------------------------------------------------


def test_the_screens_post_access_confirm_and_hide_access_from_the_seller(world: World, client):
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=2))
    url = f"/deliveries/{ticket.pk}/"
    client.force_login(world.alice)
    assert f'href="{url}"' in client.get("/deliveries/").content.decode()
    response = client.post(url, {"action": "access", "endpoint": "ssh geheim@by", "instructions": "Schlüssel 42"})
    assert response.status_code == 302
    page = client.get(url).content.decode()
    assert "ssh geheim@by" not in page and 'name="endpoint"' in page  # the seller's form, not the details

    client.force_login(world.vera)
    assert "ssh geheim@by" not in client.get(url).content.decode()
    client.force_login(world.dora)
    assert client.get(url).status_code == 404
    assert f'href="{url}"' not in client.get("/deliveries/").content.decode()

    client.force_login(world.charlie)
    page = client.get(url).content.decode()
    # Before delivery start: the details, a way to dispute, no confirm button but when it comes.
    assert "ssh geheim@by" in page and "Schlüssel 42" in page and 'value="confirm"' not in page
    assert 'class="confirm-later' in page and 'value="dispute"' in page
    assert client.post(url, {"action": "confirm"}).status_code == 400
    refused = client.post(url, {"action": "dispute", "reason": ""})
    assert refused.status_code == 400
    start_delivery(ticket)
    assert 'value="confirm"' in client.get(url).content.decode()
    assert client.post(url, {"action": "confirm"}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "confirmed"


def next_step(client, url: str) -> str:  # type: ignore[no-untyped-def]
    """The label of the ticket's button in the /deliveries/ list: what the member has to do next."""
    listing = client.get("/deliveries/").content.decode()
    link = rf'<td class="ticket-action">\s*<a class="btn [^"]*" href="{re.escape(url)}">([^<]+)</a>'
    found = re.search(link, listing)
    assert found, listing
    return found.group(1)


def errors_at(page: str, name: str) -> list[str]:
    """The errors shown in the form field that holds the input ``name``."""
    for block in page.split('<div class="field')[1:]:
        if f'name="{name}"' in block.split("</div>")[0]:
            return re.findall(r'<p class="field-error">(.*?)</p>', block.split("</div>")[0])
    raise AssertionError(f"no field {name}")


def test_the_ticket_screens_say_what_to_do_next_and_show_refusals_at_the_fields(world: World, client, settings):
    settings.LANGUAGE_CODE = "en"  # asserted in the msgids
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=2))
    url = f"/deliveries/{ticket.pk}/"

    client.force_login(world.alice)
    assert next_step(client, url) == "Post access details"
    refused = client.post(url, {"action": "access", "endpoint": "  ", "instructions": "Schlüssel 42"})
    page = refused.content.decode()
    assert refused.status_code == 400
    assert errors_at(page, "endpoint") == ["Enter the access endpoint."] and errors_at(page, "instructions") == []
    assert ">Schlüssel 42</textarea>" in page  # what was typed stays
    client.post(url, {"action": "access", "endpoint": "ssh geheim@by", "instructions": ""})
    assert next_step(client, url) == "View"  # posted: the seller waits for the buyer
    page = client.get(url).content.decode()
    assert "ssh geheim@by" not in page and '<details class="access-replace">' in page  # replacing is folded away

    client.force_login(world.charlie)
    assert next_step(client, url) == "View"  # before delivery start: confirming starts then
    DeliveryTicket.objects.filter(pk=ticket.pk).update(delivery_start=timezone.now() - timedelta(minutes=1))
    assert next_step(client, url) == "Confirm or dispute"
    refused = client.post(url, {"action": "dispute", "reason": " "})
    page = refused.content.decode()
    assert refused.status_code == 400
    assert '<details class="dispute" open>' in page and errors_at(page, "reason") == ["Enter a reason."]
    delivery_confirm(user=world.charlie, ticket=ticket, now=timezone.now())
    assert next_step(client, url) == "View"


def test_operators_resolve_a_dispute_in_the_admin(world: World, operator, client):
    ticket = ticket_of(spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=2))
    delivery_dispute(user=world.charlie, ticket=ticket, reason="GPUs missing")
    operator.is_superuser = True
    operator.save()
    client.force_login(operator)
    url = f"/admin/clearing/deliveryticket/{ticket.pk}/resolve/"
    assert "GPUs missing" in client.get(url).content.decode()
    too_much = client.post(url, {"refund_amount": "99.00", "reason": "x"})
    assert too_much.status_code == 200
    ticket.refresh_from_db()
    assert ticket.status == "disputed"
    done = client.post(url, {"refund_amount": "12.30", "reason": "one of two GPUs missing"})
    assert done.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.status, ticket.refund_amount) == ("settled", D("12.30"))
    assert AuditLog.objects.filter(action="delivery.dispute_resolve", reason="one of two GPUs missing").exists()
    assert reconcile() == []
