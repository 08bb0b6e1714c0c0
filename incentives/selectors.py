"""Reads of the start financing: what the public sees (issue 12)."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Sum

from clearing.models import Account, JournalEntry, JournalLine
from clearing.selectors import house_balances
from incentives.models import StartFinancing
from incentives.rules import payoff_month

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Repayment:
    month: date
    amount: Decimal


@dataclass(frozen=True)
class FinancingSummary:
    financed: Decimal
    repaid: Decimal
    owed: Decimal
    repayment_share: Decimal | None
    fund_balance: Decimal
    repayments: list[Repayment]
    expected_payoff: date | None


def financing_summary() -> FinancingSummary:
    """Financed, repaid and owed from the ledger lines of the
    ``start_financing`` account; repayments per month (newest first); the
    payoff month projected by ``incentives.rules.payoff_month``."""
    lines = JournalLine.objects.filter(account__organisation__isnull=True,
                                       account__kind=Account.Kind.START_FINANCING)
    financed = -(lines.filter(entry__kind=JournalEntry.Kind.START_FINANCING)
                 .aggregate(total=Sum("amount"))["total"] or ZERO)
    rows = (lines.filter(entry__kind=JournalEntry.Kind.FINANCING_REPAYMENT)
            .values_list("entry__reference", "amount"))
    repayments = sorted((Repayment(month=date.fromisoformat(reference.rsplit(":", 1)[1] + "-01"), amount=amount)
                         for reference, amount in rows), key=lambda r: r.month, reverse=True)
    repaid = sum((r.amount for r in repayments), ZERO)
    owed = financed - repaid
    latest = StartFinancing.objects.order_by("-booked_at", "-id").values_list("repayment_share", flat=True).first()
    fund = house_balances([Account.Kind.INCENTIVE_FUND])[Account.Kind.INCENTIVE_FUND]
    return FinancingSummary(
        financed=financed, repaid=repaid, owed=owed, repayment_share=latest, fund_balance=fund,
        repayments=repayments,
        expected_payoff=payoff_month(owed=owed, repayments=[(r.month, r.amount) for r in repayments])
        if financed else None,
    )
