"""Writes to the clearing house's books. The only code that posts journal entries.

Amounts cross these functions as ``Decimal`` EUR with at most two decimal
places; a sub-cent amount is refused, never rounded here (callers round with
``clearing.fees.to_cents`` where a rule says how).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from clearing.fees import CENT, is_cents, trade_value
from clearing.models import (
    BANK_REFERENCE_MAX_LENGTH,
    CREDIT_KINDS,
    GUARDED_KINDS,
    HOUSE_KINDS,
    MEMBER_KINDS,
    Account,
    CashDeposit,
    JournalEntry,
    JournalLine,
)
from exchange.errors import ExchangeError
from exchange.formats import number
from exchange.locks import lock_organisations
from exchange.rawsql import Columns, fetch, placeholders

if TYPE_CHECKING:
    from accounts.models import Organisation, User
    from market.models import Trade

# numeric(18, 2): sixteen digits before the point.
_AMOUNT_LIMIT = Decimal("1e16")
ZERO = Decimal("0.00")


@dataclass
class Posting:
    """One journal entry to be written by ``ledger_post_all``."""

    kind: str
    lines: Sequence[tuple[Account, Decimal]]
    reference: str = ""
    memo: str = ""
    actor: "User | None" = None


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
    return ledger_post_all([Posting(kind=kind, lines=lines, reference=reference, memo=memo, actor=actor)])[0]


def ledger_post_all(postings: Sequence[Posting], *, savepoint: bool = True) -> list[JournalEntry]:
    """Write several balanced journal entries as one step of a transaction.

    This is how a transaction that posts more than one entry (an order that
    reserves cash, trades and releases the rest) keeps the one lock order
    (``exchange.locks``): every account's changes are summed first, then the
    member balances are changed in ONE pass in ascending account id, each
    with one conditional UPDATE; then all entries and all lines are inserted
    with one statement each.

    A guarded account is checked as if the entries were posted one after
    the other: its balance must cover the lowest point its running sum
    reaches (a reservation that a trade in the same transaction spends must
    be there first), so batching never lets through what posting entry by
    entry would refuse.

    House accounts carry no running balance (no row that every trade would
    update and hold locked until commit): their balance is the sum of their
    lines (``clearing.selectors.house_balances``). A posting that takes money
    OUT of a guarded house account (the funds) locks that account's row and
    checks the sum of its lines; credits to house accounts only insert lines.

    With ``savepoint=False`` (for a caller whose whole transaction fails on
    any refusal) no savepoint is set; otherwise nothing of the postings is
    left behind after a refusal even if the caller catches the error.
    """
    running: dict[int, Decimal] = {}
    lowest: dict[int, Decimal] = {}
    kinds: dict[int, str] = {}
    checked: list[tuple[Posting, list[tuple[int, Decimal]]]] = []
    for posting in postings:
        if posting.kind not in JournalEntry.Kind.values:
            raise ExchangeError("invalid", _("Unknown journal entry kind."))
        if len(posting.lines) < 2:
            raise ExchangeError("invalid", _("A journal entry needs at least two lines."))
        rows: list[tuple[int, Decimal]] = []
        for account, amount in posting.lines:
            if account.pk is None:
                raise ExchangeError("invalid", _("A journal line needs a saved account."))
            if not is_cents(amount) or amount == 0 or abs(amount) >= _AMOUNT_LIMIT:
                raise ExchangeError("invalid", _("Each journal line needs a non-zero amount in whole cents."))
            amount = amount.quantize(CENT)  # exact: is_cents() said nothing is below the cent
            rows.append((account.pk, amount))
            kinds[account.pk] = account.kind
        if sum(amount for _pk, amount in rows) != 0:
            raise ExchangeError("invalid", _("A journal entry must balance to zero."))
        # The lines of one entry happen at once (an account's lines net out
        # within it); entries happen one after the other.
        net: dict[int, Decimal] = {}
        for account_pk, amount in rows:
            net[account_pk] = net.get(account_pk, Decimal("0.00")) + amount
        for account_pk, amount in net.items():
            total = running.get(account_pk, Decimal("0.00")) + amount
            running[account_pk] = total
            lowest[account_pk] = min(lowest.get(account_pk, Decimal("0.00")), total)
        checked.append((posting, rows))

    with transaction.atomic(savepoint=savepoint):
        for account_pk in _in_lock_order(running):
            _apply_balance(account_pk, kinds[account_pk], net=running[account_pk], lowest=lowest[account_pk])
        entries = _insert_entries(checked)
    return entries


def _insert_entries(checked: list[tuple[Posting, list[tuple[int, Decimal]]]]) -> list[JournalEntry]:
    """All entries and all their lines with ONE statement (plain SQL: this
    runs in every order transaction). The entries' keys are drawn in the
    order of the VALUES list, so the n-th smallest new key is the n-th
    posting's entry, and each line joins its entry by that number."""
    now = JournalEntry._meta.get_field("created_at").get_default()  # the field's default, as an ORM insert would
    created = connection.ops.adapt_datetimefield_value(now)
    entry_table, line_table = JournalEntry._meta.db_table, JournalLine._meta.db_table
    lines = [(number, account_pk, amount)
             for number, (_posting, rows) in enumerate(checked, start=1) for account_pk, amount in rows]
    entry_values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(checked))
    line_values = ", ".join(["(%s, %s, %s)"] * len(lines))
    sql = (f'WITH entries AS (INSERT INTO "{entry_table}" (kind, reference, memo, actor_id, created_at) '  # noqa: S608 (model tables, placeholders)
           f"VALUES {entry_values} RETURNING id), "
           "numbered AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS number FROM entries), "
           f'written AS (INSERT INTO "{line_table}" (entry_id, account_id, amount) '
           f"SELECT numbered.id, line.account_id, line.amount FROM numbered JOIN (VALUES {line_values}) "
           "AS line (number, account_id, amount) ON line.number = numbered.number) "
           "SELECT id FROM numbered ORDER BY number")
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [*(value for posting, _rows in checked
               for value in (posting.kind, posting.reference, posting.memo,
                             posting.actor.pk if posting.actor is not None else None, created)),
             *(value for line in lines for value in line)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    entries = []
    for entry_id, (posting, _rows) in zip(ids, checked, strict=True):
        entry = JournalEntry(id=entry_id, kind=posting.kind, reference=posting.reference, memo=posting.memo,
                             actor=posting.actor, created_at=now)
        entry._state.adding = False
        entries.append(entry)
    return entries


def _in_lock_order(account_pks: Iterable[int]) -> list[int]:
    """Ascending pk: every transaction takes account row locks in one order."""
    return sorted(account_pks)


def _apply_balance(account_pk: int, kind: str, *, net: Decimal, lowest: Decimal) -> None:
    """One account's part of ``ledger_post_all``: guard and move a member
    balance in one statement, or check a guarded house account's lines."""
    need = -lowest  # what the balance must hold before: the deepest the running sum goes below zero
    if kind in HOUSE_KINDS:
        if kind in GUARDED_KINDS and need > 0:
            # A fund pays out (rare: grants). Lock its row so two payouts
            # queue, then check what its lines hold.
            Account.objects.select_for_update(no_key=True).filter(pk=account_pk).values_list("pk").first()
            held = JournalLine.objects.filter(account_id=account_pk).aggregate(total=Sum("amount"))["total"]
            if (held or Decimal("0.00")) < need:
                raise ExchangeError("insufficient_funds", insufficient_funds_detail(
                    kind, account_pk=account_pk, need=need, held=held or Decimal("0.00")))
        return
    if net == 0 and need == 0:
        return
    table = Account._meta.db_table
    sql = f'UPDATE "{table}" SET balance = balance + %s WHERE "{table}"."id" = %s'  # noqa: S608 (model table)
    params: list[Decimal | int] = [net, account_pk]
    if kind in GUARDED_KINDS and need > 0:
        # The check and the change are one statement: PostgreSQL
        # re-evaluates the condition on the newest row version after waiting
        # for a concurrent writer, so no interleaving can take the balance
        # below zero.
        sql += " AND balance >= %s"
        params.append(need)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise ExchangeError("insufficient_funds",
                                insufficient_funds_detail(kind, account_pk=account_pk, need=need))


def accounts_for(*, organisation: "Organisation") -> dict[str, Account]:
    """The organisation's four accounts by kind, created on first use."""
    book = ledger_accounts(organisation_ids=[organisation.pk], house=False)
    return {kind: book.member(organisation.pk, kind) for kind in MEMBER_KINDS}


def house_account(kind: str) -> Account:
    """One of the clearing house's own accounts, created on first use."""
    if kind not in HOUSE_KINDS:
        raise ValueError(f"{kind!r} is not a house account kind")
    account = Account.objects.filter(organisation__isnull=True, kind=kind).first()
    return account or _account_get_or_create(organisation=None, kind=kind)


@dataclass
class LedgerAccounts:
    """The accounts one transaction posts to, read with one query
    (``ledger_accounts``); missing ones are opened on first use."""

    accounts: dict[tuple[int | None, str], Account]
    # What this transaction's credit-aware postings have moved on the
    # members' ``credits``/``credits_reserved`` accounts so far (built, posted
    # or not): ``credit_balance`` adds it to the balances read after the lock.
    credit_moves: dict[tuple[int, str], Decimal] = field(default_factory=dict)

    def credit_balance(self, organisation_id: int, kind: str) -> Decimal:
        """A member's credits (or credits reserved) as this transaction sees them;
        0.00 when it has none. Opens no account: most members never get credits."""
        account = self.accounts.get((organisation_id, kind))
        held = account.balance if account is not None else Decimal("0.00")
        return held + self.credit_moves.get((organisation_id, kind), Decimal("0.00"))

    def credit_lines(self, organisation_id: int, moves: Sequence[tuple[str, Decimal]]) -> list[tuple[Account, Decimal]]:
        """The non-zero lines of ``moves`` on the member's accounts, noting those on credit accounts."""
        lines = []
        for kind, amount in moves:
            if amount == 0:
                continue
            if kind in CREDIT_KINDS:
                key = (organisation_id, kind)
                self.credit_moves[key] = self.credit_moves.get(key, Decimal("0.00")) + amount
            lines.append((self.member(organisation_id, kind), amount))
        return lines

    def member(self, organisation_id: int, kind: str) -> Account:
        account = self.accounts.get((organisation_id, kind))
        if account is None:
            account = _account_get_or_create(organisation_id=organisation_id, kind=kind)
            self.accounts[organisation_id, kind] = account
        return account

    def house(self, kind: str) -> Account:
        if kind not in HOUSE_KINDS:
            raise ValueError(f"{kind!r} is not a house account kind")
        account = self.accounts.get((None, kind))
        if account is None:
            account = _account_get_or_create(organisation=None, kind=kind)
            self.accounts[None, kind] = account
        return account


_ACCOUNT = Columns(Account, "a")


def ledger_accounts(*, organisation_ids: Iterable[int], house: bool = True) -> LedgerAccounts:
    """The accounts of these organisations (and with ``house`` the house
    accounts) in one plain statement (the order path reads them in every
    transaction); reads, locks nothing."""
    wanted = sorted(set(organisation_ids))
    parts = []
    if wanted:
        parts.append(f"SELECT {_ACCOUNT.sql} FROM {_ACCOUNT.table} a "  # noqa: S608 (model table)
                     f"WHERE a.organisation_id IN ({placeholders(len(wanted))})")
    if house:
        parts.append(f"SELECT {_ACCOUNT.sql} FROM {_ACCOUNT.table} a WHERE a.organisation_id IS NULL")  # noqa: S608
    accounts: dict[tuple[int | None, str], Account] = {}
    for row in fetch(" UNION ALL ".join(parts), wanted) if parts else []:
        account, _next = _ACCOUNT.load(row)
        accounts[account.organisation_id, account.kind] = account
    return LedgerAccounts(accounts)


def lock_and_read_accounts(organisation_ids: Iterable[int]) -> LedgerAccounts:
    """``exchange.locks.lock_organisations``, then ``ledger_accounts`` of
    those organisations and the house accounts: two statements.

    Two, not one: a statement reads every table with the snapshot it took
    when it started, so accounts read by the statement that waited for an
    organisation's lock would show the balances from before the holder's
    commit. The read after the lock sees them."""
    return ledger_accounts(organisation_ids=lock_organisations(organisation_ids))


def _account_get_or_create(
    *, kind: str, organisation: "Organisation | None" = None, organisation_id: int | None = None
) -> Account:
    # Two requests may create the same account at once: the unique
    # constraints let one insert win; the loser's insert waits for the
    # winner's commit, fails, and reads the winner's row.
    if organisation is not None:
        organisation_id = organisation.pk
    try:
        with transaction.atomic():
            return Account.objects.create(organisation_id=organisation_id, kind=kind)
    except IntegrityError:
        if organisation_id is None:
            return Account.objects.get(organisation__isnull=True, kind=kind)
        return Account.objects.get(organisation_id=organisation_id, kind=kind)


def cash_reserve(
    *, organisation: "Organisation", amount: Decimal, reference: str, actor: "User | None" = None
) -> JournalEntry:
    """Move cash from available to reserved (a buy order enters).

    For the order service to call inside its transaction;
    ``insufficient_funds`` when the organisation has less available.
    """
    book = ledger_accounts(organisation_ids=[organisation.pk], house=False)
    return ledger_post_all([reserve_posting(book=book, organisation_id=organisation.pk, amount=amount,
                                            reference=reference, actor=actor)])[0]


def cash_release(
    *, organisation: "Organisation", amount: Decimal, reference: str, actor: "User | None" = None
) -> JournalEntry:
    """Move cash from reserved back to available (a buy order is cancelled or expires)."""
    book = ledger_accounts(organisation_ids=[organisation.pk], house=False)
    return ledger_post_all([release_posting(book=book, organisation_id=organisation.pk, amount=amount,
                                            reference=reference, actor=actor)])[0]


@transaction.atomic(durable=True)
def cash_deposit_book(
    *, operator: "User", organisation: "Organisation", amount: Decimal, bank_reference: str
) -> CashDeposit:
    """Book money that arrived at the clearing bank onto the member's available cash.

    What the organisation owes the clearing house (``ccp_claim``, a refund it
    could not pay) is repaid from the deposit first: a ``claim`` entry of
    min(amount, owed) right after the deposit entry."""
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

    # Lock order (exchange.locks): the organisation, then its accounts. A
    # claim of the clearing house against the organisation is repaid first,
    # from this deposit, in a second entry of the same transaction; the
    # deposit entry stays the transfer the bank shows.
    lock_organisations([organisation.pk])
    available = accounts_for(organisation=organisation)[Account.Kind.CASH_AVAILABLE]
    postings = [Posting(kind=JournalEntry.Kind.DEPOSIT,
                        lines=[(available, amount), (house_account(Account.Kind.BANK), -amount)],
                        reference=f"bank:{bank_reference}", actor=operator)]
    claim = Account.objects.filter(organisation=organisation, kind=Account.Kind.CCP_CLAIM).first()
    if claim is not None:
        balances = dict(Account.objects.select_for_update(no_key=True).filter(pk__in=[available.pk, claim.pk])
                        .order_by("pk").values_list("pk", "balance"))
        repaid = min(amount, max(-balances[claim.pk], Decimal("0.00")))
        if repaid > 0:
            postings.append(Posting(kind=JournalEntry.Kind.CLAIM, lines=[(available, -repaid), (claim, repaid)],
                                    reference=f"claim:{organisation.pk}",
                                    memo=_("Claim of the clearing house repaid from a deposit"), actor=operator))
    entry = ledger_post_all(postings)[0]
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


def insufficient_funds_detail(kind: str, *, account_pk: int, need: Decimal, held: Decimal | None = None) -> str:
    """The refusal with its amounts: what the account holds and what the
    posting needs. Read here, on the refusal only: the guarded UPDATE that
    refused returns no balance (the figure may be a moment old; the refusal
    stands on the guard, not on it)."""
    if held is None:
        held = Account.objects.filter(pk=account_pk).values_list("balance", flat=True).first() or Decimal("0.00")
    figures = {"held": number(held), "need": number(need)}
    if kind == Account.Kind.CASH_AVAILABLE:
        return _("Not enough cash available: available %(held)s EUR, needed %(need)s EUR.") % figures
    return _("The balance of the account %(account)s is too low for this: balance %(held)s EUR, "
             "needed %(need)s EUR.") % {"account": Account.Kind(kind).label, **figures}


def _positive_cents(amount: Decimal) -> Decimal:
    """The amount with exactly two places, or ExchangeError("invalid"); never rounds."""
    if not is_cents(amount) or amount <= 0 or amount >= _AMOUNT_LIMIT:
        raise ExchangeError("invalid", _("The amount must be positive and in whole cents."),
                            fields={"amount": [_("Enter a positive amount in euros and cents.")]})
    return amount.quantize(CENT)


def reserve_posting(
    *, book: LedgerAccounts, organisation_id: int, amount: Decimal, reference: str, actor: "User | None" = None,
    credits: bool = False,
) -> Posting:
    """The entry that moves ``amount`` from available to reserved cash (a buy order enters).

    With ``credits`` (spot purchases: intraday and day-ahead, not futures
    margin) the member's incentive credits pay first: ``c = min(credits, amount)``
    moves from ``credits`` to ``credits_reserved`` and only the rest from
    available to reserved cash (docs/incentives.md, "Credits")."""
    amount = _positive_cents(amount)
    from_credit = min(max(book.credit_balance(organisation_id, Account.Kind.CREDITS), ZERO), amount) if credits \
        else ZERO
    return Posting(kind=JournalEntry.Kind.RESERVE, reference=reference, actor=actor, lines=book.credit_lines(
        organisation_id, [(Account.Kind.CREDITS, -from_credit), (Account.Kind.CREDITS_RESERVED, from_credit),
                          (Account.Kind.CASH_AVAILABLE, -(amount - from_credit)),
                          (Account.Kind.CASH_RESERVED, amount - from_credit)]))


def release_posting(
    *, book: LedgerAccounts, organisation_id: int, amount: Decimal, reference: str, actor: "User | None" = None,
    credits: bool = False,
) -> Posting:
    """The entry that moves ``amount`` from reserved back to available cash.

    With ``credits`` (a spot purchase's reservation) reserved credits go back
    first, to ``credits``: released credit never turns into withdrawable cash."""
    amount = _positive_cents(amount)
    return Posting(kind=JournalEntry.Kind.RELEASE, reference=reference, actor=actor, lines=book.credit_lines(
        organisation_id, _from_reserved(book, organisation_id, amount, credits=credits, back=True)))


def _from_reserved(book: LedgerAccounts, organisation_id: int, amount: Decimal, *, credits: bool,
                   back: bool) -> list[tuple[str, Decimal]]:
    """Take ``amount`` out of the member's reservations, reserved credits first
    (with ``credits``); with ``back`` each part returns where it came from."""
    from_credit = min(max(book.credit_balance(organisation_id, Account.Kind.CREDITS_RESERVED), ZERO), amount) \
        if credits else ZERO
    moves: list[tuple[str, Decimal]] = [(Account.Kind.CREDITS_RESERVED, -from_credit),
                                         (Account.Kind.CASH_RESERVED, -(amount - from_credit))]
    if back:
        moves += [(Account.Kind.CREDITS, from_credit), (Account.Kind.CASH_AVAILABLE, amount - from_credit)]
    return moves


def reserved_spend_lines(book: LedgerAccounts, organisation_id: int, amount: Decimal, *,
                         credits: bool = False) -> list[tuple[Account, Decimal]]:
    """The lines that take ``amount`` out of the member's reservations (reserved
    credits first with ``credits``) for the caller to put somewhere else."""
    return book.credit_lines(organisation_id, _from_reserved(book, organisation_id, amount, credits=credits,
                                                             back=False))


def trade_posting(*, trade: "Trade", reservation: Decimal, hours: int, book: LedgerAccounts,
                  buyer_held: Decimal, seller_held: Decimal, credits: bool = False) -> Posting:
    """The entry of one trade (novation through the CCP); reads nothing.

    For the order service, once per ``Trade`` row, posted with the other
    entries of its transaction by ``ledger_post_all``. With value
    ``V = price x quantity x hours``, ``R = reservation`` (the part of the
    buy order's reservation that belonged to the filled quantity) and
    ``Δb``/``Δs`` = ``buyer_held``/``seller_held``, what each side moves into
    its fee reserve for this trade (``clearing.services.fees.FeeBook``;
    docs/architecture.md, "Fees as published")::

        buyer  cash_reserved       -R
        buyer  cash_available      +(R - V - Δb)   the unused part of the limit and the fee
        buyer  settlement_pending  +V
        buyer  fee_reserve         +Δb
        seller settlement_pending  +(V - Δs)
        seller fee_reserve         +Δs
        house  ccp                 -V

    No fee revenue at the trade: fees are charged once a month. The one
    house line only inserts a row (house accounts carry no running balance).

    With ``credits`` (a spot trade) the buyer's reserved credits pay first:
    of ``R``, ``c = min(credits reserved, R)`` is credit, and the credit spent is
    ``s = min(c, V + Δb)``; the unspent credit ``c - s`` goes back to
    ``credits`` and only the cash part ``R - c`` pays the rest and returns
    what is left to ``cash_available``::

        buyer  credits_reserved    -c
        buyer  credits             +(c - s)
        buyer  cash_reserved       -(R - c)
        buyer  cash_available      +(R - c - (V + Δb - s))

    Lines that come to 0.00 are left out (the ledger refuses zero lines).
    ``R - V - Δb`` is never negative: the order reserved ``max_fee`` at its
    entry's taker rate, and no fill steps the reserve by more than that
    (``clearing.fees``). ``V >= Δs`` holds because sell prices are at least
    ``clearing.fees.min_sell_price``; a trade breaking either is a bug and
    raises ``ValueError``.
    """
    if not is_cents(reservation) or reservation < 0:
        raise ValueError(f"a reservation share is a non-negative amount in cents, not {reservation!r}")
    value = trade_value(trade.price, trade.quantity, hours)
    if not (is_cents(buyer_held) and is_cents(seller_held)) or buyer_held < 0 or seller_held < 0:
        raise ValueError("the fees held at a trade are non-negative amounts in cents")
    if seller_held > value:
        raise ValueError(f"trade {trade.pk}: the seller's fee step {seller_held} exceeds the value {value}")
    if reservation - value - buyer_held < 0:
        raise ValueError(f"trade {trade.pk}: the reservation {reservation} does not cover {value} + {buyer_held}")
    buyer, seller = trade.buyer_id, trade.seller_id
    spent = value + buyer_held
    credit = min(max(book.credit_balance(buyer, Account.Kind.CREDITS_RESERVED), ZERO), reservation) if credits \
        else ZERO
    credit_spent = min(credit, spent)
    # An account is looked up (and opened on first use) only for a line that is there.
    lines = book.credit_lines(buyer, [
        (Account.Kind.CREDITS_RESERVED, -credit),
        (Account.Kind.CREDITS, credit - credit_spent),
        (Account.Kind.CASH_RESERVED, -(reservation - credit)),
        (Account.Kind.CASH_AVAILABLE, reservation - credit - (spent - credit_spent)),
        (Account.Kind.SETTLEMENT_PENDING, value),
        (Account.Kind.FEE_RESERVE, buyer_held),
    ]) + book.credit_lines(seller, [
        (Account.Kind.SETTLEMENT_PENDING, value - seller_held),
        (Account.Kind.FEE_RESERVE, seller_held),
    ])
    if value:
        lines.append((book.house(Account.Kind.CCP), -value))
    return Posting(kind=JournalEntry.Kind.TRADE, reference=f"trade:{trade.pk}", lines=lines)


def futures_trade_posting(*, trade: "Trade", buyer_share: Decimal, seller_share: Decimal, book: LedgerAccounts,
                          buyer_held: Decimal, seller_held: Decimal,
                          unreserved: dict[int, tuple[Decimal, Decimal]] | None = None,
                          credits: bool = False) -> Posting:
    """The entry of one futures trade; reads nothing.

    A future is settled in cash against its daily settlement prices
    (variation margin, ``market.services.futures``), so the trade itself
    moves no value: each side only takes its fee step ``Δ`` into its fee
    reserve from the part ``R`` of its order's fee reservation that the
    filled quantity held (both sides reserve fees; docs "Futures")::

        buyer  cash_reserved  -Rb      seller cash_reserved  -Rs
        buyer  cash_available +(Rb-Δb) seller cash_available +(Rs-Δs)
        buyer  fee_reserve    +Δb      seller fee_reserve    +Δs

    Each side balances on its own; no house line (no hot row). ``R >= Δ``
    always (the order reserved ``max_fee`` at its entry's rate); a trade
    breaking it is a bug and raises ``ValueError``.

    ``unreserved``: organisation id -> (available cash, margin held) of a
    side whose order reserved nothing (an operator's close-out of a member
    that may have nothing left): its fee step is paid from available cash,
    then from the margin, and what neither holds is owed to the clearing
    house (``ccp_claim``, as for variation margin).

    With ``credits`` each side's reserved incentive credits pay its fee
    first, as in ``trade_posting``: ``c = min(credits reserved, R)``, the
    fee ``min(c, Δ)`` from it, the rest of ``c`` back to ``credits``."""
    lines: list[tuple[Account, Decimal]] = []
    for organisation_id, share, held in ((trade.buyer_id, buyer_share, buyer_held),
                                         (trade.seller_id, seller_share, seller_held)):
        if not (is_cents(share) and is_cents(held)) or share < 0 or held < 0:
            raise ValueError("a futures trade's fee reservation and fee step are non-negative amounts in cents")
        if unreserved is not None and organisation_id in unreserved:
            cash, margin = unreserved[organisation_id]
            from_cash = min(max(cash, Decimal("0.00")), held)
            from_margin = min(max(margin, Decimal("0.00")), held - from_cash)
            for kind, amount in ((Account.Kind.CASH_AVAILABLE, -from_cash), (Account.Kind.MARGIN, -from_margin),
                                 (Account.Kind.CCP_CLAIM, -(held - from_cash - from_margin)),
                                 (Account.Kind.FEE_RESERVE, held)):
                if amount:
                    lines.append((book.member(organisation_id, kind), amount))
            continue
        if held > share:
            raise ValueError(f"trade {trade.pk}: the fee step {held} exceeds the reservation {share}")
        credit = min(max(book.credit_balance(organisation_id, Account.Kind.CREDITS_RESERVED), ZERO), share) \
            if credits else ZERO
        credit_spent = min(credit, held)
        lines += book.credit_lines(organisation_id, [
            (Account.Kind.CREDITS_RESERVED, -credit), (Account.Kind.CREDITS, credit - credit_spent),
            (Account.Kind.CASH_RESERVED, -(share - credit)),
            (Account.Kind.CASH_AVAILABLE, share - credit - (held - credit_spent)),
            (Account.Kind.FEE_RESERVE, held)])
    return Posting(kind=JournalEntry.Kind.TRADE, reference=f"trade:{trade.pk}", lines=lines)
