"""Issue 7 item 9, the settlement policy (docs/architecture.md, "Settlement
policy and payout accounts (issue 7, items 9 and 10)"):

* the buyer confirms only from delivery start (a dispute is possible before);
* a ticket without access details at delivery start is ``not_provided``: not
  paid automatically, refunded in full when the window ends unless the buyer
  confirms or an operator holds and decides it;
* a refund beyond the seller's cash is paid by the clearing house, which books
  a claim against the seller; the seller's next payouts repay it first.

Actors from tests/market/orders_world.py: Alice's organisation sells from its
Bavarian site, Charlie's buys; Otto and Olga are operators. Amounts by hand:
4 H100 at 12.30 for one hour, V = 49.20, seller fee 0.02 (maker 0.005 x 4),
buyer fee 0.06 (taker 0.015 x 4); held for the month's fees with VAT: the
seller 0.02, the buyer 0.07; seller payout 49.18.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import translation

from accounts.models import AuditLog
from clearing.models import Account, DeliveryTicket, JournalEntry, WithdrawalRequest
from clearing.reconcile import reconcile
from clearing.selectors import account_summary
from clearing.services import (
    cash_deposit_book,
    deliveries_settle,
    delivery_access_post,
    delivery_confirm,
    delivery_dispute,
    dispute_resolve,
    house_account,
    withdrawal_cancel,
    withdrawal_request,
)
from clearing.services import delivery as delivery_module
from clearing.services.cash import (
    ccp_claim_collect,
    claim_owed,
    payout_change_approve,
    payout_change_request,
)
from clearing.services.delivery import delivery_hold, tickets_flag_not_provided
from clearing.statements import local_today, statement_for
from exchange.errors import ExchangeError
from tests.factories import UserFactory, spot_trade
from tests.market.orders_world import CASH, World, make_world

D = Decimal
Status = DeliveryTicket.Status


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def world(db: None) -> World:
    return make_world()


@pytest.fixture
def otto(db: None):  # type: ignore[no-untyped-def]
    return UserFactory(email="otto@policy.test", is_staff=True)


@pytest.fixture
def olga(db: None):  # type: ignore[no-untyped-def]
    return UserFactory(email="olga@policy.test", is_staff=True)


def sold_ticket(world: World, quantity: int = 4) -> DeliveryTicket:
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=quantity)
    return trade.delivery_tickets.get()


def after_window(ticket: DeliveryTicket) -> object:
    return ticket.delivery_end + timedelta(hours=24, seconds=1)


def fresh(ticket: DeliveryTicket) -> DeliveryTicket:
    return DeliveryTicket.objects.get(pk=ticket.pk)


def lines_of(entry: JournalEntry) -> list[tuple[int, str, Decimal]]:
    return sorted((line.account.organisation_id or 0, line.account.kind, line.amount) for line in entry.lines.all())


# --- 1. confirm only from delivery start ---------------------------------------------------------


def test_the_buyer_confirms_only_from_delivery_start_and_may_dispute_before(world: World):
    ticket = delivery_access_post(user=world.alice, ticket=sold_ticket(world), endpoint="ssh gpu@by",
                                  instructions="")
    with pytest.raises(ExchangeError) as early:
        delivery_confirm(user=world.charlie, ticket=ticket, now=ticket.delivery_start - timedelta(seconds=1))
    assert early.value.code == "conflict" and early.value.status == 409
    assert "once it has started" in early.value.detail and "dispute it now" in early.value.detail
    assert (fresh(ticket).status, fresh(ticket).confirmed_at) == (Status.ACCESS_POSTED, None)
    # In German, too (the default language).
    with translation.override("de"), pytest.raises(ExchangeError) as german:
        delivery_confirm(user=world.charlie, ticket=ticket, now=ticket.delivery_start - timedelta(hours=1))
    assert "begonnen" in german.value.detail

    confirmed = delivery_confirm(user=world.charlie, ticket=ticket, now=ticket.delivery_start)  # at the start: yes
    assert confirmed.status == Status.CONFIRMED


def test_a_dispute_is_possible_before_delivery_start(world: World):
    ticket = sold_ticket(world)
    disputed = delivery_dispute(user=world.charlie, ticket=ticket, reason="The seller wrote it cannot deliver",
                                now=ticket.delivery_start - timedelta(hours=3))
    assert disputed.status == Status.DISPUTED and disputed.not_provided_at is None


# --- 2. not_provided -----------------------------------------------------------------------------


def test_a_ticket_without_access_at_delivery_start_is_flagged_once(world: World):
    ticket = sold_ticket(world)
    posted = delivery_access_post(user=world.alice, ticket=sold_ticket(world, 2), endpoint="ssh x", instructions="")
    assert tickets_flag_not_provided(now=ticket.delivery_start) == 0  # access is due no later than the start
    assert tickets_flag_not_provided(now=ticket.delivery_start + timedelta(seconds=1)) == 1
    assert tickets_flag_not_provided(now=ticket.delivery_start + timedelta(minutes=5)) == 0  # idempotent
    flagged = fresh(ticket)
    assert (flagged.status, flagged.not_provided_at) == (Status.NOT_PROVIDED, ticket.delivery_start)
    assert fresh(posted).status == Status.ACCESS_POSTED
    with translation.override("de"):
        assert flagged.get_status_display() == "Zugangsdaten nicht bereitgestellt"


def test_not_provided_is_refunded_in_full_at_the_window_end_not_paid(world: World):
    ticket = sold_ticket(world)
    deadline = ticket.delivery_end + timedelta(hours=24)
    assert deliveries_settle(now=deadline - timedelta(seconds=1)) == 0
    assert fresh(ticket).status == Status.NOT_PROVIDED  # the run flagged it on its way
    assert deliveries_settle(now=deadline) == 1
    settled = fresh(ticket)
    assert (settled.status, settled.refund_amount, settled.not_provided_at) == (
        Status.SETTLED, D("49.20"), ticket.delivery_start)
    # Charlie gets the value back (not the fee held, 0.07); Alice bears her fee 0.02 and is paid nothing.
    assert account_summary(organisation=world.org_c)["cash_available"] == CASH - D("0.07")
    assert account_summary(organisation=world.org_a)["cash_available"] == CASH - D("0.02")
    assert settled.settlement_entry is not None and settled.settlement_entry.kind == JournalEntry.Kind.REFUND
    assert lines_of(settled.settlement_entry) == sorted([
        (world.org_c.pk, "settlement_pending", D("-49.20")), (world.org_c.pk, "cash_available", D("49.20")),
        (0, "ccp", D("49.20")), (world.org_a.pk, "settlement_pending", D("-49.18")),
        (world.org_a.pk, "cash_available", D("-0.02"))])
    assert deliveries_settle(now=deadline + timedelta(days=1)) == 0
    assert reconcile() == []


def test_late_access_keeps_not_provided_and_the_buyer_may_confirm_which_pays(world: World):
    ticket = sold_ticket(world)
    late = delivery_access_post(user=world.alice, ticket=ticket, endpoint="ssh late@by", instructions="",
                                now=ticket.delivery_start + timedelta(minutes=10))
    assert (late.status, late.access_posted_late, late.not_provided_at) == (
        Status.NOT_PROVIDED, True, ticket.delivery_start)
    # Not paid automatically even so: without the buyer, a refund at the window's end.
    delivery_confirm(user=world.charlie, ticket=ticket, now=ticket.delivery_start + timedelta(minutes=20))
    assert deliveries_settle(now=after_window(ticket)) == 1  # type: ignore[arg-type]
    assert fresh(ticket).refund_amount is None
    assert account_summary(organisation=world.org_a)["cash_available"] == CASH + D("49.18")
    assert reconcile() == []


def test_late_access_without_confirmation_is_still_refunded(world: World):
    ticket = sold_ticket(world)
    delivery_access_post(user=world.alice, ticket=ticket, endpoint="ssh late@by", instructions="",
                         now=ticket.delivery_start + timedelta(minutes=10))
    assert deliveries_settle(now=after_window(ticket)) == 1  # type: ignore[arg-type]
    assert fresh(ticket).refund_amount == D("49.20")


def test_an_operator_holds_a_not_provided_ticket_and_decides_it(world: World, otto):
    ticket = sold_ticket(world)
    with pytest.raises(ExchangeError) as too_early:
        delivery_hold(operator=otto, ticket=ticket, reason="x", now=ticket.delivery_start - timedelta(minutes=1))
    assert too_early.value.code == "conflict"
    with pytest.raises(ExchangeError) as member:
        delivery_hold(operator=world.alice, ticket=ticket, reason="x", now=ticket.delivery_start + timedelta(hours=1))
    assert member.value.code == "not_permitted"
    held = delivery_hold(operator=otto, ticket=ticket, reason="Seller sent the keys by e-mail; checking",
                         now=ticket.delivery_start + timedelta(hours=1))
    assert (held.status, held.held_by) == (Status.NOT_PROVIDED, otto)
    assert AuditLog.objects.filter(action="delivery.hold", object_id=str(ticket.pk), actor=otto).exists()
    # Held: the window passes and nothing is refunded.
    assert deliveries_settle(now=after_window(ticket)) == 0  # type: ignore[arg-type]
    assert fresh(ticket).status == Status.NOT_PROVIDED
    # The operator decides otherwise: the GPUs were delivered, no refund; the seller is paid.
    done = dispute_resolve(operator=otto, ticket=ticket, refund_amount=D("0.00"),
                           reason="Access was given by e-mail; the buyer used the GPUs",
                           now=after_window(ticket))  # type: ignore[arg-type]
    assert (done.status, done.refund_amount) == (Status.SETTLED, D("0.00"))
    assert account_summary(organisation=world.org_a)["cash_available"] == CASH + D("49.18")
    log = AuditLog.objects.get(action="delivery.dispute_resolve", object_id=str(ticket.pk))
    assert log.before == {"status": Status.NOT_PROVIDED}
    assert reconcile() == []


def test_the_beat_flags_every_minute_and_the_task_calls_the_service(world: World):
    from clearing.tasks import flag_not_provided
    from exchange.celery import app

    entry = app.conf.beat_schedule["clearing-flag-not-provided"]
    assert entry["task"] == "clearing.flag_not_provided" and str(entry["schedule"]._orig_minute) == "*"
    ticket = sold_ticket(world)
    DeliveryTicket.objects.filter(pk=ticket.pk).update(delivery_start=ticket.delivery_start - timedelta(days=2))
    assert flag_not_provided.apply().get() == {"flagged": 1}
    assert fresh(ticket).status == Status.NOT_PROVIDED


def test_the_screens_and_the_api_show_not_provided_without_waiting_for_the_job(world: World, client):
    from rest_framework.test import APIClient

    ticket = sold_ticket(world)
    DeliveryTicket.objects.filter(pk=ticket.pk).update(delivery_start=ticket.delivery_start - timedelta(days=2))
    client.force_login(world.charlie)
    with translation.override("de"):
        listing = client.get("/deliveries/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Zugangsdaten nicht bereitgestellt" in listing
    page = client.get(f"/deliveries/{ticket.pk}/").content.decode()
    assert 'class="card not-provided"' in page and 'value="confirm"' in page  # started: the buyer may confirm
    api = APIClient()
    api.force_authenticate(world.alice)
    body = api.get(f"/api/v1/deliveries/{ticket.pk}/").json()
    assert (body["status"], body["on_hold"]) == ("not_provided", False)
    assert body["not_provided_at"] is not None


def test_a_not_provided_ticket_no_longer_says_access_is_due_at_the_start(world: World, client):
    ticket = sold_ticket(world)
    DeliveryTicket.objects.filter(pk=ticket.pk).update(delivery_start=ticket.delivery_start - timedelta(days=2))
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})

    client.force_login(world.charlie)  # the buyer
    buyer_page = client.get(f"/deliveries/{ticket.pk}/").content.decode()
    client.force_login(world.alice)  # the seller
    seller_page = client.get(f"/deliveries/{ticket.pk}/").content.decode()

    assert "did not post the access details by delivery start" in buyer_page
    assert "Delivery has started without access details. Post them now" in seller_page
    for page in (buyer_page, seller_page):
        assert "no later than delivery start" not in page


def test_the_withdrawals_page_groups_amounts_and_names_no_account_it_does_not_have(world: World, client):
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    client.force_login(world.alice)

    page = client.get("/withdrawals/").content.decode()

    assert "Available: 10,000.00 EUR" in page
    assert "Withdrawals are paid only to this account" not in page  # there is none yet
    assert 'class="stack"' in page  # the cards do not touch


# --- 3. a refund beyond the seller's cash --------------------------------------------------------


def verified_payout_account(world: World, otto, olga) -> None:  # type: ignore[no-untyped-def]
    change = payout_change_request(user=world.alice, iban="DE89 3704 0044 0532 0130 00",
                                   holder_name="Alice Rechenwerk GmbH")
    payout_change_approve(operator=otto, change=change)
    payout_change_approve(operator=olga, change=change)


def test_a_refund_beyond_the_sellers_cash_is_advanced_by_the_ccp_as_a_claim(world: World, otto, olga):
    ticket = sold_ticket(world)
    # Alice takes all but 0.01 of her cash out: the refund's excess over her payout is her fee 0.02.
    verified_payout_account(world, otto, olga)
    withdrawal_request(user=world.alice, amount=CASH - D("0.01"))
    delivery_dispute(user=world.charlie, ticket=ticket, reason="Nothing delivered")

    done = dispute_resolve(operator=otto, ticket=ticket, refund_amount=D("49.20"), reason="No access at all")
    assert done.status == Status.SETTLED  # before issue 7: insufficient_funds, the buyer's money stuck
    assert account_summary(organisation=world.org_c)["cash_available"] == CASH - D("0.07")  # refunded in full
    assert account_summary(organisation=world.org_a)["cash_available"] == D("0.00")  # paid what it had
    assert claim_owed(organisation=world.org_a) == D("0.01")
    assert lines_of(done.settlement_entry) == sorted([  # type: ignore[arg-type]
        (world.org_c.pk, "settlement_pending", D("-49.20")), (world.org_c.pk, "cash_available", D("49.20")),
        (0, "ccp", D("49.20")), (world.org_a.pk, "settlement_pending", D("-49.18")),
        (world.org_a.pk, "cash_available", D("-0.01")), (world.org_a.pk, "ccp_claim", D("-0.01"))])
    assert "advanced 0.01 EUR" in done.settlement_entry.memo  # type: ignore[union-attr]
    assert house_account(Account.Kind.CCP).balance == D("0.00")
    # The claim is not one of the four accounts of GET /api/v1/account/, but the statement shows it.
    assert set(account_summary(organisation=world.org_a)) == {
        "cash_available", "cash_reserved", "settlement_pending", "margin"}
    statement = statement_for(organisation=world.org_a, day=local_today())
    claim = [summary for summary in statement.accounts if summary.kind == "ccp_claim"]
    assert [(row.closing, row.label) for row in claim] == [(D("-0.01"), "claim of the clearing house")]
    assert reconcile() == []


def test_the_sellers_next_payout_repays_the_claim_first(world: World, otto, olga):
    first, second = sold_ticket(world), sold_ticket(world, 2)
    verified_payout_account(world, otto, olga)
    withdrawal_request(user=world.alice, amount=CASH)
    delivery_dispute(user=world.charlie, ticket=first, reason="Nothing delivered")
    dispute_resolve(operator=otto, ticket=first, refund_amount=D("49.20"), reason="No access")
    assert claim_owed(organisation=world.org_a) == D("0.02")
    # While it owes, that much of its cash cannot be withdrawn.
    delivery_access_post(user=world.alice, ticket=second, endpoint="ssh gpu@by", instructions="")
    delivery_confirm(user=world.charlie, ticket=second, now=second.delivery_start)
    assert deliveries_settle() == 1
    # Payout of the second: 2 x 12.30 = 24.60 less the fee held for it, 0.02 (Alice's month goes
    # from 0.02 to 0.03: net 0.03 + VAT 0.01), = 24.58, of which 0.02 repays the claim.
    assert claim_owed(organisation=world.org_a) == D("0.00")
    assert account_summary(organisation=world.org_a)["cash_available"] == D("24.56")
    entry = fresh(second).settlement_entry
    assert (world.org_a.pk, "ccp_claim", D("0.02")) in lines_of(entry)  # type: ignore[arg-type]
    assert reconcile() == []


def owing_alice(world: World, otto, olga) -> None:  # type: ignore[no-untyped-def]
    """Alice's organisation owes the clearing house 0.02 (its fee on a full
    refund it could not pay: all its cash waits in a withdrawal request)."""
    ticket = sold_ticket(world)
    verified_payout_account(world, otto, olga)
    withdrawal_request(user=world.alice, amount=CASH)
    delivery_dispute(user=world.charlie, ticket=ticket, reason="Nothing delivered")
    dispute_resolve(operator=otto, ticket=ticket, refund_amount=D("49.20"), reason="No access")
    assert claim_owed(organisation=world.org_a) == D("0.02")
    assert account_summary(organisation=world.org_a)["cash_available"] == D("0.00")


def test_a_withdrawal_leaves_what_is_owed_and_an_operator_may_collect_it(world: World, otto, olga):
    owing_alice(world, otto, olga)
    # The member cancels its withdrawal: the cash is available again (not a deposit: no repayment).
    withdrawal_cancel(user=world.alice, request=WithdrawalRequest.objects.get(organisation=world.org_a))
    assert account_summary(organisation=world.org_a)["cash_available"] == CASH
    with pytest.raises(ExchangeError) as refused:
        withdrawal_request(user=world.alice, amount=CASH)
    assert refused.value.code == "insufficient_funds" and "9,999.98" in refused.value.fields["amount"][0]
    entry = ccp_claim_collect(operator=olga, organisation=world.org_a, reason="Letter of 3 December")
    assert (entry.kind, lines_of(entry)) == ("claim", sorted([
        (world.org_a.pk, "cash_available", D("-0.02")), (world.org_a.pk, "ccp_claim", D("0.02"))]))
    assert claim_owed(organisation=world.org_a) == D("0.00")
    assert AuditLog.objects.filter(action="ccp_claim_collect", actor=olga, reason="Letter of 3 December").exists()
    with pytest.raises(ExchangeError) as nothing:
        ccp_claim_collect(operator=olga, organisation=world.org_a, reason="again")
    assert nothing.value.code == "conflict"
    withdrawal_request(user=world.alice, amount=CASH - D("0.02"))
    assert reconcile() == []


def test_a_deposit_repays_the_claim_first(world: World, otto, olga):
    owing_alice(world, otto, olga)

    # 0.01 arrives: all of it repays half the claim; nothing reaches available cash.
    small = cash_deposit_book(operator=olga, organisation=world.org_a, amount=D("0.01"), bank_reference="BANK-1")
    assert claim_owed(organisation=world.org_a) == D("0.01")
    assert account_summary(organisation=world.org_a)["cash_available"] == D("0.00")
    # 10.00 arrives: 0.01 repays the rest of the claim, 9.99 is available.
    large = cash_deposit_book(operator=olga, organisation=world.org_a, amount=D("10.00"), bank_reference="BANK-2")
    assert claim_owed(organisation=world.org_a) == D("0.00")
    assert account_summary(organisation=world.org_a)["cash_available"] == D("9.99")
    # Nothing owed any more: a third deposit is only the deposit.
    cash_deposit_book(operator=olga, organisation=world.org_a, amount=D("5.00"), bank_reference="BANK-3")
    assert account_summary(organisation=world.org_a)["cash_available"] == D("14.99")

    # The deposit entry is the transfer as the bank shows it; the repayment is a claim entry beside it.
    org = world.org_a.pk
    assert lines_of(small.entry) == sorted([(org, "cash_available", D("0.01")), (0, "bank", D("-0.01"))])
    assert lines_of(large.entry) == sorted([(org, "cash_available", D("10.00")), (0, "bank", D("-10.00"))])
    repayments = JournalEntry.objects.filter(kind=JournalEntry.Kind.CLAIM, reference=f"claim:{org}").order_by("pk")
    assert [lines_of(entry) for entry in repayments] == [
        sorted([(org, "cash_available", D("-0.01")), (org, "ccp_claim", D("0.01"))]),
        sorted([(org, "cash_available", D("-0.01")), (org, "ccp_claim", D("0.01"))]),
    ]
    assert {entry.actor for entry in repayments} == {olga}
    assert JournalEntry.objects.filter(reference="bank:BANK-3").count() == 1 and repayments.count() == 2
    assert reconcile() == []


def test_a_deposit_locks_the_organisation_before_its_accounts(world: World, olga, monkeypatch):
    from clearing.services import ledger as ledger_module

    calls: list[str] = []
    real_lock, real_post = ledger_module.lock_organisations, ledger_module.ledger_post_all

    def lock(ids):  # type: ignore[no-untyped-def]
        calls.append(f"lock {list(ids)}")
        return real_lock(ids)

    def post(postings, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(f"post {[str(posting.kind) for posting in postings]}")
        return real_post(postings, **kwargs)

    monkeypatch.setattr(ledger_module, "lock_organisations", lock)
    monkeypatch.setattr(ledger_module, "ledger_post_all", post)
    cash_deposit_book(operator=olga, organisation=world.org_a, amount=D("1.00"), bank_reference="BANK-LOCK")

    assert calls == [f"lock {[world.org_a.pk]}", "post ['deposit']"]


# --- 5. the lock order ---------------------------------------------------------------------------


def test_settlement_and_resolution_lock_both_organisations_before_posting(world: World, otto, monkeypatch):
    calls: list[list[int]] = []
    real_lock, real_post = delivery_module.lock_organisations, delivery_module.ledger_post

    def spy_lock(ids):  # type: ignore[no-untyped-def]
        calls.append(sorted(ids))
        return real_lock(ids)

    def spy_post(**kwargs):  # type: ignore[no-untyped-def]
        assert calls, "ledger_post before lock_organisations"
        return real_post(**kwargs)

    monkeypatch.setattr(delivery_module, "lock_organisations", spy_lock)
    monkeypatch.setattr(delivery_module, "ledger_post", spy_post)
    disputed, confirmed = sold_ticket(world), sold_ticket(world, 1)
    delivery_dispute(user=world.charlie, ticket=disputed, reason="broken")
    dispute_resolve(operator=otto, ticket=disputed, refund_amount=D("10.00"), reason="partly")
    delivery_confirm(user=world.charlie, ticket=confirmed, now=confirmed.delivery_start)
    assert deliveries_settle() == 1
    both = sorted([world.org_a.pk, world.org_c.pk])
    assert calls == [both, both]


# --- 6. operators collect a claim in the admin -----------------------------------------------------


def test_an_operator_collects_a_claim_in_the_admin_with_a_reason(world: World, otto, olga, client):
    from django.urls import reverse

    owing_alice(world, otto, olga)
    withdrawal_cancel(user=world.alice, request=WithdrawalRequest.objects.get(organisation=world.org_a))
    olga.is_superuser = True
    olga.save(update_fields=["is_superuser"])
    client.force_login(olga)
    claim = Account.objects.get(organisation=world.org_a, kind=Account.Kind.CCP_CLAIM)
    url = reverse("admin:clearing_account_collect", args=[claim.pk])

    listing = client.get(reverse("admin:clearing_account_changelist")).content.decode()
    assert f'href="{url}"' in listing  # the negative claim links to its page
    # The action leads to the same page, one claim at a time.
    chosen = client.post(reverse("admin:clearing_account_changelist"),
                         {"action": "collect_claim", "_selected_action": [claim.pk]})
    assert chosen.status_code == 302 and chosen["Location"] == url
    page = client.get(url).content.decode()
    assert "0,02 EUR" in page and "10.000,00 EUR" in page  # owed, available (German, the default)

    without_reason = client.post(url, {"reason": ""})
    assert without_reason.status_code == 200 and "reason" in without_reason.context["form"].errors
    assert claim_owed(organisation=world.org_a) == D("0.02")

    done = client.post(url, {"reason": "Letter of 3 December"})
    assert done.status_code == 302
    assert claim_owed(organisation=world.org_a) == D("0.00")
    assert account_summary(organisation=world.org_a)["cash_available"] == CASH - D("0.02")
    assert AuditLog.objects.filter(action="ccp_claim_collect", actor=olga, reason="Letter of 3 December").exists()
    # Nothing owed any more: the service's refusal comes back at the form.
    again = client.post(url, {"reason": "once more"})
    assert again.status_code == 200 and again.context["form"].non_field_errors()
    assert reconcile() == []


def test_the_buyers_list_offers_confirm_only_from_delivery_start(world: World, client):
    ticket = sold_ticket(world)
    delivery_access_post(user=world.alice, ticket=ticket, endpoint="ssh gpu@by", instructions="")
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    client.force_login(world.charlie)

    before = client.get("/deliveries/").content.decode()
    DeliveryTicket.objects.filter(pk=ticket.pk).update(delivery_start=ticket.delivery_start - timedelta(days=2))
    after = client.get("/deliveries/").content.decode()

    assert "Confirm or dispute" not in before and ">View<" in before
    assert "Confirm or dispute" in after
