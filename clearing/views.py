"""Member screens of the clearing house: the organisation's statements (any
member) and its fee invoices (owners). The organisation is always the
signed-in user's own; anything else does not exist for them (404)."""

import io
from datetime import date, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.models import Membership, Organisation, User
from accounts.selectors import membership_for
from clearing.invoicing import issuer
from clearing.models import Invoice
from clearing.statements import (
    CsvDialect,
    csv_amount,
    csv_text,
    csv_time,
    csv_writer,
    local_today,
    statement_for,
    write_statement_csv,
)


class AuthedRequest(HttpRequest):
    """What the views below see: login_required guarantees a User."""

    user: User


def _membership_or_404(request: AuthedRequest) -> Membership:
    membership = membership_for(request.user)
    if membership is None:
        raise Http404
    return membership


def _owner_or_404(request: AuthedRequest) -> Membership:
    membership = _membership_or_404(request)
    if not membership.is_owner:
        raise Http404
    return membership


def parse_day(text: str) -> date:
    """A YYYY-MM-DD day, or 404 (2026-02-30 does not exist)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Http404 from None


def _dialect(request: HttpRequest) -> CsvDialect:
    return "en" if request.GET.get("lang") == "en" else "de"


def _csv_response(text: str, *, filename: str) -> HttpResponse:
    response = HttpResponse(text.encode("utf-8"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


# --- Statements ---------------------------------------------------------------------------


@login_required
@require_GET
@never_cache
def statement(request: AuthedRequest, day: str | None = None) -> HttpResponse:
    """The statement of one local day: today at /statements/, any day at /statements/YYYY-MM-DD/."""
    membership = _membership_or_404(request)
    if day is None and request.GET.get("day"):
        # The day picker submits ?day=YYYY-MM-DD; the day's page has its own URL.
        return redirect("statement_day", day=parse_day(request.GET["day"]).isoformat())
    today = local_today()
    the_day = parse_day(day) if day is not None else today
    if request.GET.get("format") == "csv":
        return statement_csv_response(request, membership.organisation, the_day)
    context: dict[str, Any] = {
        "membership": membership,
        "statement": statement_for(organisation=membership.organisation, day=the_day),
        "today": today,
        "previous_day": the_day - timedelta(days=1),
        "next_day": the_day + timedelta(days=1) if the_day < today else None,
    }
    return render(request, "clearing/statement.html", context)


@login_required
@require_GET
@never_cache
def statement_csv(request: AuthedRequest, day: str) -> HttpResponse:
    return statement_csv_response(request, _membership_or_404(request).organisation, parse_day(day))


def statement_csv_response(request: HttpRequest, organisation: Organisation, day: date) -> HttpResponse:
    """The statement as a CSV download; German Excel unless ?lang=en (also used by the admin)."""
    dialect = _dialect(request)
    out = io.StringIO()
    write_statement_csv(statement_for(organisation=organisation, day=day), out, dialect=dialect)
    name = "kontoauszug" if dialect == "de" else "statement"
    return _csv_response(out.getvalue(), filename=f"{name}-{day.isoformat()}.csv")


# --- Invoices -----------------------------------------------------------------------------


@login_required
@require_GET
@never_cache
def invoice_list(request: AuthedRequest) -> HttpResponse:
    membership = _owner_or_404(request)
    invoices = Invoice.objects.filter(organisation=membership.organisation).order_by("-year", "-sequence")
    return render(request, "clearing/invoice_list.html", {"membership": membership, "invoices": invoices})


@login_required
@require_GET
@never_cache
def invoice_list_csv(request: AuthedRequest) -> HttpResponse:
    membership = _owner_or_404(request)
    dialect = _dialect(request)
    out = io.StringIO()
    writer = csv_writer(out, dialect)
    with translation.override(dialect):
        writer.writerow([_("Invoice number"), _("Issued at"), _("Reference"), _("Net total (EUR)"),
                         _("VAT rate (%)"), _("VAT (EUR)"), _("Gross total (EUR)")])
    for invoice in Invoice.objects.filter(organisation=membership.organisation).order_by("year", "sequence"):
        writer.writerow([
            invoice.number, csv_time(invoice.issued_at, dialect), csv_text(invoice.reference),
            csv_amount(invoice.net_total, dialect), csv_amount(invoice.vat_rate, dialect),
            csv_amount(invoice.vat_amount, dialect), csv_amount(invoice.gross_total, dialect),
        ])
    name = "rechnungen" if dialect == "de" else "invoices"
    return _csv_response(out.getvalue(), filename=f"{name}.csv")


@login_required
@require_GET
@never_cache
def invoice_detail(request: AuthedRequest, number: str) -> HttpResponse:
    membership = _owner_or_404(request)
    invoice = (
        Invoice.objects.filter(organisation=membership.organisation, number=number)
        .prefetch_related("lines").first()
    )
    if invoice is None:
        raise Http404
    return render(request, "clearing/invoice_detail.html",
                  {"membership": membership, "invoice": invoice, "issuer": issuer()})
