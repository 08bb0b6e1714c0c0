"""Writes to the clearing house's books. The only code that posts journal entries.

Amounts cross these functions as ``Decimal`` EUR with at most two decimal
places; a sub-cent amount is refused, never rounded here (callers round with
``clearing.fees.to_cents`` where a rule says how).
"""

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from clearing.fees import CENT, fund_split, is_cents, trade_value
from clearing.models import (
    BANK_REFERENCE_MAX_LENGTH,
    GUARDED_KINDS,
    HOUSE_KINDS,
    MEMBER_KINDS,
    Account,
    CashDeposit,
    JournalEntry,
    JournalLine,
)
from clearing.selectors import fee_terms_at
from exchange.errors import ExchangeError

if TYPE_CHECKING:
    from accounts.models import Organisation, User
    from market.models import Trade

# numeric(18, 2): sixteen digits before the point.
_AMOUNT_LIMIT = Decimal("1e16")


def ledger_post(
    *,
    kind: str,
    lines: Sequence[tuple[Account, Decimal]],
    reference: str = "",
    memo: str = "",
    actor: "User | None" = None,
) -> JournalEntry:
    """Write one balanced journal entry and move the balances it names.

    Runs in a savepoint of the caller's transaction (it is deliberately not
    durable: the order service posts from inside its own). On any refusal
    nothing of the entry is left, even if the caller catches the error.

    Raises ``ExchangeError("invalid")`` for an unknown kind, fewer than two
    lines, a zero, non-Decimal or sub-cent amount, or lines that do not sum to
    zero; ``ExchangeError("insufficient_funds")`` when a guarded account
    (a member's money, the funds) would go below zero.
    """
    if kind not in JournalEntry.Kind.values:
        raise ExchangeError("invalid", _("Unknown journal entry kind."))
    if len(lines) < 2:
        raise ExchangeError("invalid", _("A journal entry needs at least two lines."))
    deltas: dict[int, Decimal] = {}
    kinds: dict[int, str] = {}
    postings: list[tuple[int, Decimal]] = []
    for account, amount in lines:
        if account.pk is None:
            raise ExchangeError("invalid", _("A journal line needs a saved account."))
        if not is_cents(amount) or amount == 0 or abs(amount) >= _AMOUNT_LIMIT:
            raise ExchangeError("invalid", _("Each journal line needs a non-zero amount in whole cents."))
        amount = amount.quantize(CENT)  # exact: is_cents() said nothing is below the cent
        postings.append((account.pk, amount))
        deltas[account.pk] = deltas.get(account.pk, Decimal("0.00")) + amount
        kinds[account.pk] = account.kind
    if sum(amount for _pk, amount in postings) != 0:
        raise ExchangeError("invalid", _("A journal entry must balance to zero."))

    with transaction.atomic():
        # Balances first, in account order: two entries touching the same
        # accounts take the row locks in the same order and cannot deadlock.
        for account_pk in _in_lock_order(deltas):
            delta = deltas[account_pk]
            if delta == 0:
                continue
            rows = Account.objects.filter(pk=account_pk)
            if kinds[account_pk] in GUARDED_KINDS:
                # The check and the change are one statement: PostgreSQL
                # re-evaluates the condition on the newest row version after
                # waiting for a concurrent writer, so no interleaving can
                # take the balance below zero.
                rows = rows.filter(balance__gte=-delta)
            if rows.update(balance=F("balance") + delta) != 1:
                raise ExchangeError("insufficient_funds", _insufficient_funds_detail(kinds[account_pk]))
        entry = JournalEntry.objects.create(kind=kind, reference=reference, memo=memo, actor=actor)
        JournalLine.objects.bulk_create(
            JournalLine(entry=entry, account_id=account_pk, amount=amount) for account_pk, amount in postings
        )
    return entry


def _in_lock_order(account_pks: Iterable[int]) -> list[int]:
    """Ascending pk: every transaction takes account row locks in one order."""
    return sorted(account_pks)


def accounts_for(*, organisation: "Organisation") -> dict[str, Account]:
    """The organisation's four accounts by kind, created on first use."""
    accounts = {account.kind: account for account in Account.objects.filter(organisation=organisation)}
    for kind in MEMBER_KINDS:
        if kind not in accounts:
            accounts[kind] = _account_get_or_create(organisation=organisation, kind=kind)
    return accounts


def house_account(kind: str) -> Account:
    """One of the clearing house's own accounts, created on first use."""
    if kind not in HOUSE_KINDS:
        raise ValueError(f"{kind!r} is not a house account kind")
    account = Account.objects.filter(organisation__isnull=True, kind=kind).first()
    return account or _account_get_or_create(organisation=None, kind=kind)


def _account_get_or_create(*, organisation: "Organisation | None", kind: str) -> Account:
    # Two requests may create the same account at once: the unique
    # constraints let one insert win; the loser's insert waits for the
    # winner's commit, fails, and reads the winner's row.
    try:
        with transaction.atomic():
            return Account.objects.create(organisation=organisation, kind=kind)
    except IntegrityError:
        return Account.objects.get(organisation=organisation, kind=kind)


def cash_reserve(
    *, organisation: "Organisation", amount: Decimal, reference: str, actor: "User | None" = None
) -> JournalEntry:
    """Move cash from available to reserved (a buy order enters).

    For the order service to call inside its transaction;
    ``insufficient_funds`` when the organisation has less available.
    """
    amount = _positive_cents(amount)
    accounts = accounts_for(organisation=organisation)
    return ledger_post(
        kind=JournalEntry.Kind.RESERVE,
        lines=[(accounts[Account.Kind.CASH_AVAILABLE], -amount), (accounts[Account.Kind.CASH_RESERVED], amount)],
        reference=reference,
        actor=actor,
    )


def cash_release(
    *, organisation: "Organisation", amount: Decimal, reference: str, actor: "User | None" = None
) -> JournalEntry:
    """Move cash from reserved back to available (a buy order is cancelled or expires)."""
    amount = _positive_cents(amount)
    accounts = accounts_for(organisation=organisation)
    return ledger_post(
        kind=JournalEntry.Kind.RELEASE,
        lines=[(accounts[Account.Kind.CASH_RESERVED], -amount), (accounts[Account.Kind.CASH_AVAILABLE], amount)],
        reference=reference,
        actor=actor,
    )


@transaction.atomic(durable=True)
def cash_deposit_book(
    *, operator: "User", organisation: "Organisation", amount: Decimal, bank_reference: str
) -> CashDeposit:
    """Book money that arrived at the clearing bank onto the member's available cash."""
    return _cash_deposit_book(operator=operator, organisation=organisation, amount=amount,
                              bank_reference=bank_reference)


def _cash_deposit_book(
    *, operator: "User", organisation: "Organisation", amount: Decimal, bank_reference: str
) -> CashDeposit:
    # The body of cash_deposit_book without its own transaction, for the
    # demo seed, which runs inside the seeding command's transaction.
    if not (operator.is_staff and operator.is_active):
        raise ExchangeError("not_permitted", _("Only operators may book deposits."))
    if not is_cents(amount) or amount <= 0 or amount >= _AMOUNT_LIMIT:
        raise ExchangeError("invalid", _("The deposit is invalid."),
                            fields={"amount": [_("Enter a positive amount in euros and cents.")]})
    amount = amount.quantize(CENT)
    if organisation.is_observer:
        # A public authority watches the market and never trades: it holds no cash here.
        raise ExchangeError("invalid", _("The deposit is invalid."),
                            fields={"organisation": [_("Observer organisations hold no cash.")]})
    bank_reference = (bank_reference or "").strip()
    if not bank_reference or len(bank_reference) > BANK_REFERENCE_MAX_LENGTH:
        raise ExchangeError("invalid", _("The deposit is invalid."),
                            fields={"bank_reference": [_("Enter the bank reference (at most 100 characters).")]})
    duplicate = ExchangeError("invalid", _("The deposit is invalid."),
                              fields={"bank_reference": [_("A deposit with this bank reference is already booked.")]})
    if CashDeposit.objects.filter(bank_reference=bank_reference).exists():
        raise duplicate

    accounts = accounts_for(organisation=organisation)
    entry = ledger_post(
        kind=JournalEntry.Kind.DEPOSIT,
        lines=[(accounts[Account.Kind.CASH_AVAILABLE], amount), (house_account(Account.Kind.BANK), -amount)],
        reference=f"bank:{bank_reference}",
        actor=operator,
    )
    try:
        with transaction.atomic():
            return CashDeposit.objects.create(
                organisation=organisation, amount=amount, bank_reference=bank_reference,
                booked_by=operator, entry=entry,
            )
    except IntegrityError:
        # The same transfer booked at this very moment by another operator:
        # the unique index let theirs win, and raising undoes our entry.
        raise duplicate from None


def _insufficient_funds_detail(kind: str) -> str:
    if kind == Account.Kind.CASH_AVAILABLE:
        return _("Not enough cash available.")
    return _("The balance of the account %(account)s is too low for this.") % {
        "account": Account.Kind(kind).label,
    }


def _positive_cents(amount: Decimal) -> Decimal:
    """The amount with exactly two places, or ExchangeError("invalid"); never rounds."""
    if not is_cents(amount) or amount <= 0 or amount >= _AMOUNT_LIMIT:
        raise ExchangeError("invalid", _("The amount must be positive and in whole cents."),
                            fields={"amount": [_("Enter a positive amount in euros and cents.")]})
    return amount.quantize(CENT)


def trade_book(*, trade: "Trade", reservation: Decimal) -> JournalEntry:
    """Post one trade (novation through the CCP) as one balanced entry.

    For the order service, inside its transaction, once per ``Trade`` row.
    With value ``V = price x quantity x hours``, buyer fee ``Fb``, seller fee
    ``Fs`` and ``R = reservation``, the part of the buy order's reservation
    that belonged to the filled quantity (docs/architecture.md, "The trade
    in the ledger")::

        buyer  cash_reserved       -R
        buyer  cash_available      +(R - V - Fb)   the unused part of the limit and the fee
        buyer  settlement_pending  +V
        seller settlement_pending  +(V - Fs)
        house  fee_revenue         +(Fb + Fs - Si - Sr)
        house  incentive_fund      +Si
        house  rnd_fund            +Sr
        house  ccp                 -V

    ``Si`` and ``Sr`` are the fund shares of the fee schedule in effect at
    ``trade.executed_at``, each HALF_UP to the cent, the remainder kept as
    fee revenue (``clearing.fees.fund_split``).

    Lines that come to 0.00 are left out (the ledger refuses zero lines).
    ``R - V - Fb`` is never negative when the order service reserved at the
    taker rate that is charged; should a rate ever rise between entry and
    fill, the difference is taken from the buyer's available cash (and
    ``insufficient_funds`` refuses the trade if it is not there). ``V >= Fs``
    holds because sell prices are at least the taker rate
    (``clearing.fees.min_sell_price``); a trade breaking it is a bug and
    raises ``ValueError``.
    """
    if not is_cents(reservation) or reservation < 0:
        raise ValueError(f"a reservation share is a non-negative amount in cents, not {reservation!r}")
    value = trade_value(trade.price, trade.quantity, trade.instrument.hours)
    buyer_fee, seller_fee = trade.buyer_fee, trade.seller_fee
    if not (is_cents(buyer_fee) and is_cents(seller_fee)) or buyer_fee < 0 or seller_fee < 0:
        raise ValueError("trade fees are non-negative amounts in cents")
    if seller_fee > value:
        raise ValueError(f"trade {trade.pk}: the seller fee {seller_fee} exceeds the value {value}")
    terms = fee_terms_at(trade.executed_at)
    kept, incentive, rnd = fund_split(buyer_fee + seller_fee, terms.incentive_fund_share, terms.rnd_fund_share)
    buyer = accounts_for(organisation=trade.buyer)
    seller = accounts_for(organisation=trade.seller)
    candidates = [
        (buyer[Account.Kind.CASH_RESERVED], -reservation),
        (buyer[Account.Kind.CASH_AVAILABLE], reservation - value - buyer_fee),
        (buyer[Account.Kind.SETTLEMENT_PENDING], value),
        (seller[Account.Kind.SETTLEMENT_PENDING], value - seller_fee),
        (house_account(Account.Kind.FEE_REVENUE), kept),
        (house_account(Account.Kind.INCENTIVE_FUND), incentive),
        (house_account(Account.Kind.RND_FUND), rnd),
        (house_account(Account.Kind.CCP), -value),
    ]
    return ledger_post(
        kind=JournalEntry.Kind.TRADE,
        lines=[(account, amount) for account, amount in candidates if amount != 0],
        reference=f"trade:{trade.pk}",
    )
