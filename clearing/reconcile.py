"""Reconciliation: the invariants of the clearing house's books, checked
against the database (docs/architecture.md, "Reconciliation, statements and
invoices").

Each check is a function without arguments that yields one human-readable
detail per breach and is registered with ``register_check``; the command
``manage.py reconcile``, the Celery job ``clearing.reconcile`` and the admin
page "Abstimmung" all run the registry, so a new check needs nothing but its
function here.
"""

import logging
import smtplib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import islice

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import Count, DecimalField, F, Max, Min, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce, TruncMonth
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.models import Organisation, User
from clearing.fees import fee_held, to_cents
from clearing.invoicing import BERLIN
from clearing.models import (
    CREDIT_KINDS,
    GUARDED_KINDS,
    HOUSE_KINDS,
    Account,
    DeliveryTicket,
    FeeAccrual,
    Invoice,
    InvoiceSequence,
    JobFailure,
    JournalEntry,
    JournalLine,
    ReconciliationRun,
)
from clearing.selectors import house_balances, trial_balance, unbalanced_entries, unreconciled_accounts
from exchange.formats import moment, number
from exchange.site import absolute_url

logger = logging.getLogger(__name__)

ZERO = Decimal("0.00")
# A systematic break (every account off by a cent) would otherwise print
# and store thousands of lines; the first ones are enough to start looking.
MAX_DETAILS_PER_CHECK = 50


@dataclass(frozen=True)
class Breach:
    """One broken invariant: the check's name and what is wrong."""

    check: str
    detail: str


@dataclass(frozen=True)
class Check:
    name: str
    label: Promise | str
    run: Callable[[], Iterable[str]]


@dataclass(frozen=True)
class CheckResult:
    check: Check
    breaches: list[Breach] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches


_REGISTRY: dict[str, Check] = {}
# The instant the checks treat as "now" (which delivery hours have not ended
# yet); the wall clock unless run_checks(now=...) says otherwise, as the
# state machine does with its own clock.
_CHECK_TIME: ContextVar[datetime | None] = ContextVar("reconcile_check_time", default=None)


def check_time() -> datetime:
    """"Now" for a check: the time given to ``run_checks``, else the wall clock."""
    return _CHECK_TIME.get() or timezone.now()


def register_check(name: str, label: Promise | str) -> Callable[[Callable[[], Iterable[str]]],
                                                                 Callable[[], Iterable[str]]]:
    """Add a check to the registry (decorator). Checks run in registration order."""

    def decorator(function: Callable[[], Iterable[str]]) -> Callable[[], Iterable[str]]:
        if name in _REGISTRY and _REGISTRY[name].run is not function:
            raise ValueError(f"a reconciliation check named {name!r} is already registered")
        _REGISTRY[name] = Check(name=name, label=label, run=function)
        return function

    return decorator


def registered_checks() -> list[Check]:
    return list(_REGISTRY.values())


def run_checks(checks: Iterable[Check] | None = None, *, now: datetime | None = None) -> list[CheckResult]:
    """Run the checks (all registered ones by default) on one snapshot of the database.

    ``now`` (default: the wall clock) is what checks that depend on time
    read through ``check_time()``.

    On PostgreSQL outside a transaction the checks share one REPEATABLE READ,
    READ ONLY transaction: a trade committing between two queries cannot
    make its two halves disagree (its reservation gone from the ledger but
    its order still open). Inside a caller's transaction they use that one.
    """
    checks = list(checks) if checks is not None else registered_checks()
    outermost = not connection.in_atomic_block
    results: list[CheckResult] = []
    token = _CHECK_TIME.set(now)
    try:
        with transaction.atomic():
            if outermost and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for check in checks:
                results.append(CheckResult(check=check, breaches=_run_one(check)))
    finally:
        _CHECK_TIME.reset(token)
    return results


def _run_one(check: Check) -> list[Breach]:
    details: list[str] = []
    more = 0
    try:
        # A savepoint: a check that fails in the database leaves the
        # transaction usable for the next one.
        with transaction.atomic():
            found = iter(check.run())
            details = [str(detail) for detail in islice(found, MAX_DETAILS_PER_CHECK)]
            more = sum(1 for _detail in found)
    except Exception as error:  # noqa: BLE001 - a check that cannot run is reported, never passed as OK
        logger.exception("reconciliation check %s failed", check.name)
        return [Breach(check.name, _("The check failed: %(error)s") % {"error": f"{type(error).__name__}: {error}"})]
    breaches = [Breach(check.name, detail) for detail in details]
    if more:
        breaches.append(Breach(check.name, ngettext("… and %(count)d more.", "… and %(count)d more.", more)
                               % {"count": more}))
    return breaches


def reconcile(*, now: datetime | None = None) -> list[Breach]:
    """Every breach of every registered invariant; empty when the books are right."""
    return [breach for result in run_checks(now=now) for breach in result.breaches]


# --- The checks ---------------------------------------------------------------------------


def _money(amount: Decimal | None) -> str:
    """An amount in the active language's format, grouped (1.095,50 in German)."""
    return number(amount if amount is not None else ZERO)


@register_check("entries_balance", gettext_lazy("Every journal entry balances"))
def _entries_balance() -> Iterator[str]:
    for entry in unbalanced_entries().only("pk", "kind", "reference"):
        yield _("Journal entry #%(entry)s (%(reference)s): its lines sum to %(total)s.") % {
            "entry": entry.pk, "reference": entry.reference or entry.kind, "total": _money(entry.total),  # type: ignore[attr-defined]
        }


@register_check("trial_balance", gettext_lazy("All accounts sum to zero"))
def _trial_balance() -> Iterator[str]:
    total = trial_balance()
    if total != 0:
        yield _("The balances of all accounts sum to %(total)s instead of 0.00.") % {"total": _money(total)}


@register_check("balances_match_lines", gettext_lazy("Each balance equals the sum of its journal lines"))
def _balances_match_lines() -> Iterator[str]:
    for account in unreconciled_accounts().select_related("organisation"):
        names = {"account": account.pk, "name": account, "balance": _money(account.balance),
                 "lines": _money(account.from_lines)}  # type: ignore[attr-defined]
        if account.organisation_id is None:
            # A house account's balance is the sum of its lines; its column
            # is written by nobody and stays 0.00 (issue 7, no hot rows).
            yield _("Account #%(account)s (%(name)s): its balance column holds %(balance)s, but a house "
                    "account's balance is the sum of its lines (%(lines)s) and the column stays 0.00.") % names
        else:
            yield _("Account #%(account)s (%(name)s): balance %(balance)s, its lines sum to %(lines)s.") % names


@register_check("reserved_matches_orders",
                gettext_lazy("Reserved cash equals the reservations of the open orders and active auction bids"))
def _reserved_matches_orders() -> Iterator[str]:
    # Imported here: market depends on clearing, not the other way round at import time.
    from market.models import RESTING_STATUSES, BidStatus, DayAheadBid, Order

    # A reservation is held in cash and, for spot purchases, incentive credits (issue 12).
    ledger = {organisation_id: total for organisation_id, total in (
        Account.objects.filter(kind__in=(Account.Kind.CASH_RESERVED, Account.Kind.CREDITS_RESERVED))
        .order_by().values("organisation_id").annotate(total=Sum("balance"))
        .values_list("organisation_id", "total")) if total}
    orders: dict[int, Decimal] = defaultdict(lambda: ZERO)
    # Spot buys reserve their value and fees, futures orders of either side their fees.
    for source in (Order.objects.filter(status__in=RESTING_STATUSES),
                   DayAheadBid.objects.filter(status=BidStatus.ACTIVE)):
        for organisation_id, total in (source.order_by().values("organisation_id")
                                       .annotate(total=Sum("reserved_amount")).values_list("organisation_id",
                                                                                           "total")):
            orders[organisation_id] += total
    orders = {pk: total for pk, total in orders.items() if total}
    differing = sorted(pk for pk in ledger.keys() | orders.keys() if ledger.get(pk, ZERO) != orders.get(pk, ZERO))
    if not differing:
        return
    names = dict(Organisation.objects.filter(pk__in=differing).values_list("pk", "legal_name"))
    for pk in differing:
        yield _("%(organisation)s (#%(pk)s): cash and credits reserved %(ledger)s, open orders and auction bids "
                "reserve %(orders)s.") % {
            "organisation": names.get(pk, "?"), "pk": pk,
            "ledger": _money(ledger.get(pk, ZERO)), "orders": _money(orders.get(pk, ZERO)),
        }


@register_check("no_negative_balances", gettext_lazy("No member account or fund is negative"))
def _no_negative_balances() -> Iterator[str]:
    # Member accounts by their running balance; the funds (house accounts,
    # no running balance) by the sum of their lines.
    balances = {(None, kind): amount for kind, amount in
                house_balances(kind for kind in HOUSE_KINDS if kind in GUARDED_KINDS).items()}
    negative_funds = [kind for (_none, kind), amount in balances.items() if amount < 0]
    negative = (Account.objects.filter(kind__in=GUARDED_KINDS, organisation__isnull=False, balance__lt=0)
                | Account.objects.filter(kind__in=negative_funds, organisation__isnull=True))
    for account in negative.select_related("organisation").order_by("pk"):
        balance = account.balance if account.organisation_id is not None else balances[(None, account.kind)]
        yield _("Account #%(account)s (%(name)s) is negative: %(balance)s.") % {
            "account": account.pk, "name": account, "balance": _money(balance),
        }


@register_check("invoice_numbers_consecutive", gettext_lazy("Invoice numbers have no gap and no duplicate"))
def _invoice_numbers_consecutive() -> Iterator[str]:
    issued = {
        row["year"]: row
        for row in Invoice.objects.order_by().values("year").annotate(
            count=Count("pk"), first=Min("sequence"), last=Max("sequence"),
        )
    }
    sequences = dict(InvoiceSequence.objects.values_list("year", "last_number"))
    for year in sorted(issued.keys() | {year for year, last in sequences.items() if last}):
        row = issued.get(year, {"count": 0, "first": None, "last": None})
        last_number = sequences.get(year, 0)
        if row["count"] == last_number and (not last_number or (row["first"], row["last"]) == (1, last_number)):
            continue
        yield _("Invoices of %(year)s: %(count)s issued, numbers %(first)s to %(last)s, "
                "the sequence stands at %(sequence)s.") % {
            "year": year, "count": row["count"], "first": row["first"] or "-", "last": row["last"] or "-",
            "sequence": last_number,
        }


@register_check("delivered_equals_traded", gettext_lazy("Delivered GPUs equal traded GPUs"))
def _delivered_equals_traded() -> Iterator[str]:
    from clearing.models import DeliveryTicket
    from market.models import Segment, Trade

    on_tickets = (DeliveryTicket.objects.filter(trade=OuterRef("pk")).order_by()
                  .values("trade").annotate(total=Sum("gpus")).values("total"))
    rows = (Trade.objects.filter(instrument__segment=Segment.INTRADAY)  # every spot trade
            .annotate(delivered=Coalesce(Subquery(on_tickets), 0))
            .exclude(delivered=F("quantity")).order_by("pk")
            .values_list("pk", "quantity", "delivered"))
    for pk, traded, delivered in rows:
        yield _("Trade #%(trade)s: %(traded)s GPUs traded, %(delivered)s on delivery tickets.") % {
            "trade": pk, "traded": traded, "delivered": delivered}


@register_check("ccp_matches_open_tickets",
                gettext_lazy("The central counterparty carries minus the value of the unsettled delivery tickets"))
def _ccp_matches_open_tickets() -> Iterator[str]:
    # A trade books -V on the CCP and splits V over its tickets; settling a
    # ticket (payout or refund) books +V_t. So between the two the CCP holds
    # exactly minus what the unsettled tickets are worth.
    ccp = house_balances([Account.Kind.CCP])[Account.Kind.CCP]
    unsettled = DeliveryTicket.objects.filter(settled_at__isnull=True).aggregate(
        total=Sum("value"), count=Count("pk"))
    expected = -(unsettled["total"] or ZERO)
    if ccp != expected:
        yield _("The central counterparty holds %(ccp)s; the %(count)s unsettled delivery tickets are worth "
                "%(value)s, so it should hold %(expected)s.") % {
            "ccp": _money(ccp), "count": unsettled["count"], "value": _money(-expected),
            "expected": _money(expected)}


@register_check("pending_matches_tickets",
                gettext_lazy("Settlement pending equals what the unsettled delivery tickets owe"))
def _pending_matches_tickets() -> Iterator[str]:
    # A buyer waits for delivery of what it paid (V_t), a seller for its
    # payout (V_t - Fs_t), on each ticket not yet settled.
    ledger = dict(
        Account.objects.filter(kind=Account.Kind.SETTLEMENT_PENDING).exclude(balance=0)
        .values_list("organisation_id", "balance")
    )
    unsettled = DeliveryTicket.objects.filter(settled_at__isnull=True).order_by()
    as_buyer = dict(unsettled.values("buyer_id").annotate(total=Sum("value")).values_list("buyer_id", "total"))
    as_seller = dict(unsettled.values("seller_id").annotate(total=Sum(F("value") - F("seller_fee")))
                     .values_list("seller_id", "total"))
    owed: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for totals in (as_buyer, as_seller):
        for pk, total in totals.items():
            owed[pk] += total
    differing = sorted(pk for pk in ledger.keys() | owed.keys() if ledger.get(pk, ZERO) != owed.get(pk, ZERO))
    if not differing:
        return
    names = dict(Organisation.objects.filter(pk__in=differing).values_list("pk", "legal_name"))
    for pk in differing:
        yield _("%(organisation)s (#%(pk)s): settlement pending %(ledger)s, its unsettled delivery tickets "
                "make %(tickets)s (as buyer %(buyer)s, as seller %(seller)s).") % {
            "organisation": names.get(pk, "?"), "pk": pk, "ledger": _money(ledger.get(pk, ZERO)),
            "tickets": _money(owed.get(pk, ZERO)), "buyer": _money(as_buyer.get(pk, ZERO)),
            "seller": _money(as_seller.get(pk, ZERO))}


FEE_ACCOUNT_KINDS = (Account.Kind.FEE_REVENUE, Account.Kind.INCENTIVE_FUND, Account.Kind.RND_FUND)
# The charge runs at 00:30 on the 1st; a month still uncharged a day after its end is overdue.
FEE_CHARGE_GRACE = timedelta(days=1)


def _trade_fees_by_month() -> dict[tuple[int, date], Decimal]:
    """Σ exact fees per (organisation, Europe/Berlin month) over all trades,
    as buyer and as seller (two grouped queries)."""
    from market.models import Trade

    totals: dict[tuple[int, date], Decimal] = defaultdict(lambda: Decimal("0"))
    month = TruncMonth("executed_at", tzinfo=BERLIN)
    for party, fee in (("buyer_id", "buyer_fee"), ("seller_id", "seller_fee")):
        rows = (Trade.objects.order_by().annotate(month=month).values(party, "month")
                .annotate(total=Sum(fee)).values_list(party, "month", "total"))
        for organisation_id, trade_month, total in rows:
            key = (organisation_id, trade_month.date() if isinstance(trade_month, datetime) else trade_month)
            totals[key] += total
    return totals


def _names(pks: Iterable[int]) -> dict[int, str]:
    return dict(Organisation.objects.filter(pk__in=list(pks)).values_list("pk", "legal_name"))


@register_check("fee_accruals_match_trades",
                gettext_lazy("Each member's monthly fee accrual equals the exact fees of its trades"))
def _fee_accruals_match_trades() -> Iterator[str]:
    # Fees accrue at full precision per trade into one row per member and
    # Europe/Berlin month; what is held for the month is net + VAT of the
    # accrued amount, each rounded once (clearing.fees.fee_held).
    traded = _trade_fees_by_month()
    accruals = {(org, month): (accrued, held) for org, month, accrued, held in
                FeeAccrual.objects.values_list("organisation_id", "month", "accrued", "held")}
    keys = sorted(key for key in traded.keys() | accruals.keys()
                  if traded.get(key, ZERO) != accruals.get(key, (ZERO, ZERO))[0]
                  or accruals.get(key, (ZERO, ZERO))[1] != fee_held(accruals.get(key, (ZERO, ZERO))[0]))
    names = _names(org for org, _month in keys)
    for org, month in keys:
        accrued, held = accruals.get((org, month), (ZERO, ZERO))
        yield _("%(organisation)s (#%(pk)s), %(month)s: fees accrued %(accrued)s, held %(held)s; its trades "
                "accrued %(traded)s, which holds %(expected)s.") % {
            "organisation": names.get(org, "?"), "pk": org, "month": f"{month:%Y-%m}",
            "accrued": accrued.normalize(), "held": _money(held), "traded": traded.get((org, month), ZERO).normalize(),
            "expected": _money(fee_held(traded.get((org, month), ZERO)))}


@register_check("fee_reserve_matches_accruals",
                gettext_lazy("Each fee reserve holds what the months not yet charged hold"))
def _fee_reserve_matches_accruals() -> Iterator[str]:
    ledger = dict(Account.objects.filter(kind=Account.Kind.FEE_RESERVE).exclude(balance=0)
                  .values_list("organisation_id", "balance"))
    held = dict(FeeAccrual.objects.filter(charged_at__isnull=True).order_by().values("organisation_id")
                .annotate(total=Sum("held")).exclude(total=0).values_list("organisation_id", "total"))
    differing = sorted(pk for pk in ledger.keys() | held.keys() if ledger.get(pk, ZERO) != held.get(pk, ZERO))
    names = _names(differing)
    for pk in differing:
        yield _("%(organisation)s (#%(pk)s): fee reserve %(ledger)s, its months not yet charged hold "
                "%(held)s.") % {"organisation": names.get(pk, "?"), "pk": pk,
                                "ledger": _money(ledger.get(pk, ZERO)), "held": _money(held.get(pk, ZERO))}


@register_check("fee_charges_match_entries",
                gettext_lazy("Fee revenue, the funds and VAT hold exactly the fees charged"))
def _fee_charges_match_entries() -> Iterator[str]:
    # Fee revenue and the funds receive money only from "fee" entries (the
    # monthly charge and the sweep, which only moves revenue into the funds),
    # VAT payable only from the charge. Lines of other kinds on the funds
    # (grants, corrections) do not count; trades book no fees any more.
    booked = dict.fromkeys((*FEE_ACCOUNT_KINDS, Account.Kind.VAT_PAYABLE), ZERO)
    rows = (JournalLine.objects.filter(entry__kind=JournalEntry.Kind.FEE, account__organisation__isnull=True)
            .order_by().values("account__kind").annotate(total=Sum("amount"))
            .values_list("account__kind", "total"))
    for kind, total in rows:
        booked[kind] = total or ZERO
    net = vat = ZERO
    for accrued, held in FeeAccrual.objects.filter(charged_at__isnull=False).values_list("accrued", "held"):
        net += to_cents(accrued)
        vat += held - to_cents(accrued)
    revenue = sum((booked[kind] for kind in FEE_ACCOUNT_KINDS), ZERO)
    if revenue != net or booked[Account.Kind.VAT_PAYABLE] != vat:
        yield _("The fee entries booked %(revenue)s to fee revenue and the funds and %(vat_booked)s to VAT; the "
                "months charged come to %(net)s net and %(vat)s VAT.") % {
            "revenue": _money(revenue), "vat_booked": _money(booked[Account.Kind.VAT_PAYABLE]),
            "net": _money(net), "vat": _money(vat)}
    at_trades = (JournalLine.objects.filter(entry__kind=JournalEntry.Kind.TRADE, account__organisation__isnull=True,
                                            account__kind__in=FEE_ACCOUNT_KINDS).aggregate(total=Sum("amount"))
                 ["total"])
    if at_trades:
        yield _("Trade entries booked %(amount)s to fee revenue and the funds; fees are charged monthly.") % {
            "amount": _money(at_trades)}


@register_check("fees_charged_monthly", gettext_lazy("Every month that has ended is charged and swept"))
def _fees_charged_monthly() -> Iterator[str]:
    from clearing.services.fees import month_bounds

    now = check_time()
    months = sorted(set(FeeAccrual.objects.values_list("month", flat=True)))
    for month in months:
        if month_bounds(month)[1] + FEE_CHARGE_GRACE > now:
            continue
        open_rows = FeeAccrual.objects.filter(month=month, charged_at__isnull=True).count()
        if open_rows:
            yield ngettext("%(month)s: the fees of %(count)d organisation are not charged.",
                           "%(month)s: the fees of %(count)d organisations are not charged.", open_rows) % {
                "month": f"{month:%Y-%m}", "count": open_rows}
            continue
        total = sum((to_cents(a) for a in FeeAccrual.objects.filter(month=month).values_list("accrued", flat=True)),
                    ZERO)
        swept = JournalEntry.objects.filter(kind=JournalEntry.Kind.FEE, reference=f"fees-sweep:{month:%Y-%m}")
        if total and not swept.exists() and _sweep_due(month, total):
            yield _("%(month)s: the funds' shares of the fee revenue are not swept.") % {"month": f"{month:%Y-%m}"}


def _sweep_due(month: date, total: Decimal) -> bool:
    """Whether the month's sweep moves anything (shares of 0 % move nothing)."""
    from clearing.fees import fund_split
    from clearing.selectors import fee_terms_at
    from clearing.services.fees import month_bounds

    terms = fee_terms_at(month_bounds(month)[1] - timedelta(microseconds=1))
    _kept, incentive, rnd = fund_split(total, terms.incentive_fund_share, terms.rnd_fund_share)
    return bool(incentive + rnd)


PositionTotals = tuple[int, int, int, Decimal, Decimal]  # quantity, bought, sold, buy_cost, sell_proceeds


@register_check("positions_match_trades",
                gettext_lazy("Every position equals the totals of its trades (and futures transfers)"))
def _positions_match_trades() -> Iterator[str]:
    # The order service adds each fill to both positions (market/services/
    # orders.py, the fill loop and _positions_add): the buyer's bought and
    # buy_cost (price x quantity), the seller's sold and sell_proceeds, and
    # quantity = bought - sold.
    from market.models import Instrument, Position, PositionTransfer, Trade

    value = Sum(F("price") * F("quantity"), output_field=DecimalField(max_digits=18, decimal_places=2))
    trades = Trade.objects.order_by()
    bought = {(row["buyer_id"], row["instrument_id"]): (row["gpus"], row["amount"]) for row in
              trades.values("buyer_id", "instrument_id").annotate(gpus=Sum("quantity"), amount=value)}
    sold = {(row["seller_id"], row["instrument_id"]): (row["gpus"], row["amount"]) for row in
            trades.values("seller_id", "instrument_id").annotate(gpus=Sum("quantity"), amount=value)}
    # Futures positions also move without a trade, against the clearing
    # house: cascading and final settlement (market.models.PositionTransfer).
    for moved in PositionTransfer.objects.order_by().values("organisation_id", "instrument_id", "side").annotate(
            gpus=Sum("quantity"), amount=value):
        key = (moved["organisation_id"], moved["instrument_id"])
        target = bought if moved["side"] == "buy" else sold
        gpus, amount = target.get(key, (0, ZERO))
        target[key] = (gpus + moved["gpus"], amount + moved["amount"])
    expected: dict[tuple[int, int], PositionTotals] = {}
    for key in bought.keys() | sold.keys():
        bought_quantity, cost = bought.get(key, (0, ZERO))
        sold_quantity, proceeds = sold.get(key, (0, ZERO))
        expected[key] = (bought_quantity - sold_quantity, bought_quantity, sold_quantity, cost, proceeds)
    actual: dict[tuple[int, int], PositionTotals] = {
        (row[0], row[1]): row[2:] for row in Position.objects.values_list(
            "organisation_id", "instrument_id", "quantity", "bought", "sold", "buy_cost", "sell_proceeds")
    }
    nothing: PositionTotals = (0, 0, 0, ZERO, ZERO)
    # A trade without its position row is a breach; a row without trades
    # must be all zeros.
    differing = sorted(key for key in expected.keys() | actual.keys()
                       if (actual.get(key) != expected[key] if key in expected else actual[key] != nothing))
    if not differing:
        return
    names = dict(Organisation.objects.filter(pk__in={pk for pk, _i in differing}).values_list("pk", "legal_name"))
    symbols = dict(Instrument.objects.filter(pk__in={pk for _o, pk in differing}).values_list("pk", "symbol"))
    for organisation_id, instrument_id in differing:
        names_ = {"organisation": names.get(organisation_id, "?"), "pk": organisation_id,
                  "instrument": symbols.get(instrument_id, instrument_id),
                  "trades": _position_text(expected.get((organisation_id, instrument_id), nothing))}
        row = actual.get((organisation_id, instrument_id))
        if row is None:
            yield _("%(organisation)s (#%(pk)s) in %(instrument)s: no position, its trades give "
                    "%(trades)s.") % names_
        else:
            yield _("%(organisation)s (#%(pk)s) in %(instrument)s: position %(position)s, its trades give "
                    "%(trades)s.") % (names_ | {"position": _position_text(row)})


@register_check("margin_covers_requirement",
                gettext_lazy("Every member's futures margin covers its initial margin requirement"))
def _margin_covers_requirement() -> Iterator[str]:
    # The margin run sets each member's margin to its requirement (as far as
    # its cash goes, a margin call for the rest); between runs an order moves
    # what its worst case adds, and fills and cancels only lower the
    # requirement (released at the next run). So at the prices of the last
    # run (market.services.futures.reference_prices), margin plus an open
    # call always covers the requirement.
    from market.models import RESTING_STATUSES, MarginCall, Order, Position, Segment
    from market.services.futures import requirement_for

    margin = dict(Account.objects.filter(kind=Account.Kind.MARGIN, organisation__isnull=False)
                  .values_list("organisation_id", "balance"))
    members = (set(Position.objects.filter(instrument__segment=Segment.FUTURES).exclude(quantity=0)
                   .values_list("organisation_id", flat=True))
               | set(Order.objects.filter(instrument__segment=Segment.FUTURES, status__in=RESTING_STATUSES)
                     .values_list("organisation_id", flat=True)))
    called: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for organisation_id, amount in MarginCall.objects.filter(met_at__isnull=True, closed_out_at__isnull=True
                                                             ).values_list("organisation_id", "amount"):
        called[organisation_id] += amount
    short = []
    for organisation_id in sorted(members):
        required = requirement_for(organisation_id)
        held = margin.get(organisation_id, ZERO)
        if held + called.get(organisation_id, ZERO) < required:
            short.append((organisation_id, required, held))
    names = _names(pk for pk, _r, _h in short)
    for organisation_id, required, held in short:
        yield _("%(organisation)s (#%(pk)s): initial margin %(required)s, margin held %(held)s, open margin calls "
                "%(called)s.") % {"organisation": names.get(organisation_id, "?"), "pk": organisation_id,
                                  "required": _money(required), "held": _money(held),
                                  "called": _money(called.get(organisation_id, ZERO))}


def _position_text(totals: PositionTotals) -> str:
    quantity, bought, sold, cost, proceeds = totals
    return _("net %(quantity)s, bought %(bought)s, sold %(sold)s, buy cost %(cost)s, sell proceeds "
             "%(proceeds)s") % {"quantity": quantity, "bought": bought, "sold": sold, "cost": _money(cost),
                                "proceeds": _money(proceeds)}


@register_check("site_use_within_capacity",
                gettext_lazy("No site delivers more GPUs in an hour than its capacity"))
def _site_use_within_capacity() -> Iterator[str]:
    # Tickets are hourly today (an intraday instrument is one delivery hour),
    # so the GPUs a site delivers in an hour are the GPUs of its tickets
    # with that delivery_start. Only hours whose delivery has not ended: a
    # provider may lower its capacity once an hour is delivered
    # (market.services.capacity), so a past hour may exceed today's number.
    # Resale tickets (no site) need no capacity.
    #
    # market.SiteUsage holds the GPUs in use per site, class and hour (the
    # one source of truth the allocation updates with a guarded UPDATE):
    # each of its rows must equal the tickets' sum, and the tickets must fit
    # the capacity. Three queries.
    from market.models import SiteCapacity, SiteUsage

    now = check_time()
    Key = tuple[int, int, datetime]
    on_tickets: dict[Key, int] = {
        (row["seller_site"], row["gpu_class"], row["delivery_start"]): row["used"]
        for row in DeliveryTicket.objects.filter(seller_site__isnull=False, delivery_end__gt=now)
        .order_by().values("seller_site", "gpu_class", "delivery_start").annotate(used=Sum("gpus"))
    }
    in_use: dict[Key, int] = {
        (site_id, class_id, hour): gpus for site_id, class_id, hour, gpus in SiteUsage.objects.filter(
            hour_start__gt=now - timedelta(hours=1), gpus__gt=0).values_list(
            "site_id", "gpu_class_id", "hour_start", "gpus")
    }
    keys = on_tickets.keys() | in_use.keys()
    capacity = {(site_id, class_id): gpus for site_id, class_id, gpus in SiteCapacity.objects.filter(
        site_id__in={key[0] for key in keys}).values_list("site_id", "gpu_class_id", "gpus")}
    broken = sorted((key for key in keys if in_use.get(key, 0) != on_tickets.get(key, 0)
                     or on_tickets.get(key, 0) > capacity.get(key[:2], 0)), key=lambda key: (key[2], key[0], key[1]))
    if not broken:
        return
    from market.models import GpuClass, Site

    sites = {site.pk: site for site in Site.objects.filter(pk__in={key[0] for key in broken})
             .select_related("organisation")}
    classes = dict(GpuClass.objects.filter(pk__in={key[1] for key in broken}).values_list("pk", "code"))
    for site_id, class_id, hour in broken:
        site = sites[site_id]
        used = on_tickets.get((site_id, class_id, hour), 0)
        limit = capacity.get((site_id, class_id), 0)
        recorded = in_use.get((site_id, class_id, hour), 0)
        names = {"site": site.name, "organisation": site.organisation.legal_name, "site_pk": site.pk,
                 "gpu_class": classes.get(class_id, class_id), "hour": _local_time(hour),
                 "used": used, "capacity": limit, "in_use": recorded}
        if used > limit:
            yield _("Site %(site)s of %(organisation)s (#%(site_pk)s), %(gpu_class)s, hour from %(hour)s: "
                    "%(used)s GPUs on delivery tickets, capacity %(capacity)s.") % names
        if recorded != used:
            yield _("Site %(site)s of %(organisation)s (#%(site_pk)s), %(gpu_class)s, hour from %(hour)s: "
                    "%(in_use)s GPUs recorded in use, %(used)s on delivery tickets.") % names


def _local_time(instant: datetime) -> str:
    """A delivery hour's start in Berlin time, in the active language's format."""
    return moment(instant)


@register_check("jobs_succeed", gettext_lazy("No scheduled job is failing"))
def _jobs_succeed() -> Iterator[str]:
    # Not an invariant of the books, but what keeps them moving: a settlement
    # or expiry job that fails every run leaves money pending while every
    # balance still adds up (issue 8). Open until the job succeeds again or
    # an operator acknowledges it (clearing.services.jobs).
    from clearing.selectors import job_failures_open

    open_failures: dict[str, list[JobFailure]] = defaultdict(list)
    for failure in job_failures_open():
        open_failures[failure.task].append(failure)
    for task, failures in sorted(open_failures.items()):
        last, first = failures[0], failures[-1]
        yield ngettext(
            "Job %(task)s failed %(count)d time, at %(last)s: %(error)s. The alarm ends with the job's next "
            "success or when an operator acknowledges it (admin: failed jobs).",
            "Job %(task)s failed %(count)d times since %(first)s, last at %(last)s: %(error)s. The alarm ends "
            "with the job's next success or when an operator acknowledges it (admin: failed jobs).",
            len(failures),
        ) % {"task": task, "count": len(failures), "first": _local_time(first.failed_at),
             "last": _local_time(last.failed_at), "error": last.error}

@register_check("start_financing_matches_bookings",
                gettext_lazy("What is owed for the start financing equals the financing booked minus the repayments"))
def _start_financing_matches_bookings() -> Iterator[str]:
    # Issue 12 (docs/incentives.md). Imported here: incentives builds on clearing.
    from incentives.models import StartFinancing

    booked = StartFinancing.objects.aggregate(total=Sum("amount"))["total"] or ZERO
    lines = JournalLine.objects.filter(account__organisation__isnull=True, account__kind=Account.Kind.START_FINANCING)
    by_kind = dict(lines.order_by().values("entry__kind").annotate(total=Sum("amount"))
                   .values_list("entry__kind", "total"))
    in_ledger = -by_kind.pop(JournalEntry.Kind.START_FINANCING, ZERO)
    repaid = by_kind.pop(JournalEntry.Kind.FINANCING_REPAYMENT, ZERO)
    owed = -(sum(by_kind.values(), ZERO)) + in_ledger - repaid
    figures = {"booked": _money(booked), "ledger": _money(in_ledger), "repaid": _money(repaid), "owed": _money(owed)}
    if in_ledger != booked:
        yield _("Start financing booked %(booked)s, but its journal entries put %(ledger)s into the fund.") % figures
    if by_kind:
        yield _("The start financing account has lines of other kinds: %(kinds)s.") % {
            "kinds": ", ".join(sorted(by_kind))}
    if owed != booked - repaid:
        yield _("Start financing owed %(owed)s is not booked %(booked)s minus repaid %(repaid)s.") % figures
    if owed < 0:
        yield _("The start financing is repaid beyond what was booked: owed %(owed)s.") % figures


@register_check("credits_accounted",
                gettext_lazy("Incentive credits granted equal credits used, expired and outstanding"))
def _credits_accounted() -> Iterator[str]:
    # Issue 12 (docs/incentives.md, "Credits"): only grants bring credits in,
    # only purchases (trade entries) and expiries take them out; reservations
    # move them between the two credit accounts and change nothing.
    lines = JournalLine.objects.filter(account__kind__in=CREDIT_KINDS)
    by_kind = dict(lines.order_by().values("entry__kind").annotate(total=Sum("amount"))
                   .values_list("entry__kind", "total"))
    granted = by_kind.pop(JournalEntry.Kind.CREDIT_GRANT, ZERO)
    used = -by_kind.pop(JournalEntry.Kind.TRADE, ZERO)
    expired = -by_kind.pop(JournalEntry.Kind.CREDIT_EXPIRY, ZERO)
    moved = by_kind.pop(JournalEntry.Kind.RESERVE, ZERO) + by_kind.pop(JournalEntry.Kind.RELEASE, ZERO)
    outstanding = Account.objects.filter(kind__in=CREDIT_KINDS).aggregate(total=Sum("balance"))["total"] or ZERO
    figures = {"granted": _money(granted), "used": _money(used), "expired": _money(expired),
               "outstanding": _money(outstanding), "moved": _money(moved)}
    if granted - used - expired != outstanding:
        yield _("Credits granted %(granted)s minus used %(used)s and expired %(expired)s is not the %(outstanding)s "
                "outstanding.") % figures
    if moved:
        yield _("Reserving and releasing credits changed their total by %(moved)s.") % figures
    if by_kind:
        yield _("Credit accounts have lines of other kinds: %(kinds)s.") % {"kinds": ", ".join(sorted(by_kind))}
    if used < 0 or expired < 0:
        yield _("Purchases or expiries put credits back: used %(used)s, expired %(expired)s.") % figures


# --- The scheduled run --------------------------------------------------------------------


def reconciliation_record() -> ReconciliationRun:
    """Run every check, record the run, and alert the operators when a check breaks.

    The Celery job's service. Alerts go out only for checks that were not
    broken in the previous run (ok -> broken), so a break that lasts mails
    once, not every 15 minutes; a run whose alert could not be sent does not
    count as "previous", so the next run tries again. Two runs at the very
    same moment may both alert: accepted, one duplicate mail is harmless.
    """
    started_at = timezone.now()
    # The details are stored as text: in the site's language, whoever runs it.
    with translation.override(settings.LANGUAGE_CODE):
        results = run_checks()
    breaches = [breach for result in results for breach in result.breaches]
    broken_now = {breach.check for breach in breaches}
    with transaction.atomic():
        previous = ReconciliationRun.objects.exclude(alert_sent=False).order_by("-started_at", "-id").first()
        newly_broken = broken_now - (set(previous.broken_checks) if previous else set())
        run = ReconciliationRun.objects.create(
            started_at=started_at,
            finished_at=timezone.now(),
            ok=not breaches,
            checks=[result.check.name for result in results],
            breaches=[{"check": breach.check, "detail": breach.detail} for breach in breaches],
        )
    if newly_broken:
        run.alert_sent = _alert_operators(run=run, results=results, newly_broken=newly_broken)
        ReconciliationRun.objects.filter(pk=run.pk).update(alert_sent=run.alert_sent)
        logger.error("reconciliation run %s: broken checks %s", run.pk, ", ".join(sorted(broken_now)))
    return run


def operator_addresses() -> list[str]:
    """settings.OPERATOR_EMAILS and every active operator's address, each once."""
    addresses: dict[str, str] = {}
    staff = User.objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    for address in [*settings.OPERATOR_EMAILS, *staff]:
        if address:
            addresses.setdefault(address.strip().lower(), address.strip())
    return sorted(addresses.values())


def _alert_operators(*, run: ReconciliationRun, results: list[CheckResult], newly_broken: set[str]) -> bool:
    recipients = operator_addresses()
    if not recipients:
        logger.error("reconciliation run %s is broken and no operator has an e-mail address", run.pk)
        return False
    broken = [result for result in results if not result.ok]
    # Rendered in the site's language: we don't know the readers'.
    with translation.override(settings.LANGUAGE_CODE):
        subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + ngettext(
            "Reconciliation: %(count)d check broken", "Reconciliation: %(count)d checks broken", len(broken),
        ) % {"count": len(broken)}
        body = render_to_string("clearing/email/reconciliation_broken.txt", {
            "run": run,
            "results": [
                {"name": result.check.name, "label": str(result.check.label), "new": result.check.name in newly_broken,
                 "details": [breach.detail for breach in result.breaches]}
                for result in broken
            ],
            "url": absolute_url(reverse("admin:clearing_reconciliationrun_changelist")),
        })
    try:
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, recipients).send()
    except (smtplib.SMTPException, OSError):
        logger.exception("could not send the reconciliation alert of run %s to %s", run.pk, recipients)
        return False
    return True
