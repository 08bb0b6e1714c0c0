"""Reads of the clearing house's books."""

from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Round

from clearing.fees import DEFAULT_FEE_TERMS, FeeRates, FeeTerms
from clearing.models import MEMBER_KINDS, Account, FeeSchedule, JournalEntry, JournalLine, WithdrawalRequest

if TYPE_CHECKING:
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


def ledger_balance_from_lines(account: Account) -> Decimal:
    """The account's balance recomputed from its journal lines (for reconciliation)."""
    total = JournalLine.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    return total if total is not None else ZERO


def trial_balance() -> Decimal:
    """The sum of every account's balance, house accounts included. Always 0.00."""
    total = Account.objects.aggregate(total=Round(Sum("balance"), 2, output_field=_MONEY))["total"]
    return total if total is not None else ZERO


def unreconciled_accounts() -> QuerySet[Account]:
    """Accounts whose running balance differs from the sum of their lines (none, ever)."""
    line_sum = (
        JournalLine.objects.filter(account=OuterRef("pk"))
        .order_by()
        .values("account")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return (
        Account.objects.annotate(
            from_lines=Round(Coalesce(Subquery(line_sum, output_field=_MONEY), Value(ZERO), output_field=_MONEY), 2),
            rounded_balance=Round(F("balance"), 2, output_field=_MONEY),
        )
        .exclude(rounded_balance=F("from_lines"))
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


def fee_terms_at(when: "datetime") -> FeeTerms:
    """The fee rates and fund shares in effect at ``when``: the schedule row
    with the latest ``valid_from <= when``, or the market-rules defaults
    before the first row. One indexed query."""
    row = FeeSchedule.objects.in_effect(when).order_by("-valid_from").first()
    if row is None:
        return DEFAULT_FEE_TERMS
    return FeeTerms(
        day_ahead_per_side=row.day_ahead_per_side,
        intraday=FeeRates(maker=row.intraday_maker, taker=row.intraday_taker),
        futures_per_side=row.futures_per_side,
        incentive_fund_share=row.incentive_fund_share,
        rnd_fund_share=row.rnd_fund_share,
    )


def fee_rates_at(when: "datetime") -> FeeRates:
    """The intraday maker and taker rates in effect at ``when``."""
    return fee_terms_at(when).intraday


def withdrawals_of(*, organisation: "Organisation") -> QuerySet[WithdrawalRequest]:
    """The organisation's withdrawal requests, newest first."""
    return WithdrawalRequest.objects.filter(organisation=organisation).select_related(
        "requested_by", "decided_by").order_by("-requested_at", "-id")
