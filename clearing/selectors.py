"""Reads of the clearing house's books."""

import time
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import Case, DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, Round

from clearing.fees import DEFAULT_FEE_TERMS, FeeRates, FeeTerms
from clearing.models import (
    HOUSE_KINDS,
    MEMBER_KINDS,
    Account,
    FeeSchedule,
    JobFailure,
    JournalEntry,
    JournalLine,
    WithdrawalRequest,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from accounts.models import Organisation

ZERO = Decimal("0.00")
# Sums are rounded to the cent in SQL: on PostgreSQL that changes nothing
# (numeric is exact), on the embedded SQLite default, which adds decimals in
# floating point, it keeps 0.1 + 0.2 from reading as a broken invariant.
_MONEY: "DecimalField[Decimal, Decimal]" = DecimalField(max_digits=18, decimal_places=2)


def account_summary(*, organisation: "Organisation") -> dict[str, Decimal]:
    """The organisation's balance per member account kind; 0.00 for accounts not yet opened."""
    summary = dict.fromkeys(MEMBER_KINDS, ZERO)
    # Only the four kinds every member has: the API's shape (a withdrawal
    # account opened later does not add a key).
    accounts = Account.objects.filter(organisation=organisation, kind__in=MEMBER_KINDS)
    for kind, balance in accounts.values_list("kind", "balance"):
        summary[kind] = balance
    return summary


def fee_reserve_balance(*, organisation: "Organisation") -> Decimal:
    """What the organisation holds for its fees not yet charged (the
    ``fee_reserve`` account; 0.00 before its first trade)."""
    balance = Account.objects.filter(organisation=organisation, kind=Account.Kind.FEE_RESERVE).values_list(
        "balance", flat=True).first()
    return balance if balance is not None else ZERO


def ledger_balance_from_lines(account: Account) -> Decimal:
    """The account's balance recomputed from its journal lines (for reconciliation)."""
    total = JournalLine.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    return total if total is not None else ZERO


def house_balances(kinds: "Iterable[str] | None" = None) -> dict[str, Decimal]:
    """The clearing house's balance per house account kind: the sum of each
    house account's journal lines (0.00 for a kind without lines). One query;
    ``kinds`` narrows it to those kinds (default: all five).

    House accounts carry no running balance (issue 7, "no hot rows": a trade
    must not update a row every other trade updates too); their ``balance``
    column stays 0.00 and the lines are the truth.
    """
    wanted = tuple(HOUSE_KINDS if kinds is None else kinds)
    balances = dict.fromkeys(wanted, ZERO)
    rows = (
        JournalLine.objects.filter(account__organisation__isnull=True, account__kind__in=wanted)
        .order_by()
        .values("account__kind")
        .annotate(total=Round(Sum("amount"), 2, output_field=_MONEY))
        .values_list("account__kind", "total")
    )
    for kind, total in rows:
        balances[kind] = total if total is not None else ZERO
    return balances


def account_balance(account: Account) -> Decimal:
    """An account's balance: the running balance of a member account, the
    sum of the lines of a house account (which has none)."""
    if account.organisation_id is None:
        return ledger_balance_from_lines(account)
    return account.balance


def _line_sum() -> QuerySet[JournalLine]:
    """The sum of the lines of the outer query's account (a subquery)."""
    return (
        JournalLine.objects.filter(account=OuterRef("pk"))
        .order_by()
        .values("account")
        .annotate(total=Sum("amount"))
        .values("total")
    )


def with_current_balance(accounts: QuerySet[Account]) -> QuerySet[Account]:
    """``accounts`` annotated with ``current_balance``: the stored running
    balance for member accounts, the sum of the lines for house accounts
    (one query; the lines are summed only for the house rows). For screens
    that list accounts, e.g. the admin."""
    line_sum = _line_sum()
    return accounts.annotate(current_balance=Case(
        When(organisation__isnull=True,
             then=Coalesce(Subquery(line_sum, output_field=_MONEY), Value(ZERO), output_field=_MONEY)),
        default=F("balance"),
        output_field=_MONEY,
    ))


def trial_balance() -> Decimal:
    """The sum of every account's balance, house accounts included. Always 0.00.

    Member accounts count with their stored running balance, house accounts
    with the sum of their lines (``house_balances``); so a member balance
    moved without a journal line shows here, and a house account's column is
    not part of the books (``unreconciled_accounts`` watches it).
    """
    members = Account.objects.filter(organisation__isnull=False).aggregate(
        total=Round(Sum("balance"), 2, output_field=_MONEY))["total"]
    return (members if members is not None else ZERO) + sum(house_balances().values(), ZERO)


def unreconciled_accounts() -> QuerySet[Account]:
    """Accounts whose stored balance is wrong (none, ever), annotated with
    ``from_lines`` (the sum of their lines).

    - a member account whose running balance differs from the sum of its lines;
    - a house account whose ``balance`` column is not 0.00: nobody may write
      it since house balances are derived from the lines.

    The house part is tolerant for now: it also accepts a column equal to the
    sum of the lines, which is what the ledger wrote before the clearing-core
    rework (issue 7 item 2) stopped maintaining it, so that a database whose
    columns still hold the old running totals does not raise an alarm.
    TODO(issue 7): once every deployment runs the new ledger_post (and the old
    columns have been zeroed by a migration), tighten this to ``balance != 0``.
    """
    line_sum = _line_sum()
    member_wrong = Q(organisation__isnull=False) & ~Q(rounded_balance=F("from_lines"))
    house_wrong = Q(organisation__isnull=True) & ~Q(rounded_balance=ZERO) & ~Q(rounded_balance=F("from_lines"))
    return (
        Account.objects.annotate(
            from_lines=Round(Coalesce(Subquery(line_sum, output_field=_MONEY), Value(ZERO), output_field=_MONEY), 2),
            rounded_balance=Round(F("balance"), 2, output_field=_MONEY),
        )
        .filter(member_wrong | house_wrong)
        .order_by("pk")
    )


def unbalanced_entries() -> QuerySet[JournalEntry]:
    """Journal entries whose lines do not sum to zero (none, ever)."""
    return (
        JournalEntry.objects.annotate(
            total=Round(Coalesce(Sum("lines__amount"), Value(ZERO), output_field=_MONEY), 2, output_field=_MONEY)
        )
        .filter(~Q(total=0))
        .order_by("pk")
    )


# --- fee schedule (issue 4) ------------------------------------------------------------------


# Every order reads the schedule; it is a handful of rows that change a few
# times a year, so each process keeps them for FEE_SCHEDULE_CACHE_SECONDS.
# That is safe because a schedule is published ahead: ``FeeSchedule.clean``
# wants ``valid_from`` more than this far in the future, so every process has
# re-read the table before a new row takes effect. A save or delete in this
# process forgets the rows at once (and again when its transaction commits).
FEE_SCHEDULE_CACHE_SECONDS = 30.0
_schedule_cache: tuple[float, list[tuple["datetime", FeeTerms]]] | None = None


def fee_schedule_forget() -> None:
    """Drop this process's copy of the fee schedule (``fee_terms_at`` reads it again)."""
    global _schedule_cache
    _schedule_cache = None


def _schedule() -> list[tuple["datetime", FeeTerms]]:
    global _schedule_cache
    now = time.monotonic()
    if _schedule_cache is None or now - _schedule_cache[0] > FEE_SCHEDULE_CACHE_SECONDS:
        rows = [(row.valid_from, FeeTerms(
            day_ahead_per_side=row.day_ahead_per_side,
            intraday=FeeRates(maker=row.intraday_maker, taker=row.intraday_taker),
            futures_per_side=row.futures_per_side,
            incentive_fund_share=row.incentive_fund_share,
            rnd_fund_share=row.rnd_fund_share,
        )) for row in FeeSchedule.objects.order_by("-valid_from")]
        _schedule_cache = (now, rows)
    return _schedule_cache[1]


def fee_terms_at(when: "datetime") -> FeeTerms:
    """The fee rates and fund shares in effect at ``when``: the schedule row
    with the latest ``valid_from <= when``, or the market-rules defaults
    before the first row. Read from this process's copy of the schedule
    (see ``FEE_SCHEDULE_CACHE_SECONDS``)."""
    for valid_from, terms in _schedule():  # newest first
        if valid_from <= when:
            return terms
    return DEFAULT_FEE_TERMS


def fee_rates_at(when: "datetime", *, futures: bool = False) -> FeeRates:
    """The maker and taker rates of continuous trading in effect at ``when``:
    intraday, or (``futures``) the futures rate on both."""
    terms = fee_terms_at(when)
    return terms.futures if futures else terms.intraday


def withdrawals_of(*, organisation: "Organisation") -> QuerySet[WithdrawalRequest]:
    """The organisation's withdrawal requests, newest first."""
    return WithdrawalRequest.objects.filter(organisation=organisation).select_related(
        "requested_by", "decided_by").order_by("-requested_at", "-id")


def job_failures_open() -> "QuerySet[JobFailure]":
    """The failed jobs that are still an alarm (clearing.services.jobs), newest first."""
    return JobFailure.objects.filter(resolved_at__isnull=True).order_by("-failed_at", "-id")
