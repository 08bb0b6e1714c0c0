"""Fee invoices, numbered consecutively per calendar year (Europe/Berlin)
with no gap and no duplicate (docs/architecture.md, "Invoices").

``invoice_issue`` runs in the caller's transaction. The number comes from
one ``UPDATE ... RETURNING`` on the year's sequence row: the row lock makes
concurrent issuers wait for each other's commit, and a rollback undoes the
increment together with the invoice, so the next invoice takes the number.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from clearing.fees import CENT, VAT_RATE, is_cents
from clearing.models import Invoice, InvoiceLine, InvoiceSequence, JournalEntry

if TYPE_CHECKING:
    from accounts.models import Organisation

BERLIN = ZoneInfo("Europe/Berlin")
NUMBER_PREFIX = "RB"
# The fee schedule's rates are net; all members are German companies (KYC
# requires a DE VAT ID), so the fees carry German VAT at the standard rate
# (``clearing.fees.VAT_RATE``, which the fee reserve uses too).
VAT_NOTE = "Umsatzsteuer 19 % auf die Entgelte (§ 12 Abs. 1 UStG)."
_AMOUNT_LIMIT = Decimal("1e16")  # numeric(18, 2)


@dataclass(frozen=True)
class InvoiceLineData:
    """One line to invoice: a net amount in whole cents and what it is for."""

    description: str
    amount: Decimal
    quantity: Decimal = Decimal("1")
    unit: str = "GPUh"
    unit_price: Decimal | None = None


def issuer() -> dict[str, Any]:
    """The exchange operator as it appears on every invoice: name, street,
    postal_code, city, vat_id, register, and ``demo_data`` when these are
    the demo's placeholders (settings.INVOICE_ISSUER, from the environment)."""
    return dict(settings.INVOICE_ISSUER)


def format_invoice_number(year: int, sequence: int) -> str:
    return f"{NUMBER_PREFIX}-{year}-{sequence:06d}"


def invoice_issue(
    *,
    organisation: "Organisation",
    reference: str,
    lines: Sequence[InvoiceLineData],
    issued_at: datetime | None = None,
    entry: JournalEntry | None = None,
) -> Invoice:
    """Issue the invoice for ``reference``, or return the one already issued for it.

    Call it inside your transaction, as its last write (it holds the year's
    sequence row locked until you commit). Not durable. Raises ``ValueError``
    for a blank or over-long reference, no lines, an amount that is not a
    non-negative Decimal in whole cents, or a reference already invoiced to
    another organisation.
    """
    reference = (reference or "").strip()
    if not reference or len(reference) > Invoice._meta.get_field("reference").max_length:  # type: ignore[operator]
        raise ValueError("an invoice needs a reference of 1 to 100 characters")
    existing = Invoice.objects.filter(reference=reference).first()
    if existing is not None:
        return _same_organisation(existing, organisation)
    if not lines:
        raise ValueError("an invoice needs at least one line")
    for line in lines:
        if not is_cents(line.amount) or line.amount < 0 or line.amount >= _AMOUNT_LIMIT:
            raise ValueError(f"invoice line amounts are non-negative Decimals in whole cents, not {line.amount!r}")
        if not isinstance(line.quantity, Decimal) or not line.quantity.is_finite():
            raise ValueError(f"an invoice line's quantity is a Decimal, not {line.quantity!r}")
    issued_at = issued_at or timezone.now()
    year = issued_at.astimezone(BERLIN).year
    net_total = sum((line.amount for line in lines), Decimal("0")).quantize(CENT)
    # §14 UStG: the tax is stated on the invoice per rate, so it is computed
    # on the net total, not per line.
    vat_amount = (net_total * VAT_RATE / 100).quantize(CENT, rounding=ROUND_HALF_UP)

    try:
        with transaction.atomic():
            sequence = _next_sequence(year)
            invoice = Invoice.objects.create(
                number=format_invoice_number(year, sequence),
                year=year,
                sequence=sequence,
                organisation=organisation,
                issued_at=issued_at,
                reference=reference,
                recipient=_recipient(organisation),
                net_total=net_total,
                vat_rate=VAT_RATE,
                vat_amount=vat_amount,
                gross_total=net_total + vat_amount,
                vat_note=VAT_NOTE,
                entry=entry,
            )
            InvoiceLine.objects.bulk_create(
                InvoiceLine(
                    invoice=invoice, position=position, description=line.description[:255],
                    quantity=line.quantity, unit=line.unit, unit_price=line.unit_price,
                    amount=line.amount.quantize(CENT),
                )
                for position, line in enumerate(lines, start=1)
            )
    except IntegrityError:
        # The same reference issued by a concurrent caller, who held the
        # sequence lock before us: our savepoint returned our number.
        existing = Invoice.objects.filter(reference=reference).first()
        if existing is None:
            raise
        return _same_organisation(existing, organisation)
    return invoice


def _next_sequence(year: int) -> int:
    """The year's next number. Locks the year's sequence row until the transaction ends."""
    number = _increment(year)
    if number is None:
        # First invoice of the year. Concurrent creators: the unique index
        # lets one INSERT win, get_or_create catches the others'
        # IntegrityError in a savepoint and reads the winner's row.
        InvoiceSequence.objects.get_or_create(year=year)
        number = _increment(year)
    if number is None:  # pragma: no cover - the row exists now
        raise RuntimeError(f"no invoice sequence row for {year}")
    return number


def _increment(year: int) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE clearing_invoicesequence SET last_number = last_number + 1 WHERE year = %s RETURNING last_number",
            [year],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


def _same_organisation(invoice: Invoice, organisation: "Organisation") -> Invoice:
    if invoice.organisation_id != organisation.pk:
        raise ValueError(f"the reference {invoice.reference!r} is already invoiced to another organisation")
    return invoice


def _recipient(organisation: "Organisation") -> dict[str, Any]:
    return {
        "legal_name": organisation.legal_name,
        "street": organisation.street,
        "postal_code": organisation.postal_code,
        "city": organisation.city,
        "vat_id": organisation.vat_id,
    }
