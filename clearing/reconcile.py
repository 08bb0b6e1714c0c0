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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.models import Organisation, User
from clearing.models import (
    GUARDED_KINDS,
    Account,
    Invoice,
    InvoiceSequence,
    ReconciliationRun,
)
from clearing.selectors import trial_balance, unbalanced_entries, unreconciled_accounts

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


def run_checks(checks: Iterable[Check] | None = None) -> list[CheckResult]:
    """Run the checks (all registered ones by default) on one snapshot of the database.

    On PostgreSQL outside a transaction the checks share one REPEATABLE READ,
    READ ONLY transaction: a trade committing between two queries cannot
    make its two halves disagree (its reservation gone from the ledger but
    its order still open). Inside a caller's transaction they use that one.
    """
    checks = list(checks) if checks is not None else registered_checks()
    outermost = not connection.in_atomic_block
    results: list[CheckResult] = []
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for check in checks:
            results.append(CheckResult(check=check, breaches=_run_one(check)))
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


def reconcile() -> list[Breach]:
    """Every breach of every registered invariant; empty when the books are right."""
    return [breach for result in run_checks() for breach in result.breaches]


# --- The checks ---------------------------------------------------------------------------


def _money(amount: Decimal | None) -> str:
    """An amount in the active language's format (95,50 in German), no thousands separator."""
    return number_format(amount if amount is not None else ZERO, decimal_pos=2, use_l10n=True,
                         force_grouping=False)


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
        yield _("Account #%(account)s (%(name)s): balance %(balance)s, its lines sum to %(lines)s.") % {
            "account": account.pk, "name": account, "balance": _money(account.balance),
            "lines": _money(account.from_lines),  # type: ignore[attr-defined]
        }


@register_check("reserved_matches_orders",
                gettext_lazy("Reserved cash equals the reservations of the open buy orders"))
def _reserved_matches_orders() -> Iterator[str]:
    # Imported here: market depends on clearing, not the other way round at import time.
    from market.models import RESTING_STATUSES, Order, Side

    ledger = dict(
        Account.objects.filter(kind=Account.Kind.CASH_RESERVED).exclude(balance=0)
        .values_list("organisation_id", "balance")
    )
    orders = dict(
        Order.objects.filter(side=Side.BUY, status__in=RESTING_STATUSES).order_by()
        .values("organisation_id").annotate(total=Sum("reserved_amount")).exclude(total=0)
        .values_list("organisation_id", "total")
    )
    differing = sorted(pk for pk in ledger.keys() | orders.keys() if ledger.get(pk, ZERO) != orders.get(pk, ZERO))
    if not differing:
        return
    names = dict(Organisation.objects.filter(pk__in=differing).values_list("pk", "legal_name"))
    for pk in differing:
        yield _("%(organisation)s (#%(pk)s): cash reserved %(ledger)s, open buy orders reserve %(orders)s.") % {
            "organisation": names.get(pk, "?"), "pk": pk,
            "ledger": _money(ledger.get(pk, ZERO)), "orders": _money(orders.get(pk, ZERO)),
        }


@register_check("no_negative_balances", gettext_lazy("No member account or fund is negative"))
def _no_negative_balances() -> Iterator[str]:
    negative = (Account.objects.filter(kind__in=GUARDED_KINDS, balance__lt=0)
                .select_related("organisation").order_by("pk"))
    for account in negative:
        yield _("Account #%(account)s (%(name)s) is negative: %(balance)s.") % {
            "account": account.pk, "name": account, "balance": _money(account.balance),
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
            "url": settings.SITE_URL.rstrip("/") + reverse("admin:clearing_reconciliationrun_changelist"),
        })
    try:
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, recipients).send()
    except (smtplib.SMTPException, OSError):
        logger.exception("could not send the reconciliation alert of run %s to %s", run.pk, recipients)
        return False
    return True
