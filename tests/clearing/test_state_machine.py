"""A hypothesis state machine over the whole clearing house (issue 4, Tests):
random deposits, orders, cancels, amends, expiries, trades, delivery
actions, dispute resolutions, settlements and withdrawals, driven only
through the real services on the real PostgreSQL test database, after which
every invariant holds.

**How it runs against the database (decided, and why).** The test function
takes pytest-django's ``db`` fixture: one transaction for the whole test
(Django's TestCase machinery). The market (two operators, three member
organisations with their traders, two provider sites, two open intraday
instruments, the first deposits) is built once, through the services and
the factories. Each hypothesis example then opens a plain savepoint
(``transaction.savepoint()``) in ``__init__`` and rolls back to it in
``teardown()``, so every example starts from exactly the same books.
A manual savepoint does not push an atomic block, so the services' own
``transaction.atomic(durable=True)`` still sees the test case's block as
the innermost one and is allowed (each becomes a savepoint of its own; a
refused service call rolls back to it, exactly as in production).
Not ``transaction=True``: a flush per example takes seconds and wipes the
rows the migrations seed (delivery zones, the fee schedule), and the
single-connection state machine does not need committed transactions
(the real-thread races have their own tests, test_concurrency.py and
test_settlement.py). ``transaction.on_commit`` broadcasts never run here.

**Determinism.** ``derandomize=True`` (a fixed seed per test) and
``database=None`` (no failing example is stored and replayed), and the
machine's clock is fixed too: it starts at ``T0`` (a Monday in March 2026,
after the seeded fee schedule's ``valid_from``, before the DST switch) and
moves only by the machine's own rules, passed as ``now=`` to every service
that takes it. Nothing depends on the wall clock or on the day the suite runs.

**Draws.** What hypothesis draws never depends on the database: every
rule's arguments are plain integers and choices, mapped to rows inside the
rule (the ``pick``-th resting order, ticket, request ...). No precondition
reads a row: a rule that finds nothing to act on records "nothing to act
on" and does nothing. Hypothesis filters rules by their preconditions when
it draws the next one, so a precondition that read rows made the shape of
that draw depend on them, and any difference between two examples that
share a prefix (row order, timing under load) failed the run with
``FlakyStrategyDefinition``. The two preconditions left read only the
machine's own step counter, jumps and clock, which follow from the draws.

**Rules.** ``opening_book`` (the first step of every example): the providers
offer capacity (resting sells in both instruments), and Charlie buys some at
once. Then, in any order: ``deposit`` (an operator; now and then a bank
reference twice), ``submit`` (a random member, either instrument, buy or
sell, a limit within three ticks of 10.00 so that orders cross often, 1-5
GPUs, GTC/IOC/FOK/GTD, sometimes post-only), ``take`` (another member hits a
resting order at its price), ``resell`` (a member offers its long position
again: resale without a site, delivered through ``source_ticket``),
``cancel``, ``amend``, ``access_post`` / ``confirm`` / ``dispute`` (mostly by
the right party, sometimes by the other side or a third organisation),
``resolve`` (an operator decides a dispute or a ticket whose access never
came, refund 0-100 %), ``hold`` (an operator stops the automatic refund of a
``not_provided`` ticket), ``settle`` (the settlement job),
``withdrawal_request`` (the owner, herself or entered by an operator, often
decided at once) and ``withdrawal_decide`` (approve by either operator, so
the four-eyes refusal comes up; reject; the owner cancels).

**The clock.** ``tick`` moves it by minutes and runs the expiry job
(``orders_expire``). ``start_delivery`` jumps into the next instrument's
delivery hour: from then on its buyers may confirm (not before: a confirm
before delivery start is ``conflict``), and its tickets still without access
details count as ``not_provided`` (refunded in full when the window passes,
unless held or decided). ``pass_window`` jumps past the 24-hour confirmation
window of the next instrument (the first at most after 10 steps, the second
after 20): that instrument is then closed for orders (``instrument_closed``,
an expected refusal; the expiry job takes its resting orders off the book),
its undisputed tickets become due for automatic settlement, and its buyers
can no longer confirm or dispute (``conflict``).

**Refusals.** Every service call that raises ``ExchangeError`` must leave the
database exactly as it was (``_snapshot``: every balance, every order's
state, every ticket's state, the counts of entries, lines, trades, positions,
invoices, deposits, withdrawals and audit rows). Where the outcome can be
predicted (delivery actions by status and clock, a withdrawal above the
available cash less what the member owes the clearing house, the four-eyes
rule, a settlement run's count) the machine asserts it. A refund above what
the seller can pay is never refused: the clearing house advances the rest
and books a claim against the seller (``ccp_claim``).

**Invariants** (after every step): ``clearing.reconcile.reconcile(now=<the
machine's clock>)`` finds no breach — entries balance, accounts sum to zero,
balances equal their lines, reserved cash equals the open buy orders', nothing
negative, invoices consecutive, delivered GPUs equal traded GPUs, the CCP
carries minus the value of the unsettled tickets, each member's
settlement_pending the value it still waits for, the fee accruals exactly the
fees of the trades and the fee reserves what the uncharged months hold,
positions equal the totals of the trades, no site delivers more than its
capacity in an hour not yet over (issue 7 item 8 moved these invariants from
the machine into reconcile). The machine checks what reconcile
does not: per order 0 <= filled <= quantity, filled equals its trades, status
``filled`` exactly when nothing is open, a resting buy holds exactly the
reservation of its open quantity, everything else holds none; each trade's
tickets add up to its quantity, value and fees, and no inbound ticket is
resold beyond its GPUs; the bank minus deposits net of approved withdrawals,
withdrawal_pending the open requests, no claim of the clearing house in a
member's favour; each organisation's money (claims included) equals a shadow
model (deposits - payouts - fees held + proceeds - delivered value +
refunds), and its fee reserve the fee steps on its tickets; each ticket
carries its trade's fee steps (the trade entry's fee_reserve lines, each at
most the cap of ``clearing.fees``); each settled ticket has one settlement
entry, and settlement issues no invoice. At the end of every example the
month is charged (``fees_charge_month``): each member exactly what its
reserve held, one invoice whose lines sum to the net, reconcile clean the
day after, and a second run charges nothing.

Runtime: about 60-110 s on two cores (45 examples of up to 40 steps; with 30
the fixed examples stopped reaching "dispute: ok" once the incentives app was
installed).
Shrinking is off by default (see ``PHASES``): a failure prints its whole
unshrunk example, every step with its arguments.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar

import pytest
from django.db import transaction
from django.db.models import Q
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.models import AuditLog, KycCase, Organisation, User
from clearing import fees
from clearing.models import (
    Account,
    CashDeposit,
    DeliveryTicket,
    FeeAccrual,
    Invoice,
    InvoiceSequence,
    JournalEntry,
    JournalLine,
    WithdrawalRequest,
)
from clearing.reconcile import reconcile
from clearing.selectors import fee_rates_at, house_balances
from clearing.services import (
    cash_deposit_book,
    deliveries_settle,
    delivery_access_post,
    delivery_confirm,
    delivery_dispute,
    dispute_resolve,
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_reject,
    withdrawal_request,
)
from clearing.services.cash import payout_change_approve, payout_change_request
from clearing.services.delivery import delivery_hold
from clearing.services.fees import fees_charge_month, month_bounds, month_of
from exchange.errors import ExchangeError
from market import calendar as market_calendar
from market.models import RESTING_STATUSES, DeliveryZone, Instrument, Order, OrderStatus, Position, Trade
from market.services.orders import order_amend, order_cancel, order_submit, orders_expire
from tests.factories import (
    GpuClassFactory,
    HourInstrumentFactory,
    MembershipFactory,
    OrganisationFactory,
    SiteCapacityFactory,
    SiteFactory,
    UserFactory,
)

D = Decimal
ZERO = D("0.00")
BERLIN = market_calendar.BERLIN
# The machine's clock starts here: Monday 2 March 2026, 09:00 in Berlin.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=BERLIN)
BASE_PRICE = D("10.00")
IBAN = "DE89370400440532013000"
Status = DeliveryTicket.Status
# The buyer may still confirm or dispute, the seller (re)post access.
OPEN = (Status.AWAITING_ACCESS, Status.ACCESS_POSTED, Status.NOT_PROVIDED)
WINDOW = timedelta(hours=24)
# A member's money in every state; the claim of the clearing house is negative while it owes.
# The fee reserve (what is held for the month's fees) is checked on its own.
MEMBER_MONEY_KINDS = (Account.Kind.CASH_AVAILABLE, Account.Kind.CASH_RESERVED, Account.Kind.SETTLEMENT_PENDING,
                      Account.Kind.MARGIN, Account.Kind.WITHDRAWAL_PENDING, Account.Kind.CCP_CLAIM)

_bank_serial = itertools.count(1)


# --- the market, built once per test ----------------------------------------------------------


@dataclass
class Market:
    instruments: list[Instrument]      # A: H100 zone DE on 3 March, B: H100 zone DE-BY on 5 March
    organisations: list[Organisation]  # Alpha (provider, 8 GPUs in Bavaria), Cumulus (buyer), Delta (6 in Hesse)
    owners: list[User]                 # the owner of each organisation (trader too)
    traders: list[User]                # alice, bob (both Alpha), charlie (Cumulus), dora (Delta)
    operators: list[User]              # Olga and Otto


def build_market() -> Market:
    for code in ("DE", "DE-BY"):
        DeliveryZone.objects.get_or_create(code=code, defaults={"name": code})
    h100 = GpuClassFactory(code="H100")
    instruments = [
        HourInstrumentFactory(gpu_class=h100, zone_code=zone, opens_at=T0 - timedelta(hours=1),
                              hour=market_calendar.delivery_hour(day, "14"))
        for zone, day in (("DE", date(2026, 3, 3)), ("DE-BY", date(2026, 3, 5)))
    ]
    approved = KycCase.Status.APPROVED
    alpha = OrganisationFactory(legal_name="Alpha Rechenzentren GmbH", kyc__status=approved)
    cumulus = OrganisationFactory(legal_name="Cumulus KI GmbH", kyc__status=approved)
    delta = OrganisationFactory(legal_name="Delta Compute AG", kyc__status=approved)
    alice = UserFactory(email="alice@machine.test", full_name="Alice")
    MembershipFactory(user=alice, organisation=alpha, is_owner=True, is_trader=True, is_provider=True)
    bob = UserFactory(email="bob@machine.test", full_name="Bob")
    MembershipFactory(user=bob, organisation=alpha, is_trader=True)
    charlie = UserFactory(email="charlie@machine.test", full_name="Charlie")
    MembershipFactory(user=charlie, organisation=cumulus, is_owner=True, is_trader=True)
    dora = UserFactory(email="dora@machine.test", full_name="Dora")
    MembershipFactory(user=dora, organisation=delta, is_owner=True, is_trader=True, is_provider=True)
    # Small capacities, so that sells are refused now and then (insufficient_capacity);
    # Delta's Hessian site cannot deliver the Bavarian instrument B at all.
    SiteCapacityFactory(site=SiteFactory(organisation=alpha, state=Organisation.State.BY), gpu_class=h100, gpus=8)
    SiteCapacityFactory(site=SiteFactory(organisation=delta, state=Organisation.State.HE), gpu_class=h100, gpus=6)
    olga = UserFactory(email="olga@operator.machine.test", full_name="Olga", is_staff=True)
    otto = UserFactory(email="otto@operator.machine.test", full_name="Otto", is_staff=True)
    # Little cash, so that buys and withdrawals are refused now and then (insufficient_funds);
    # Delta starts with none, so that a refund above its payout can find its cash short.
    for organisation, amount in ((alpha, "300.00"), (cumulus, "400.00")):
        cash_deposit_book(operator=olga, organisation=organisation, amount=D(amount),
                          bank_reference=f"MACHINE-START-{organisation.pk}")
    # Withdrawals are paid to a verified payout account only: each owner asks, two operators approve.
    for organisation, owner in ((alpha, alice), (cumulus, charlie), (delta, dora)):
        change = payout_change_request(user=owner, iban=IBAN, holder_name=organisation.legal_name)
        payout_change_approve(operator=olga, change=change)
        payout_change_approve(operator=otto, change=change)
    return Market(instruments=instruments, organisations=[alpha, cumulus, delta], owners=[alice, charlie, dora],
                  traders=[alice, bob, charlie, dora], operators=[olga, otto])


# --- what the database holds ------------------------------------------------------------------


def _snapshot() -> tuple[Any, ...]:
    """Everything a service call could write; equal before and after a refusal."""
    return (
        tuple(Account.objects.order_by("pk").values_list("pk", "balance")),
        JournalEntry.objects.count(),
        JournalLine.objects.count(),
        tuple(Order.objects.order_by("pk").values_list(
            "pk", "status", "price", "quantity", "filled_quantity", "reserved_amount", "priority")),
        Trade.objects.count(),
        tuple(Position.objects.order_by("pk").values_list("pk", "quantity", "bought", "sold")),
        tuple(DeliveryTicket.objects.order_by("pk").values_list(
            "pk", "status", "access_endpoint", "refund_amount", "settled_at")),
        Invoice.objects.count(),
        tuple(InvoiceSequence.objects.order_by("year").values_list("year", "last_number")),
        tuple(WithdrawalRequest.objects.order_by("pk").values_list("pk", "status")),
        CashDeposit.objects.count(),
        AuditLog.objects.count(),
    )


def _balance(organisation_id: int | None, kind: str) -> Decimal:
    return (Account.objects.filter(organisation_id=organisation_id, kind=kind)
            .values_list("balance", flat=True).first()) or ZERO


def _pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)]


picks = st.integers(min_value=0, max_value=10_000)
# Who acts on a delivery ticket: mostly the right party.
actors = st.sampled_from(["right party"] * 4 + ["other side", "third party"])
# Refunds in per cent of the ticket's value: none, part, all (the seller pays above its payout).
refunds = st.sampled_from([0, 25, 50, 99, 100, 100])


class ClearingMachine(RuleBasedStateMachine):
    """One example: a short life of the exchange from the same starting books."""

    market: ClassVar[Market]
    stats: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.savepoint = transaction.savepoint()
        self.now = T0
        self.steps = 0
        self.jumps = 0
        self.bank_references: list[str] = []
        # The shadow model of the money that crossed the clearing bank, per organisation.
        self.deposited: dict[int, Decimal] = defaultdict(lambda: ZERO)
        self.paid_out: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for organisation_id, amount in CashDeposit.objects.values_list("organisation_id", "amount"):
            self.deposited[organisation_id] += amount
        self.taker_rate = fee_rates_at(T0).taker

    def teardown(self) -> None:
        self.stats["resale tickets"] += DeliveryTicket.objects.filter(source_ticket__isnull=False).count()
        try:
            self._charge_the_month()
        finally:
            transaction.savepoint_rollback(self.savepoint)

    def _charge_the_month(self) -> None:
        """The month ends: every member is charged exactly what its fee
        reserve held, on one invoice whose lines sum to the net, and
        reconcile stays clean (also the next day, when the month must be
        charged). A second run charges nothing."""
        month = month_of(T0)
        end = month_bounds(month)[1]
        reserves = dict(Account.objects.filter(kind=Account.Kind.FEE_RESERVE).values_list("organisation_id",
                                                                                           "balance"))
        accruals = list(FeeAccrual.objects.filter(month=month))
        assert fees_charge_month(month=month, now=end + timedelta(minutes=30)) == len(accruals)
        assert fees_charge_month(month=month, now=end + timedelta(hours=1)) == 0
        for accrual in FeeAccrual.objects.filter(month=month).select_related("invoice", "entry"):
            assert accrual.charged_at is not None
            assert reserves.get(accrual.organisation_id, ZERO) == accrual.held == fees.fee_held(accrual.accrued)
            net = fees.to_cents(accrual.accrued)
            if accrual.held:
                invoice = accrual.invoice
                assert invoice is not None and (invoice.net_total, invoice.gross_total) == (net, accrual.held)
                assert sum(line.amount for line in invoice.lines.all()) == net
                self.stats["monthly invoices"] += 1
        assert not Account.objects.filter(kind=Account.Kind.FEE_RESERVE).exclude(balance=0).exists()
        breaches = reconcile(now=end + timedelta(days=2))
        assert breaches == [], "\n".join(f"{breach.check}: {breach.detail}" for breach in breaches)

    # --- helpers ---------------------------------------------------------------------------

    def _attempt(self, label: str, action: Any) -> tuple[Any, ExchangeError | None]:
        """Run a service call; a refusal must have written nothing."""
        before = _snapshot()
        try:
            result = action()
        except ExchangeError as error:
            assert _snapshot() == before, f"{label} was refused ({error.code}: {error.detail}) but wrote"
            event(f"{label}: refused {error.code}")
            self.stats[f"{label}: refused"] += 1
            self.stats[f"{label}: refused {error.code}"] += 1
            return None, error
        event(f"{label}: ok")
        self.stats[f"{label}: ok"] += 1
        return result, None

    def _owner_of(self, organisation_id: int) -> User:
        index = [organisation.pk for organisation in self.market.organisations].index(organisation_id)
        return self.market.owners[index]

    def _third_party(self, ticket: DeliveryTicket) -> User:
        for organisation, owner in zip(self.market.organisations, self.market.owners, strict=True):
            if organisation.pk not in (ticket.buyer_id, ticket.seller_id):
                return owner
        raise AssertionError("every ticket has a third organisation in this market")

    def _step(self) -> None:
        self.steps += 1

    def _nothing(self, label: str) -> None:
        """A rule found no row to act on: it does nothing (see "Draws" in the module docstring)."""
        event(f"{label}: nothing to act on")
        self.stats[f"{label}: nothing to act on"] += 1
        self._step()

    # --- cash --------------------------------------------------------------------------------

    @rule(who=st.integers(0, 2), cents=st.integers(100, 40_000), duplicate=st.sampled_from([False] * 4 + [True]),
          operator=st.integers(0, 1))
    def deposit(self, who: int, cents: int, duplicate: bool, operator: int) -> None:
        """An operator books money that arrived at the bank; now and then a bank reference twice."""
        organisation = self.market.organisations[who]
        amount = D(cents) / 100
        repeat = duplicate and bool(self.bank_references)
        reference = self.bank_references[-1] if repeat else f"MACHINE-{next(_bank_serial)}"
        _result, error = self._attempt("deposit", lambda: cash_deposit_book(
            operator=self.market.operators[operator], organisation=organisation, amount=amount,
            bank_reference=reference))
        if repeat:
            assert error is not None and error.code == "invalid" and "bank_reference" in error.fields
        else:
            assert error is None, error
            self.bank_references.append(reference)
            self.deposited[organisation.pk] += amount
        self._step()

    @rule(who=st.integers(0, 2), cents=st.integers(100, 60_000), entered=st.integers(0, 2),
          then=st.sampled_from(["leave", "approve", "approve", "reject"]), operator=st.integers(0, 1))
    def withdrawal_request(self, who: int, cents: int, entered: int, then: str, operator: int) -> None:
        """The owner asks for a payout, herself or through an operator (entered_by);
        mostly an operator decides at once, else it waits for ``withdrawal_decide``."""
        organisation = self.market.organisations[who]
        amount = D(cents) / 100
        entered_by = None if entered == 0 else self.market.operators[entered - 1]
        # What the organisation owes the clearing house (a refund it could not pay) stays in.
        owed = max(-_balance(organisation.pk, Account.Kind.CCP_CLAIM), ZERO)
        available = _balance(organisation.pk, Account.Kind.CASH_AVAILABLE) - owed
        request, error = self._attempt("withdrawal request", lambda: withdrawal_request(
            user=self.market.owners[who], amount=amount, entered_by=entered_by))
        if amount <= available:
            assert error is None, error
            if then != "leave":
                self._decide(request, then, self.market.operators[operator])
        else:
            assert error is not None and error.code == "insufficient_funds", error
        self._step()

    @rule(pick=picks, decision=st.sampled_from(["approve", "approve", "approve", "reject", "cancel"]),
          operator=st.integers(0, 1))
    def withdrawal_decide(self, pick: int, decision: str, operator: int) -> None:
        """A later decision on an open request (mostly) or on one already decided (conflict)."""
        requests = list(WithdrawalRequest.objects.order_by("pk"))
        if not requests:
            return self._nothing("withdrawal decide")
        open_requests = [request for request in requests if request.status == WithdrawalRequest.Status.REQUESTED]
        self._decide(_pick(open_requests or requests, pick), decision, self.market.operators[operator])
        self._step()

    def _decide(self, request: WithdrawalRequest, decision: str, operator: User) -> None:
        """Approve (a second operator: never the one who entered it), reject, or the owner cancels."""
        still_open = WithdrawalRequest.objects.get(pk=request.pk).status == WithdrawalRequest.Status.REQUESTED
        if decision == "approve":
            _result, error = self._attempt("withdrawal approve", lambda: withdrawal_approve(
                operator=operator, request=request))
            if operator.pk == request.entered_by_id:
                assert error is not None and error.code == "not_permitted", error
            elif not still_open:
                assert error is not None and error.code == "conflict", error
            else:
                assert error is None, error
                self.paid_out[request.organisation_id] += request.amount
        elif decision == "reject":
            _result, error = self._attempt("withdrawal reject", lambda: withdrawal_reject(
                operator=operator, request=request, reason="Kontoinhaber stimmt nicht"))
            assert (error is None) == still_open, error
        else:
            owner = self._owner_of(request.organisation_id)
            _result, error = self._attempt("withdrawal cancel", lambda: withdrawal_cancel(user=owner, request=request))
            assert (error is None) == still_open, error

    # --- orders ------------------------------------------------------------------------------

    @rule(who=st.integers(0, 3), which=st.integers(0, 1), side=st.sampled_from(["buy", "sell"]),
          ticks=st.integers(-3, 3), quantity=st.integers(1, 5),
          tif=st.sampled_from(["GTC", "GTC", "GTC", "IOC", "FOK", "GTD"]),
          post_only=st.sampled_from([False, False, False, True]), lifetime=st.integers(5, 240))
    def submit(self, who: int, which: int, side: str, ticks: int, quantity: int, tif: str, post_only: bool,
               lifetime: int) -> None:
        """A random limit order close to 10.00 EUR/GPUh, so that orders cross often."""
        user = self.market.traders[who]
        instrument = self.market.instruments[which]
        price = BASE_PRICE + ticks * instrument.tick_size
        expires_at = self.now + timedelta(minutes=lifetime) if tif == "GTD" else None
        trades_before = Trade.objects.count()
        result, error = self._attempt("submit", lambda: order_submit(
            user=user, instrument=instrument, side=side, price=price, quantity=quantity, time_in_force=tif,
            expires_at=expires_at, post_only=post_only, now=self.now))
        if error is None:
            assert result.created
            order = Order.objects.get(pk=result.order.pk)
            assert 0 <= order.filled_quantity <= order.quantity == quantity
            if tif in ("IOC", "FOK"):
                assert order.status not in RESTING_STATUSES
                assert order.reserved_amount == ZERO
            if tif == "FOK":
                assert order.filled_quantity == quantity
            if post_only:
                assert order.filled_quantity == 0
            new_trades = Trade.objects.count() - trades_before
            if new_trades:
                event("submit: traded")
                self.stats["trades"] += new_trades
        self._step()

    @initialize(alpha_a=st.integers(1, 5), delta_a=st.integers(1, 5), alpha_b=st.integers(1, 5),
                ticks=st.lists(st.integers(-3, 3), min_size=3, max_size=3), charlie_buys=st.integers(0, 4))
    def opening_book(self, alpha_a: int, delta_a: int, alpha_b: int, ticks: list[int], charlie_buys: int) -> None:
        """The providers offer capacity first (resting GTC sells), so that buys find
        something, and Charlie takes some of it at once (delivery tickets from the start)."""
        alice, _bob, charlie, dora = self.market.traders
        first, second = self.market.instruments
        for user, instrument, quantity, tick in ((alice, first, alpha_a, ticks[0]), (dora, first, delta_a, ticks[1]),
                                                 (alice, second, alpha_b, ticks[2])):
            _result, error = self._attempt("submit", partial(
                order_submit, user=user, instrument=instrument, side="sell",
                price=BASE_PRICE + tick * instrument.tick_size, quantity=quantity, now=self.now))
            assert error is None, error
        if charlie_buys:
            result, error = self._attempt("submit", lambda: order_submit(
                user=charlie, instrument=first, side="buy", price=BASE_PRICE + 3 * first.tick_size,
                quantity=charlie_buys, time_in_force="IOC", now=self.now))
            assert error is None and result.order.filled_quantity == min(charlie_buys, alpha_a + delta_a), error
            self.stats["trades"] += Trade.objects.filter(buy_order=result.order).count()
        self._step()

    @rule(pick=picks, who=st.integers(0, 3), quantity=st.integers(1, 5),
          tif=st.sampled_from(["GTC", "IOC", "FOK"]))
    def take(self, pick: int, who: int, quantity: int, tif: str) -> None:
        """Another member hits a resting order at its price: a trade, unless refused
        (no cash, no capacity, self-trade prevention, a FOK short of liquidity)."""
        resting = list(Order.objects.filter(status__in=RESTING_STATUSES).select_related("instrument").order_by("pk"))
        if not resting:
            return self._nothing("take")
        order = _pick(resting, pick)
        user = self.market.traders[who]
        side = "sell" if order.side == "buy" else "buy"
        trades_before = Trade.objects.count()
        _result, error = self._attempt("take", lambda: order_submit(
            user=user, instrument=order.instrument, side=side, price=order.price, quantity=quantity,
            time_in_force=tif, now=self.now))
        if error is None:
            self.stats["trades"] += Trade.objects.count() - trades_before
        self._step()

    @rule(pick=picks, ticks=st.integers(-3, 3), quantity=st.integers(1, 5), taken=st.booleans())
    def resell(self, pick: int, ticks: int, quantity: int, taken: bool) -> None:
        """A member with a long position offers (part of) it again: resale, which needs no
        site, and whose trades are delivered from its own inbound tickets (source_ticket).
        Often another member buys it at once."""
        longs = list(Position.objects.filter(quantity__gt=0).order_by("pk"))
        if not longs:
            return self._nothing("resell")
        position = _pick(longs, pick)
        instrument = next(i for i in self.market.instruments if i.pk == position.instrument_id)
        offered = sum(order.quantity - order.filled_quantity for order in Order.objects.filter(
            organisation_id=position.organisation_id, instrument=instrument, side="sell",
            status__in=RESTING_STATUSES))
        quantity = min(quantity, max(1, position.quantity - offered))  # beyond the position: refused
        price = BASE_PRICE + ticks * instrument.tick_size
        trades_before = Trade.objects.count()
        result, error = self._attempt("resell", lambda: order_submit(
            user=self._owner_of(position.organisation_id), instrument=instrument, side="sell", price=price,
            quantity=quantity, now=self.now))
        if position.quantity - offered >= quantity and instrument.accepts_orders_at(self.now):
            # Covered by the long position: no site needed, never insufficient_capacity.
            assert error is None, error
        else:  # beyond the position: only a member with free site capacity may sell it
            assert error is None or error.code in ("insufficient_capacity", "instrument_closed"), error
        if error is None and taken and result.order.status in RESTING_STATUSES:
            buyers = [owner for organisation, owner in zip(self.market.organisations, self.market.owners, strict=True)
                      if organisation.pk != position.organisation_id]
            self._attempt("take", lambda: order_submit(
                user=_pick(buyers, pick), instrument=instrument, side="buy", price=price,
                quantity=quantity - result.order.filled_quantity, time_in_force="IOC", now=self.now))
        self.stats["trades"] += Trade.objects.count() - trades_before
        self._step()

    @rule(pick=picks, resting=st.sampled_from([True, True, True, False]))
    def cancel(self, pick: int, resting: bool) -> None:
        """Cancel a resting order (mostly) or one already out of the book (order_not_open)."""
        orders = list(Order.objects.order_by("pk"))
        if not orders:
            return self._nothing("cancel")
        candidates = [order for order in orders if order.status in RESTING_STATUSES] if resting else orders
        order = _pick(candidates or orders, pick)
        was_resting = order.status in RESTING_STATUSES
        reserved_before = _balance(order.organisation_id, Account.Kind.CASH_RESERVED)
        available_before = _balance(order.organisation_id, Account.Kind.CASH_AVAILABLE)
        _result, error = self._attempt("cancel", lambda: order_cancel(
            user=self._owner_of(order.organisation_id), order_id=order.pk, now=self.now))
        if not was_resting:
            assert error is not None and error.code == "order_not_open", error
        else:
            assert error is None, error
            after = Order.objects.get(pk=order.pk)
            assert (after.status, after.reserved_amount) == (OrderStatus.CANCELLED, ZERO)
            # The whole reservation goes back to available cash.
            released = order.reserved_amount
            assert _balance(order.organisation_id, Account.Kind.CASH_RESERVED) == reserved_before - released
            assert _balance(order.organisation_id, Account.Kind.CASH_AVAILABLE) == available_before + released
        self._step()

    @rule(pick=picks, quantity=st.none() | st.integers(1, 6), ticks=st.none() | st.integers(-3, 3))
    def amend(self, pick: int, quantity: int | None, ticks: int | None) -> None:
        """Change a resting order's quantity and/or price (it may trade, or be refused)."""
        orders = list(Order.objects.order_by("pk"))
        if not orders:
            return self._nothing("amend")
        resting = [order for order in orders if order.status in RESTING_STATUSES]
        order = _pick(resting or orders, pick)
        price = None if ticks is None else BASE_PRICE + ticks * D("0.01")
        trades_before = Trade.objects.count()
        _result, error = self._attempt("amend", lambda: order_amend(
            user=self._owner_of(order.organisation_id), order_id=order.pk, quantity=quantity, price=price,
            now=self.now))
        if quantity is None and price is None:
            assert error is not None and error.code == "invalid", error
        elif order.status not in RESTING_STATUSES:
            assert error is not None and error.code == "order_not_open", error
        if error is None:
            self.stats["trades"] += Trade.objects.count() - trades_before
        self._step()

    # --- the clock and the expiry job --------------------------------------------------------

    @rule(minutes=st.integers(0, 180))
    def tick(self, minutes: int) -> None:
        """Time passes and the expiry job runs: GTD orders past their time and every
        order of a closed instrument leave the book, their reservations released."""
        self.now += timedelta(minutes=minutes)
        self._expire()
        self._step()

    def _expire(self) -> None:
        due = Order.objects.filter(status__in=RESTING_STATUSES).filter(
            Q(expires_at__lte=self.now) | Q(instrument__closes_at__lte=self.now)).count()
        expired, error = self._attempt("expire", lambda: orders_expire(now=self.now))
        assert error is None and expired == due, (error, expired, due)
        assert orders_expire(now=self.now) == 0  # idempotent
        self.stats["expired orders"] += expired

    @precondition(lambda self: self.jumps < 2 and self.steps >= 5 + 10 * self.jumps
                  and self.now < self.market.instruments[self.jumps].delivery_start)
    @rule(minutes=st.integers(0, 59), confirm=st.none() | picks)
    def start_delivery(self, minutes: int, confirm: int | None) -> None:
        """Jump into the next instrument's delivery hour: its book is closed,
        its buyers may confirm now (often one does at once), and its tickets
        without access are ``not_provided``."""
        self.now = self.market.instruments[self.jumps].delivery_start + timedelta(minutes=minutes)
        event(f"clock jumped into the delivery of instrument {self.jumps + 1}")
        self._expire()
        ticket = None if confirm is None else self._ticket(confirm, OPEN, started=True)
        if ticket is not None:
            self._confirm(ticket, "right party")
        self._step()

    @precondition(lambda self: self.jumps < 2 and self.steps >= 10 * (self.jumps + 1))
    @rule(settle=st.booleans())
    def pass_window(self, settle: bool) -> None:
        """Jump past the next instrument's confirmation window (24 h after its delivery end)."""
        instrument = self.market.instruments[self.jumps]
        self.now = max(self.now, instrument.delivery_end + timedelta(hours=24, minutes=1))
        self.jumps += 1
        event(f"clock jumped past instrument {self.jumps}")
        self._expire()
        if settle:
            self._settle()
        self._step()

    # --- delivery and settlement ---------------------------------------------------------------

    def _status(self, ticket: DeliveryTicket) -> str:
        """The ticket's status as the services see it now: a ticket still
        awaiting access after its delivery start is ``not_provided`` (the
        services flag it lazily, the beat job every minute)."""
        if ticket.status == Status.AWAITING_ACCESS and ticket.delivery_start < self.now:
            return Status.NOT_PROVIDED
        return ticket.status

    def _ticket(self, pick: int, statuses: tuple[str, ...] | None = None, *, started: bool = False,
                ) -> DeliveryTicket | None:
        """The ``pick``-th ticket in one of ``statuses`` (mostly), else of all; None without tickets.
        With ``started``, tickets whose delivery has started and whose window is open come first."""
        tickets = list(DeliveryTicket.objects.order_by("pk"))
        preferred = [ticket for ticket in tickets if statuses is None or self._status(ticket) in statuses]
        if started:
            preferred = [ticket for ticket in preferred
                         if ticket.delivery_start <= self.now <= ticket.delivery_end + WINDOW] or preferred
        return _pick(preferred or tickets, pick) if tickets else None

    def _actor(self, ticket: DeliveryTicket, side: str, actor: str) -> tuple[User, str | None]:
        """Who acts on the ticket, and the refusal that actor must get: mostly
        the right party, sometimes the other side (not_permitted) or a third
        organisation, for which the ticket does not exist (not_found)."""
        other = "buyer" if side == "seller" else "seller"
        if actor == "other side":
            return self._owner_of(getattr(ticket, f"{other}_id")), "not_permitted"
        if actor == "third party":
            return self._third_party(ticket), "not_found"
        return self._owner_of(getattr(ticket, f"{side}_id")), None

    @rule(pick=picks, actor=actors)
    def access_post(self, pick: int, actor: str) -> None:
        """The seller posts (or replaces) the access details."""
        ticket = self._ticket(pick, OPEN)
        if ticket is None:
            return self._nothing("access post")
        user, refusal = self._actor(ticket, "seller", actor)
        _result, error = self._attempt("access post", lambda: delivery_access_post(
            user=user, ticket=ticket, endpoint=f"ssh://gpu-{ticket.pk}.example",
            instructions="Schlüssel im Anhang", now=self.now))
        if refusal is not None:
            assert error is not None and error.code == refusal, error
        elif self._status(ticket) in OPEN:
            assert error is None, error
            after = DeliveryTicket.objects.get(pk=ticket.pk)
            # Late access does not undo not_provided: the buyer may still confirm (then the seller is paid).
            expected = Status.NOT_PROVIDED if self._status(ticket) == Status.NOT_PROVIDED else Status.ACCESS_POSTED
            assert after.status == expected, (after.status, expected)
            assert after.access_posted_late == (self.now > ticket.delivery_start)
        else:
            assert error is not None and error.code == "conflict", error
        self._step()

    def _buyer_may_act(self, ticket: DeliveryTicket) -> bool:
        return self._status(ticket) in OPEN and self.now <= ticket.delivery_end + WINDOW

    @rule(pick=picks, actor=actors)
    def confirm(self, pick: int, actor: str) -> None:
        """The buyer confirms once delivery has started; refused before, once
        confirmed, disputed, settled or after the window. Tickets that can be
        confirmed now come first (the others while there are none)."""
        ticket = self._ticket(pick, OPEN, started=True)
        if ticket is None:
            return self._nothing("confirm")
        self._confirm(ticket, actor)
        self._step()

    def _confirm(self, ticket: DeliveryTicket, actor: str) -> None:
        user, refusal = self._actor(ticket, "buyer", actor)
        _result, error = self._attempt("confirm", lambda: delivery_confirm(user=user, ticket=ticket, now=self.now))
        if refusal is not None:
            assert error is not None and error.code == refusal, error
        elif self._buyer_may_act(ticket) and self.now >= ticket.delivery_start:
            assert error is None, error
            assert DeliveryTicket.objects.get(pk=ticket.pk).status == DeliveryTicket.Status.CONFIRMED
        else:
            assert error is not None and error.code == "conflict", error

    @rule(pick=picks, actor=actors, then=st.sampled_from(["leave", "resolve"]), percent=refunds,
          operator=st.integers(0, 1))
    def dispute(self, pick: int, actor: str, then: str, percent: int, operator: int) -> None:
        """The buyer disputes; the money stays pending until an operator resolves it,
        often at once, else later (``resolve``). Tickets whose delivery window is
        open come first, as for ``confirm``."""
        ticket = self._ticket(pick, OPEN, started=True)
        if ticket is None:
            return self._nothing("dispute")
        user, refusal = self._actor(ticket, "buyer", actor)
        _result, error = self._attempt("dispute", lambda: delivery_dispute(
            user=user, ticket=ticket, reason="Keine GPUs erreichbar", now=self.now))
        if refusal is not None:
            assert error is not None and error.code == refusal, error
        elif self._buyer_may_act(ticket):
            assert error is None, error
            assert DeliveryTicket.objects.get(pk=ticket.pk).status == DeliveryTicket.Status.DISPUTED
            if then == "resolve":
                self._resolve(DeliveryTicket.objects.get(pk=ticket.pk), percent, self.market.operators[operator])
        else:
            assert error is not None and error.code == "conflict", error
        self._step()

    @rule(pick=picks, percent=refunds, operator=st.integers(0, 1))
    def resolve(self, pick: int, percent: int, operator: int) -> None:
        """An operator decides a dispute or a ticket whose access never came
        (mostly), or tries one that is neither (conflict)."""
        ticket = self._ticket(pick, (Status.DISPUTED, Status.NOT_PROVIDED))
        if ticket is None:
            return self._nothing("resolve")
        self._resolve(ticket, percent, self.market.operators[operator])
        self._step()

    def _resolve(self, ticket: DeliveryTicket, percent: int, operator: User) -> None:
        """A refund of ``percent`` of the ticket's value, charged to the seller; settled at once.
        Never refused for the seller's cash: what it cannot pay the clearing house advances."""
        refund = (ticket.value * percent / 100).quantize(fees.CENT, rounding="ROUND_DOWN")
        payout = ticket.value - ticket.seller_fee
        seller_available = _balance(ticket.seller_id, Account.Kind.CASH_AVAILABLE)
        resolvable = self._status(ticket) in (Status.DISPUTED, Status.NOT_PROVIDED)
        _result, error = self._attempt("resolve", lambda: dispute_resolve(
            operator=operator, ticket=ticket, refund_amount=refund,
            reason=f"{percent} % erstattet", now=self.now))
        if not resolvable:
            assert error is not None and error.code == "conflict", error
        else:
            assert error is None, error
            after = DeliveryTicket.objects.get(pk=ticket.pk)
            assert (after.status, after.refund_amount) == (Status.SETTLED, refund)
            self._check_settlement_entry(after)
            self.stats["refunds"] += 1
            if refund - payout > seller_available:
                self.stats["refunds advanced by the clearing house"] += 1

    @rule(pick=picks, operator=st.integers(0, 1))
    def hold(self, pick: int, operator: int) -> None:
        """An operator stops the automatic refund of a ticket whose access never came."""
        ticket = self._ticket(pick, (Status.NOT_PROVIDED,))
        if ticket is None:
            return self._nothing("hold")
        _result, error = self._attempt("hold", lambda: delivery_hold(
            operator=self.market.operators[operator], ticket=ticket, reason="Anbieter legt Nachweis vor",
            now=self.now))
        if self._status(ticket) == Status.NOT_PROVIDED and ticket.held_at is None:
            assert error is None, error
            assert DeliveryTicket.objects.get(pk=ticket.pk).held_at == self.now
        else:
            assert error is not None and error.code == "conflict", error
        self._step()

    @rule()
    def settle(self) -> None:
        self._settle()
        self._step()

    def _settle(self) -> None:
        """The settlement job at the machine's clock: every due ticket exactly once."""
        # Paid: confirmed, resolved, or access posted and the window passed.
        # Refunded in full: access never came and the window passed, unless an operator holds it.
        due, refunded = [], []
        for ticket in DeliveryTicket.objects.filter(settled_at__isnull=True).order_by("pk"):
            status, passed = self._status(ticket), ticket.delivery_end + WINDOW <= self.now
            if status in (Status.CONFIRMED, Status.RESOLVED) or (status == Status.ACCESS_POSTED and passed):
                due.append(ticket.pk)
            elif status == Status.NOT_PROVIDED and passed and ticket.held_at is None:
                due.append(ticket.pk)
                refunded.append(ticket.pk)
        settled, error = self._attempt("settle", lambda: deliveries_settle(now=self.now))
        assert error is None and settled == len(due), (error, settled, due)
        for ticket in DeliveryTicket.objects.filter(pk__in=due):
            assert ticket.status == Status.SETTLED and ticket.settled_at == self.now
            if ticket.pk in refunded:
                assert ticket.refund_amount == ticket.value, ticket.pk
                self.stats["not provided, refunded"] += 1
            self._check_settlement_entry(ticket)
        assert deliveries_settle(now=self.now) == 0  # a second run at once pays nothing
        self.stats["settled tickets"] += settled

    def _check_settlement_entry(self, ticket: DeliveryTicket) -> None:
        """The payout or refund entry by the documented formula, zero lines left out.

        The seller's net ``N = (V - Fs) - X`` is split between its available
        cash and the clearing house's claim against it: with ``N >= 0`` both
        parts are >= 0 (the claim is repaid first), with ``N < 0`` both are
        <= 0 (the seller pays what it has, the house advances the rest)."""
        entries = list(JournalEntry.objects.filter(reference=f"delivery:{ticket.pk}"))
        assert [entry.pk for entry in entries] == [ticket.settlement_entry_id]
        value, payout = ticket.value, ticket.value - ticket.seller_fee
        refund = ticket.refund_amount or ZERO
        expected = [(ticket.buyer_id, Account.Kind.SETTLEMENT_PENDING, -value),
                    (ticket.buyer_id, Account.Kind.CASH_AVAILABLE, refund),
                    (None, Account.Kind.CCP, value),
                    (ticket.seller_id, Account.Kind.SETTLEMENT_PENDING, -payout)]
        lines = list(entries[0].lines.values_list("account__organisation_id", "account__kind", "amount"))
        seller_money = [(kind, amount) for organisation_id, kind, amount in lines if organisation_id == ticket.seller_id
                        and kind in (Account.Kind.CASH_AVAILABLE, Account.Kind.CCP_CLAIM)]
        others = [line for line in lines if line[:2] not in ((ticket.seller_id, Account.Kind.CASH_AVAILABLE),
                                                             (ticket.seller_id, Account.Kind.CCP_CLAIM))]
        assert sorted(others, key=str) == sorted([line for line in expected if line[2] != 0], key=str)
        net = payout - refund
        assert sum((amount for _kind, amount in seller_money), ZERO) == net, (ticket.pk, seller_money, net)
        assert all((amount > 0) if net > 0 else (amount < 0) for _kind, amount in seller_money), seller_money
        assert entries[0].kind == (JournalEntry.Kind.REFUND if refund else JournalEntry.Kind.SETTLEMENT)

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def books_reconcile(self) -> None:
        """Every registered reconciliation check: entries balance, accounts sum to zero,
        balances equal their lines, reserved cash equals the open buy orders', nothing
        negative, invoices consecutive, delivered GPUs equal traded GPUs."""
        breaches = reconcile(now=self.now)
        assert breaches == [], "\n".join(f"{breach.check}: {breach.detail}" for breach in breaches)

    @invariant()
    def orders_conserve_quantity(self) -> None:
        filled_by_trades: Counter[int] = Counter()
        for buy_id, sell_id, quantity in Trade.objects.values_list("buy_order_id", "sell_order_id", "quantity"):
            filled_by_trades[buy_id] += quantity
            filled_by_trades[sell_id] += quantity
        hours = {instrument.pk: instrument.hours for instrument in self.market.instruments}
        for order in Order.objects.all():
            assert 0 <= order.filled_quantity <= order.quantity, order
            assert order.filled_quantity == filled_by_trades[order.pk], (order.pk, order.filled_quantity)
            assert (order.status == OrderStatus.FILLED) == (order.filled_quantity == order.quantity), (
                order.pk, order.status, order.filled_quantity, order.quantity)
            assert order.status != OrderStatus.REJECTED  # a refused order is never stored
            if order.side == "buy" and order.status in RESTING_STATUSES:
                needed = fees.open_buy_reservation(order.price, order.quantity - order.filled_quantity,
                                                   hours[order.instrument_id], self.taker_rate)
                assert order.reserved_amount == needed, (order.pk, order.reserved_amount, needed)
            else:
                assert order.reserved_amount == ZERO, (order.pk, order.status, order.reserved_amount)

    @invariant()
    def tickets_match_trades(self) -> None:
        tickets = list(DeliveryTicket.objects.all())
        by_trade: dict[int, list[DeliveryTicket]] = defaultdict(list)
        for ticket in tickets:
            by_trade[ticket.trade_id].append(ticket)
        trades = {trade.pk: trade for trade in Trade.objects.select_related("instrument")}
        assert set(by_trade) <= set(trades)
        held_at_trade: dict[int, dict[int, Decimal]] = defaultdict(dict)
        for reference, organisation_id, amount in JournalLine.objects.filter(
                entry__kind=JournalEntry.Kind.TRADE, account__kind=Account.Kind.FEE_RESERVE).values_list(
                "entry__reference", "account__organisation_id", "amount"):
            held_at_trade[int(reference.removeprefix("trade:"))][organisation_id] = amount
        for trade in trades.values():
            own = by_trade[trade.pk]
            assert sum(ticket.gpus for ticket in own) == trade.quantity, trade.pk
            assert sum(ticket.value for ticket in own) == fees.trade_value(
                trade.price, trade.quantity, trade.instrument.hours), trade.pk
            # The tickets carry what each side moved into its fee reserve for the
            # trade (the trade entry's fee_reserve lines), never more than the cap.
            held = held_at_trade.get(trade.pk, {})
            assert sum(ticket.buyer_fee for ticket in own) == held.get(trade.buyer_id, ZERO), trade.pk
            assert sum(ticket.seller_fee for ticket in own) == held.get(trade.seller_id, ZERO), trade.pk
            assert held.get(trade.buyer_id, ZERO) <= fees.fee_step_cap(trade.buyer_fee), trade.pk
            assert held.get(trade.seller_id, ZERO) <= fees.fee_step_cap(trade.seller_fee), trade.pk
            assert {(ticket.buyer_id, ticket.seller_id) for ticket in own} == {(trade.buyer_id, trade.seller_id)}
        resold: Counter[int] = Counter()
        by_pk = {ticket.pk: ticket for ticket in tickets}
        for ticket in tickets:
            assert (ticket.seller_site_id is None) or (ticket.source_ticket_id is None), ticket.pk
            assert ticket.refund_amount is None or ZERO <= ticket.refund_amount <= ticket.value, ticket.pk
            assert (ticket.status == DeliveryTicket.Status.SETTLED) == (ticket.settlement_entry_id is not None)
            if ticket.source_ticket_id is not None:
                source = by_pk[ticket.source_ticket_id]
                assert source.buyer_id == ticket.seller_id, ticket.pk  # the reseller bought it
                assert trades[source.trade_id].instrument_id == trades[ticket.trade_id].instrument_id
                resold[source.pk] += ticket.gpus
        for source_pk, gpus in resold.items():
            assert gpus <= by_pk[source_pk].gpus, (source_pk, gpus)

    @invariant()
    def money_follows_tickets(self) -> None:
        """Where every euro is beyond what reconcile checks (the CCP, settlement
        pending and the fee accounts are its checks): the bank, the invoices,
        withdrawals, and each member's total against the shadow model."""
        balances: dict[tuple[int | None, str], Decimal] = defaultdict(lambda: ZERO)
        for organisation_id, kind, balance in Account.objects.filter(organisation__isnull=False).values_list(
                "organisation_id", "kind", "balance"):
            balances[(organisation_id, kind)] = balance
        # House accounts carry no running balance: theirs is the sum of their lines.
        for kind, balance in house_balances().items():
            balances[(None, kind)] = balance
        tickets = list(DeliveryTicket.objects.all())
        settled = [ticket for ticket in tickets if ticket.settled_at is not None]
        deposited, paid_out = sum(self.deposited.values(), ZERO), sum(self.paid_out.values(), ZERO)
        assert balances[(None, Account.Kind.BANK)] == -(deposited - paid_out)
        assert not Invoice.objects.exists()  # fees are invoiced once a month (teardown), not at settlement
        waiting: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for organisation_id, amount in WithdrawalRequest.objects.filter(
                status=WithdrawalRequest.Status.REQUESTED).values_list("organisation_id", "amount"):
            waiting[organisation_id] += amount
        for organisation in self.market.organisations:
            pk = organisation.pk
            assert balances[(pk, Account.Kind.WITHDRAWAL_PENDING)] == waiting[pk], organisation
            # A claim of the clearing house is what the member owes: never in its favour.
            assert balances[(pk, Account.Kind.CCP_CLAIM)] <= ZERO, organisation
            # What is held for the month's fees: the fee steps on its tickets, as buyer and as seller.
            held = sum((t.buyer_fee for t in tickets if t.buyer_id == pk), ZERO) + sum(
                (t.seller_fee for t in tickets if t.seller_id == pk), ZERO)
            assert balances[(pk, Account.Kind.FEE_RESERVE)] == held, organisation
            # The shadow model: what came in, minus what went out, fees held, value received.
            expected = (self.deposited[pk] - self.paid_out[pk]
                        - sum((t.buyer_fee for t in tickets if t.buyer_id == pk), ZERO)
                        + sum((t.value - t.seller_fee for t in tickets if t.seller_id == pk), ZERO)
                        - sum((t.value - (t.refund_amount or ZERO) for t in settled if t.buyer_id == pk), ZERO)
                        - sum((t.refund_amount or ZERO for t in settled if t.seller_id == pk), ZERO))
            total = sum((balances[(pk, kind)] for kind in MEMBER_MONEY_KINDS), ZERO)
            assert total == expected, (organisation, total, expected)


# Shrinking replays the machine hundreds of times (about a second per example) and
# would run into the suite's 300 s timeout; the unshrunk failing example (at most
# 40 steps) is printed as it is. Set RB_STATE_MACHINE_SHRINK=1 (and --timeout=0)
# to have hypothesis shrink a failure to its shortest form.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
if os.environ.get("RB_STATE_MACHINE_SHRINK") == "1":
    PHASES.append(Phase.shrink)
# RB_STATE_MACHINE_RANDOM=1 runs other examples than the fixed ones (with
# --hypothesis-seed=N, reproducibly): a way to look further, or to show that
# the draws do not depend on the database. The coverage list below is then
# only printed, since it is tuned to the fixed examples.
RANDOM = os.environ.get("RB_STATE_MACHINE_RANDOM") == "1"


@pytest.mark.django_db
@pytest.mark.timeout(900)  # 2.5-4 minutes on 2 shared cores; the suite's 300 s is for ordinary tests
def test_random_life_of_the_exchange_keeps_every_invariant() -> None:
    """45 examples of up to 40 random steps each; see the module docstring."""
    machine = type("StateMachine", (ClearingMachine,), {"market": build_market(), "stats": Counter()})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=45, stateful_step_count=40, deadline=None, derandomize=not RANDOM, database=None, phases=PHASES,
        suppress_health_check=[HealthCheck.too_slow], print_blob=False))
    # The examples reached every corner, not only the refusals. Deterministic
    # (derandomize), but a change to the rules changes the examples: if one of
    # these ever drops to zero, adjust the rules' strategies, not the list.
    stats = machine.stats
    print("state machine coverage:", dict(sorted(stats.items())))  # shown with -s
    if RANDOM:
        return
    for what in ("trades", "submit: ok", "submit: refused", "take: ok", "cancel: ok", "amend: ok", "expired orders",
                 "deposit: ok", "deposit: refused", "withdrawal request: ok", "withdrawal approve: ok",
                 "withdrawal approve: refused", "access post: ok", "confirm: ok", "dispute: ok", "resolve: ok",
                 "settled tickets", "monthly invoices"):
        # Resale tickets are not required here: whether an example reaches one
        # depends on the rows earlier tests left behind; tests/clearing/test_delivery.py
        # covers resale delivery directly.
        assert stats[what] > 0, f"the examples never reached {what!r}: {dict(sorted(stats.items()))}"
