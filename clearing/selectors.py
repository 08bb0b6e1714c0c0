"""Reads of the clearing house's books."""

from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Round

from clearing.models import MEMBER_KINDS, Account, JournalEntry, JournalLine

if TYPE_CHECKING:
    from accounts.models import Organisation

ZERO = Decimal("0.00")
# Sums are rounded to the cent in SQL: on PostgreSQL that changes nothing
# (numeric is exact), on the embedded SQLite default, which adds decimals in
# floating point, it keeps 0.1 + 0.2 from reading as a broken invariant.
_MONEY: "DecimalField[Decimal, Decimal]" = DecimalField(max_digits=18, decimal_places=2)


def account_summary(*, organisation: "Organisation") -> dict[str, Decimal]:
    """The organisation's balance per member account kind; 0.00 for accounts not yet opened."""
    summary = dict.fromkeys(MEMBER_KINDS, ZERO)
    for kind, balance in Account.objects.filter(organisation=organisation).values_list("kind", "balance"):
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
