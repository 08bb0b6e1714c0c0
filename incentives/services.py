"""Writes of the start financing (issue 12; docs/incentives.md)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from accounts.services import audit_record
from clearing.fees import CENT, is_cents
from clearing.models import Account, JournalEntry, JournalLine
from clearing.services.ledger import Posting, house_account, ledger_post_all
from exchange.errors import ExchangeError
from incentives.models import StartFinancing
from incentives.rules import repayment_amount

if TYPE_CHECKING:
    from accounts.models import User

_AMOUNT_LIMIT = Decimal("1e16")


@transaction.atomic(durable=True)
def start_financing_book(*, operator: User, amount: Decimal, repayment_share: Decimal, reason: str) -> StartFinancing:
    """Book the state's start financing: the incentive fund rises by
    ``amount`` and the ``start_financing`` house account (what the exchange
    owes the state) falls by it, in one entry; audited with the reason."""
    if not (operator.is_staff and operator.is_active):
        raise ExchangeError("not_permitted", _("Only operators may book the start financing."), status=403)
    fields: dict[str, list[str]] = {}
    if not isinstance(amount, Decimal) or not is_cents(amount) or amount <= 0 or amount >= _AMOUNT_LIMIT:
        fields["amount"] = [_("Enter a positive amount in euros and cents.")]
    if not isinstance(repayment_share, Decimal) or not repayment_share.is_finite() or not (
            Decimal("0") < repayment_share <= Decimal("1")) or repayment_share != repayment_share.quantize(
            Decimal("0.0001")):
        fields["repayment_share"] = [_("Enter a share above 0 and at most 1, e.g. 0.5.")]
    reason = (reason or "").strip()
    if not reason or len(reason) > 255:
        fields["reason"] = [_("Enter the reason (at most 255 characters).")]
    if fields:
        raise ExchangeError("invalid", _("The start financing is invalid."), fields=fields)
    amount = amount.quantize(CENT)
    entry = ledger_post_all([Posting(
        kind=JournalEntry.Kind.START_FINANCING, reference="start-financing", memo=reason[:255], actor=operator,
        lines=[(house_account(Account.Kind.INCENTIVE_FUND), amount),
               (house_account(Account.Kind.START_FINANCING), -amount)])])[0]
    financing = StartFinancing.objects.create(amount=amount, repayment_share=repayment_share, reason=reason,
                                              booked_by=operator, entry=entry)
    audit_record(actor=operator, action="incentives.start_financing_book", organisation=None, obj=financing,
                 before={}, after={"amount": str(amount), "repayment_share": str(repayment_share),
                                   "entry": entry.pk}, reason=reason)
    return financing


def financing_repayment_posting(*, month: date, net_revenue: Decimal) -> Posting | None:
    """The month's repayment of the start financing, for the monthly sweep
    (``clearing.services.fees._sweep``) to post in its own transaction.

    Locks the ``start_financing`` account row (``no_key``: it only
    serialises two sweeps, so that two months swept at once can never repay
    more than is owed), then reads what is owed from its lines. None when
    nothing is owed or nothing is due."""
    financing = StartFinancing.objects.order_by("-booked_at", "-id").first()
    if financing is None:
        return None
    account = house_account(Account.Kind.START_FINANCING)
    Account.objects.select_for_update(no_key=True).filter(pk=account.pk).values_list("pk").first()
    balance = JournalLine.objects.filter(account=account).aggregate(total=Sum("amount"))["total"] or Decimal("0")
    amount = repayment_amount(net_revenue=net_revenue, share=financing.repayment_share, owed=-balance)
    if amount <= 0:
        return None
    return Posting(kind=JournalEntry.Kind.FINANCING_REPAYMENT, reference=f"financing-repayment:{month:%Y-%m}",
                   memo=f"{month:%Y-%m}: {financing.repayment_share} x {net_revenue} EUR",
                   lines=[(house_account(Account.Kind.FEE_REVENUE), -amount), (account, amount)])
