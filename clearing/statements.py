"""Statements: every ledger line of an organisation's accounts on one local
day (Europe/Berlin), with the running balance of each account, and its CSV
form (docs/architecture.md, "Statements").
"""

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TextIO

from django.db.models import Sum
from django.utils import timezone, translation
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from clearing.models import MEMBER_EXTRA_KINDS, MEMBER_KINDS, Account, JournalEntry, JournalLine
from market.calendar import BERLIN, local_midnight

if TYPE_CHECKING:
    from accounts.models import Organisation

ZERO = Decimal("0.00")
CsvDialect = Literal["de", "en"]
# A cell starting with one of these is a formula to Excel and LibreOffice.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class StatementLine:
    at: datetime
    entry_id: int
    entry_kind: str
    entry_kind_label: str
    reference: str
    memo: str
    account_kind: str
    account_kind_label: str
    amount: Decimal
    balance: Decimal  # the running balance of this line's account after it


@dataclass(frozen=True)
class AccountSummary:
    kind: str
    label: str
    opening: Decimal
    debits: Decimal  # the sum of the day's negative lines (<= 0)
    credits: Decimal  # the sum of the day's positive lines (>= 0)
    closing: Decimal


@dataclass(frozen=True)
class Statement:
    organisation: "Organisation"
    day: date
    starts_at: datetime
    ends_at: datetime
    accounts: list[AccountSummary]
    lines: list[StatementLine]


# The days a statement can be asked for: those whose bounds, and the
# neighbours its page links to, are datetimes. 0001-01-01's local midnight
# lies in year 0 in UTC, and 9999-12-31 has no next day; both overflow.
FIRST_DAY = date.min + timedelta(days=1)
LAST_DAY = date.max - timedelta(days=1)


def is_statement_day(day: date) -> bool:
    return FIRST_DAY <= day <= LAST_DAY


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where the Europe/Berlin ``day`` starts and the next one starts (23 to 25 hours)."""
    return local_midnight(day), local_midnight(day + timedelta(days=1))


def local_today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(BERLIN).date()


def statement_for(*, organisation: "Organisation", day: date) -> Statement:
    """The organisation's statement of ``day``. Three queries."""
    if not is_statement_day(day):
        raise ValueError(f"No statement for {day}: outside {FIRST_DAY}..{LAST_DAY}.")
    starts_at, ends_at = day_bounds(day)
    accounts = {account.pk: account.kind for account in Account.objects.filter(organisation=organisation)}
    # The four accounts every member has, then those it opened later (a
    # withdrawal account), in one fixed order.
    kinds = [*MEMBER_KINDS, *(kind for kind in MEMBER_EXTRA_KINDS if kind in accounts.values())]
    opening_by_kind = dict.fromkeys(kinds, ZERO)
    opening_rows = (
        JournalLine.objects.filter(account_id__in=accounts, entry__created_at__lt=starts_at)
        .order_by().values("account_id").annotate(total=Sum("amount")).values_list("account_id", "total")
    )
    for account_pk, total in opening_rows:
        opening_by_kind[accounts[account_pk]] = total
    day_lines = (
        JournalLine.objects.filter(account_id__in=accounts, entry__created_at__gte=starts_at,
                                   entry__created_at__lt=ends_at)
        .select_related("entry")
        .order_by("entry__created_at", "entry_id", "id")
    )
    running = dict(opening_by_kind)
    debits: dict[str, Decimal] = defaultdict(lambda: ZERO)
    credits: dict[str, Decimal] = defaultdict(lambda: ZERO)
    lines: list[StatementLine] = []
    for line in day_lines:
        kind = accounts[line.account_id]
        running[kind] += line.amount
        (credits if line.amount > 0 else debits)[kind] += line.amount
        entry: JournalEntry = line.entry
        lines.append(StatementLine(
            at=entry.created_at,
            entry_id=entry.pk,
            entry_kind=entry.kind,
            entry_kind_label=str(JournalEntry.Kind(entry.kind).label),
            reference=entry.reference,
            memo=entry.memo,
            account_kind=kind,
            account_kind_label=str(Account.Kind(kind).label),
            amount=line.amount,
            balance=running[kind],
        ))
    summaries = [
        AccountSummary(kind=kind, label=str(Account.Kind(kind).label), opening=opening_by_kind[kind],
                       debits=debits[kind], credits=credits[kind], closing=running[kind])
        for kind in kinds
    ]
    return Statement(organisation=organisation, day=day, starts_at=starts_at, ends_at=ends_at,
                     accounts=summaries, lines=lines)


# --- CSV ----------------------------------------------------------------------------------


def csv_text(value: str) -> str:
    """A text cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_amount(amount: Decimal, dialect: CsvDialect) -> str:
    """-1234.56 as ``-1234,56`` for German Excel, ``-1234.56`` otherwise; no thousands separator."""
    text = f"{amount:.2f}"
    return text.replace(".", ",") if dialect == "de" else text


def csv_time(at: datetime, dialect: CsvDialect) -> str:
    local = at.astimezone(BERLIN)
    return local.strftime("%d.%m.%Y %H:%M:%S") if dialect == "de" else local.isoformat(timespec="seconds")


def csv_writer(out: TextIO, dialect: CsvDialect) -> Any:  # csv.writer's type is private (_csv)
    """German Excel: UTF-8 with BOM and ';'. English: plain UTF-8 and ','."""
    if dialect == "de":
        out.write("\ufeff")
    return csv.writer(out, delimiter=";" if dialect == "de" else ",", lineterminator="\r\n")


def write_statement_csv(statement: Statement, out: TextIO, *, dialect: CsvDialect = "de") -> None:
    """The statement's lines as CSV, headers in the dialect's language."""
    writer = csv_writer(out, dialect)
    with translation.override(dialect):
        writer.writerow([
            _("Time"), _("Entry"), _("Entry kind"), _("Reference"), _("Memo"), _("Account"),
            _("Amount (EUR)"), _("Balance (EUR)"),
        ])
        for line in statement.lines:
            writer.writerow([
                csv_time(line.at, dialect),
                line.entry_id,
                capfirst(str(JournalEntry.Kind(line.entry_kind).label)),
                csv_text(line.reference),
                csv_text(line.memo),
                capfirst(str(Account.Kind(line.account_kind).label)),
                csv_amount(line.amount, dialect),
                csv_amount(line.balance, dialect),
            ])
