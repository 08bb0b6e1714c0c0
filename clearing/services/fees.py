"""Fees as published (market rules §3; docs/architecture.md, "Fees as published").

Fees accrue at full precision per trade (``Trade.buyer_fee``/``seller_fee``)
into one ``FeeAccrual`` per member and Europe/Berlin calendar month. At each
trade side the member moves what the month's charge grows by into its
``fee_reserve`` (``clearing.fees.fee_step``), so that at month end the
reserve holds the month's charge, net plus VAT, each rounded once.
``fees_charge_month`` then books it (one entry, one invoice per member) and
sweeps the funds' shares from the month's revenue.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from clearing.fees import VAT, fee_held, fee_step, fund_split, split_rounded, to_cents
from clearing.invoicing import BERLIN, InvoiceLineData, invoice_issue
from clearing.models import Account, FeeAccrual, Invoice, JournalEntry
from clearing.selectors import fee_terms_at
from clearing.services.ledger import Posting, _account_get_or_create, house_account, ledger_post, ledger_post_all
from exchange.errors import ExchangeError
from exchange.locks import lock_organisations
from exchange.rawsql import converted, fetch, placeholders

if TYPE_CHECKING:
    from accounts.models import Organisation

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")


# --- months ---------------------------------------------------------------------------------


def month_of(instant: datetime) -> date:
    """The first day of the Europe/Berlin calendar month ``instant`` falls in."""
    return instant.astimezone(BERLIN).date().replace(day=1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in Europe/Berlin, as aware instants."""
    month = month.replace(day=1)
    following = (month + timedelta(days=32)).replace(day=1)
    return (datetime(month.year, month.month, 1, tzinfo=BERLIN),
            datetime(following.year, following.month, 1, tzinfo=BERLIN))


def month_label(month: date) -> str:
    return f"{month:%Y-%m}"


# --- at each trade --------------------------------------------------------------------------


@dataclass
class _Accrual:
    accrued: Decimal
    held: Decimal
    changed: bool = False


@dataclass
class FeeBook:
    """The fee accruals of one transaction's organisations in one month.

    For the order service, which has locked every organisation it names
    (the lock serialises their accrual rows). Reads nothing until the first
    ``charge``, then the month's rows of all the organisations with one
    query; ``save`` writes the changed ones back with one statement.
    """

    organisation_ids: frozenset[int]
    month: date
    _rows: dict[int, _Accrual] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, organisation_ids: Iterable[int], at: datetime) -> FeeBook:
        """The book of these organisations for the month of ``at`` (no query yet)."""
        return cls(organisation_ids=frozenset(organisation_ids), month=month_of(at))

    def _read(self) -> dict[int, _Accrual]:
        if self._rows is None:
            rows = {org: _Accrual(ZERO, ZERO) for org in self.organisation_ids}
            charged: list[int] = []
            ids = sorted(self.organisation_ids)
            table = connection.ops.quote_name(FeeAccrual._meta.db_table)
            for org, accrued, held, charged_at in fetch(
                    f"SELECT organisation_id, accrued, held, charged_at FROM {table} "  # noqa: S608 (model table)
                    f"WHERE month = %s AND organisation_id IN ({placeholders(len(ids))})",
                    [connection.ops.adapt_datefield_value(self.month), *ids]):
                rows[org] = _Accrual(converted(FeeAccrual, "accrued", accrued), converted(FeeAccrual, "held", held))
                if charged_at is not None:
                    charged.append(org)
            if charged:
                # Only a transaction that read its clock before midnight and
                # commits after the month's charge run gets here; the member
                # sends the order again and it trades in the new month.
                raise ExchangeError("conflict", _("The fees of %(month)s are already charged; please try again.")
                                    % {"month": month_label(self.month)}, status=409)
            self._rows = rows
        return self._rows

    def charge(self, organisation_id: int, fee: Decimal) -> Decimal:
        """Accrue one trade side's exact ``fee``; answers Δ, the cents the
        organisation moves into its fee reserve for it (0.00 or more)."""
        if organisation_id not in self.organisation_ids:
            raise ValueError(f"organisation {organisation_id} is not locked by this transaction")
        row = self._read()[organisation_id]
        step = fee_step(row.accrued, fee)
        row.accrued += fee
        row.held += step
        row.changed = True
        return step

    def save(self) -> None:
        """Write every changed accrual: one INSERT … ON CONFLICT DO UPDATE."""
        if self._rows is None:
            return
        changed = sorted((org, row) for org, row in self._rows.items() if row.changed)
        if not changed:
            return
        table = FeeAccrual._meta.db_table
        values = ", ".join(["(%s, %s, %s, %s)"] * len(changed))
        params: list[Any] = []
        for org, row in changed:
            params += [org, self.month, row.accrued, row.held]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (organisation_id, month, accrued, held) VALUES {values} "  # noqa: S608 (table name from the model, values as parameters)
                "ON CONFLICT (organisation_id, month) DO UPDATE SET accrued = EXCLUDED.accrued, held = EXCLUDED.held",
                params,
            )
        for _org, row in changed:
            row.changed = False


# --- the month's charge ----------------------------------------------------------------------


@dataclass(frozen=True)
class _InvoiceGroup:
    segment: str
    role: str  # "maker" or "taker"
    rate: Decimal


def _month_trade_fees(organisation_id: int, month: date) -> dict[_InvoiceGroup, tuple[Decimal, int]]:
    """The organisation's exact fees and GPU-hours of the month, per segment,
    role and rate (one query)."""
    from market.models import Trade

    start, end = month_bounds(month)
    groups: dict[_InvoiceGroup, tuple[Decimal, int]] = defaultdict(lambda: (Decimal("0"), 0))
    rows = (Trade.objects.filter(Q(buyer_id=organisation_id) | Q(seller_id=organisation_id),
                                 executed_at__gte=start, executed_at__lt=end)
            .values_list("buyer_id", "aggressor", "quantity", "instrument__hours", "instrument__segment",
                         "buyer_fee", "seller_fee"))
    for buyer_id, aggressor, quantity, hours, segment, buyer_fee, seller_fee in rows.iterator():
        side = "buy" if buyer_id == organisation_id else "sell"
        fee = buyer_fee if side == "buy" else seller_fee
        gpu_hours = quantity * hours
        key = _InvoiceGroup(segment, "taker" if aggressor == side else "maker", fee / gpu_hours)
        amount, total_hours = groups[key]
        groups[key] = (amount + fee, total_hours + gpu_hours)
    return groups


def _invoice_lines(organisation_id: int, month: date, accrued: Decimal, net: Decimal) -> list[InvoiceLineData]:
    """One line per segment, role and rate; the rounded ``net`` split over
    them by largest remainder of their exact amounts, so they sum to it."""
    groups = _month_trade_fees(organisation_id, month)
    if sum((amount for amount, _hours in groups.values()), Decimal("0")) != accrued:
        raise RuntimeError(f"organisation {organisation_id}: the trades of {month_label(month)} do not add up "
                           f"to the accrued fees {accrued}")
    keys = sorted(groups, key=lambda g: (g.segment, g.role, g.rate))
    amounts = split_rounded(net, [groups[key][0] for key in keys])
    labels = {"maker": _("maker fee"), "taker": _("taker fee")}
    from market.models import Segment

    lines = []
    for key, amount in zip(keys, amounts, strict=True):
        exact, gpu_hours = groups[key]
        lines.append(InvoiceLineData(
            description=_("%(segment)s %(role)s, %(month)s (exact %(exact)s EUR, rounded once on the month)") % {
                "segment": Segment(key.segment).label, "role": labels[key.role], "month": month_label(month),
                # In the reader's number format (German 1.234,567891), like the rest of the invoice.
                "exact": number_format(exact.normalize() if exact else Decimal("0"), force_grouping=True)},
            amount=amount, quantity=Decimal(gpu_hours), unit="GPUh", unit_price=key.rate))
    return lines


def _charge_one(accrual_id: int, *, now: datetime) -> bool:
    """Charge one member's month in its own transaction; False if another
    run charged it first."""
    with transaction.atomic(durable=True):
        organisation_id = FeeAccrual.objects.filter(pk=accrual_id).values_list("organisation_id", flat=True).get()
        lock_organisations([organisation_id])  # the order service's trades of this member wait
        accrual = FeeAccrual.objects.select_related("organisation").get(pk=accrual_id)
        if accrual.charged_at is not None:
            return False
        net = to_cents(accrual.accrued)
        vat = to_cents(VAT * net)
        if net + vat != accrual.held or fee_held(accrual.accrued) != accrual.held:
            raise RuntimeError(f"fee accrual {accrual.pk}: held {accrual.held} is not net {net} + VAT {vat}")
        entry: JournalEntry | None = None
        invoice: Invoice | None = None
        if accrual.held:
            entry, invoice = _post_and_invoice(accrual, net=net, vat=vat, now=now)
        updated = FeeAccrual.objects.filter(pk=accrual.pk, charged_at__isnull=True).update(
            charged_at=now, entry=entry, invoice=invoice)
        if updated != 1:  # pragma: no cover - the organisation lock makes this impossible
            raise RuntimeError(f"fee accrual {accrual.pk} was charged concurrently")
        return True


def _post_and_invoice(accrual: FeeAccrual, *, net: Decimal, vat: Decimal, now: datetime) -> tuple[
        JournalEntry, Invoice]:
    organisation: Organisation = accrual.organisation
    reference = f"fees:{organisation.pk}:{month_label(accrual.month)}"
    reserve = _fee_reserve_account(organisation)
    lines = [(reserve, -accrual.held), (house_account(Account.Kind.FEE_REVENUE), net),
             (house_account(Account.Kind.VAT_PAYABLE), vat)]
    with translation.override("de"):  # invoices are German documents
        memo = _("Fees %(month)s, rounded once") % {"month": month_label(accrual.month)}
        entry = ledger_post(kind=JournalEntry.Kind.FEE, reference=reference, memo=memo,
                            lines=[(account, amount) for account, amount in lines if amount != 0])
        invoice_lines = _invoice_lines(organisation.pk, accrual.month, accrual.accrued, net)
    invoice = invoice_issue(organisation=organisation, reference=reference, lines=invoice_lines, issued_at=now,
                            entry=entry)
    if invoice.net_total != net or invoice.vat_amount != vat:
        raise RuntimeError(f"invoice {invoice.number}: {invoice.net_total} + {invoice.vat_amount} is not what "
                           f"was booked ({net} + {vat})")
    return entry, invoice


def _fee_reserve_account(organisation: Organisation) -> Account:
    """The organisation's ``fee_reserve`` account (opened on first use)."""
    account = Account.objects.filter(organisation=organisation, kind=Account.Kind.FEE_RESERVE).first()
    return account or _account_get_or_create(organisation=organisation, kind=Account.Kind.FEE_RESERVE)


def _sweep(month: date) -> bool:
    """The month's fund shares out of its fee revenue, once; False if done before."""
    reference = f"fees-sweep:{month_label(month)}"
    with transaction.atomic(durable=True):
        if JournalEntry.objects.filter(kind=JournalEntry.Kind.FEE, reference=reference).exists():
            return False
        nets = FeeAccrual.objects.filter(month=month).values_list("accrued", flat=True)
        total = sum((to_cents(accrued) for accrued in nets), ZERO)
        start, end = month_bounds(month)
        terms = fee_terms_at(end - timedelta(microseconds=1))
        kept, incentive, rnd = fund_split(total, terms.incentive_fund_share, terms.rnd_fund_share)
        if incentive + rnd == 0:
            return False
        lines = [(house_account(Account.Kind.FEE_REVENUE), -(incentive + rnd)),
                 (house_account(Account.Kind.INCENTIVE_FUND), incentive),
                 (house_account(Account.Kind.RND_FUND), rnd)]
        postings = [Posting(kind=JournalEntry.Kind.FEE, reference=reference,
                            memo=f"{month_label(month)}: {total} EUR",
                            lines=[(account, amount) for account, amount in lines if amount != 0])]
        # The start financing (issue 12) is repaid from the month's NET fee
        # revenue: the fees charged without VAT minus the funds' shares just
        # swept (``kept``); posted with the sweep, so both happen once.
        from incentives.services import financing_repayment_posting

        repayment = financing_repayment_posting(month=month, net_revenue=kept)
        if repayment is not None:
            postings.append(repayment)
        try:
            ledger_post_all(postings)
        except IntegrityError:
            # A concurrent run swept first; the unique reference refused ours.
            return False
        return True


def fees_charge_month(*, month: date, now: datetime | None = None) -> int:
    """Charge every member's fees of ``month`` (Europe/Berlin) and sweep the
    funds' shares; answers the number of organisations this run charged.

    Idempotent: a month already charged is skipped per member, and the
    sweep is posted once. Each member is charged in its own transaction; one
    that fails is logged and left for the next run (reconcile reports the
    month until it is charged), and the sweep waits until every member is.
    Raises ``ValueError`` for a month that has not ended at ``now``.
    """
    now = now or timezone.now()
    month = month.replace(day=1)
    _start, end = month_bounds(month)
    if now < end:
        raise ValueError(f"{month_label(month)} has not ended yet")
    charged = 0
    pending = list(FeeAccrual.objects.filter(month=month, charged_at__isnull=True)
                   .order_by("organisation_id").values_list("pk", flat=True))
    failed = 0
    for accrual_id in pending:
        try:
            charged += _charge_one(accrual_id, now=now)
        except Exception:  # noqa: BLE001 - one member's failure must not stop the others; logged and visible
            failed += 1
            log.exception("fees of %s: accrual %s not charged", month_label(month), accrual_id)
    if failed or FeeAccrual.objects.filter(month=month, charged_at__isnull=True).exists():
        log.error("fees of %s: %d organisation(s) not charged; the funds are swept when all are",
                  month_label(month), failed)
        return charged
    _sweep(month)
    return charged


def previous_month(now: datetime | None = None) -> date:
    """The calendar month (Europe/Berlin) before the one ``now`` is in."""
    this = month_of(now or timezone.now())
    return (this - timedelta(days=1)).replace(day=1)
