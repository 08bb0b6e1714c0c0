"""Member screens of the clearing house: the organisation's statements (any
member) and its fee invoices (owners). The organisation is always the
signed-in user's own; anything else does not exist for them (404)."""

import io
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import Membership, Organisation, User
from accounts.selectors import membership_for
from clearing.invoicing import issuer
from clearing.models import Invoice, PayoutAccount, PayoutAccountChange, WithdrawalRequest
from clearing.payin import payin_instructions
from clearing.selectors import account_summary, withdrawals_of
from clearing.services import (
    delivery_access_post,
    delivery_confirm,
    delivery_dispute,
    may_read_access,
    tickets_visible_to,
    withdrawal_cancel,
    withdrawal_request,
)
from clearing.services.cash import claim_owed, payout_change_cancel, payout_change_request
from clearing.services.delivery import OPEN_STATUSES, tickets_flag_not_provided
from clearing.statements import (
    CsvDialect,
    csv_amount,
    csv_text,
    csv_time,
    csv_writer,
    is_statement_day,
    local_today,
    statement_for,
    write_statement_csv,
)
from exchange.errors import ExchangeError, add_error_to_form


class AuthedRequest(HttpRequest):
    """What the views below see: login_required guarantees a User."""

    user: User


def _membership_or_404(request: AuthedRequest) -> Membership:
    membership = membership_for(request.user)
    if membership is None:
        raise Http404
    return membership


def _account_holder(request: AuthedRequest) -> Membership:
    """A member whose organisation holds accounts: an observer (a ministry)
    has none, so it gets no statements (403, as for the trading area)."""
    membership = _membership_or_404(request)
    if membership.organisation.is_observer:
        raise PermissionDenied
    return membership


def _owner_or_404(request: AuthedRequest) -> Membership:
    membership = _membership_or_404(request)
    if not membership.is_owner:
        raise Http404
    return membership


def parse_day(text: str) -> date:
    """A YYYY-MM-DD day, or 404 (2026-02-30 does not exist, nor a statement of 0001-01-01)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise Http404 from None
    if not is_statement_day(day):
        raise Http404
    return day


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
    membership = _account_holder(request)
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
    return statement_csv_response(request, _account_holder(request).organisation, parse_day(day))


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


# --- Delivery tickets (issue 4; docs/architecture.md "Delivery and settlement") ----------------


def _party_tickets(request: AuthedRequest, membership: Membership) -> Any:
    org_id = membership.organisation_id
    return tickets_visible_to(user=request.user).filter(Q(buyer_id=org_id) | Q(seller_id=org_id))


@never_cache
@login_required
@require_GET
def delivery_list(request: AuthedRequest) -> HttpResponse:
    """The organisation's tickets, as buyer and as seller."""
    membership = _membership_or_404(request)
    # The beat job flags missing access every minute; the screen does not wait for it.
    tickets_flag_not_provided(organisation_id=membership.organisation_id)
    tickets = list(_party_tickets(request, membership).order_by("-delivery_start", "-pk")[:500])
    org_id = membership.organisation_id
    return render(request, "clearing/deliveries/list.html", {
        "membership": membership,
        "bought": [t for t in tickets if t.buyer_id == org_id],
        "sold": [t for t in tickets if t.seller_id == org_id],
        # Before delivery start the buyer can only dispute: its button says "View", not "Confirm".
        "now": timezone.now(),
    })


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def delivery_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    """One ticket: the access form for the seller; the access details and
    confirm/dispute for the buyer. Every action calls the service."""
    membership = _membership_or_404(request)
    if not _party_tickets(request, membership).filter(pk=pk).exists():
        raise Http404
    tickets_flag_not_provided(ticket_ids=[pk])
    ticket = _party_tickets(request, membership).get(pk=pk)
    error: ExchangeError | None = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "access":
                delivery_access_post(user=request.user, ticket=ticket, endpoint=request.POST.get("endpoint", ""),
                                     instructions=request.POST.get("instructions", ""))
                messages.success(request, _("The access details are posted for the buyer."))
            elif action == "confirm":
                delivery_confirm(user=request.user, ticket=ticket)
                messages.success(request, _("Delivery confirmed. The seller will be paid."))
            elif action == "dispute":
                delivery_dispute(user=request.user, ticket=ticket, reason=request.POST.get("reason", ""))
                messages.success(request, _("Dispute filed. An operator will resolve it."))
            else:
                raise Http404
            return redirect("delivery_detail", pk=ticket.pk)
        except ExchangeError as refused:
            error = refused
    is_buyer = ticket.buyer_id == membership.organisation_id
    is_open = ticket.status in OPEN_STATUSES
    return render(request, "clearing/deliveries/detail.html", {
        "membership": membership,
        "ticket": ticket,
        "is_buyer": is_buyer,
        "is_seller": ticket.seller_id == membership.organisation_id,
        "show_access": may_read_access(user=request.user, ticket=ticket) and is_buyer,
        "open": is_open,
        # The buyer confirms from delivery start on (issue 7); disputing is possible before.
        "can_confirm": is_open and ticket.started(),
        "not_provided": ticket.not_provided_at is not None,
        "error": error,
        "form_data": request.POST if error else {},
    }, status=400 if error else 200)


# --- withdrawals (issue 4; docs/architecture.md, "Fees, funds and withdrawals") ----------


class WithdrawalForm(forms.Form):
    amount = forms.DecimalField(label=_("Amount (EUR)"), min_value=Decimal("0.01"), max_digits=18,
                                decimal_places=2)


class PayoutAccountForm(forms.Form):
    iban = forms.CharField(label=_("IBAN"), max_length=42,
                           help_text=_("The organisation's bank account, e.g. DE89 3704 0044 0532 0130 00."))
    holder_name = forms.CharField(label=_("Account holder"), max_length=70,
                                  help_text=_("As the bank knows it, usually the organisation's legal name."))


@login_required
@never_cache
def withdrawals(request: AuthedRequest) -> HttpResponse:
    """Any member sees the organisation's payout account and requests; owners
    request withdrawals (paid only to the verified payout account), cancel
    them, and ask for a new payout account, which two operators verify."""
    membership = _membership_or_404(request)
    organisation = membership.organisation
    form = WithdrawalForm()
    account_form = PayoutAccountForm(initial={"holder_name": organisation.legal_name})
    status = 200
    if request.method == "POST":
        if not membership.is_owner:
            raise Http404
        action = request.POST.get("action")
        target: forms.Form = form
        try:
            if action == "cancel":
                row = get_object_or_404(WithdrawalRequest, pk=request.POST.get("request") or 0,
                                        organisation=organisation)
                withdrawal_cancel(user=request.user, request=row)
                flash.success(request, _("The withdrawal request is cancelled; the amount is available again."))
                return redirect("withdrawals")
            if action == "payout_cancel":
                change = get_object_or_404(PayoutAccountChange, pk=request.POST.get("change") or 0,
                                           organisation=organisation)
                payout_change_cancel(user=request.user, change=change)
                flash.success(request, _("The change of the payout account is cancelled."))
                return redirect("withdrawals")
            if action == "payout":
                target = account_form = PayoutAccountForm(request.POST)
                if account_form.is_valid():
                    payout_change_request(user=request.user, iban=account_form.cleaned_data["iban"],
                                          holder_name=account_form.cleaned_data["holder_name"])
                    flash.success(request, _("Payout account requested. It applies once two operators of the "
                                             "exchange have verified it."))
                    return redirect("withdrawals")
            else:
                target = form = WithdrawalForm(request.POST)
                if form.is_valid():
                    withdrawal_request(user=request.user, amount=form.cleaned_data["amount"])
                    flash.success(request, _("Withdrawal requested. An operator will pay it out after review."))
                    return redirect("withdrawals")
        except ExchangeError as error:
            add_error_to_form(target, error)
        status = 400 if target.errors else 200
    return render(request, "clearing/withdrawals.html", {
        "membership": membership,
        "form": form,
        "account_form": account_form,
        "payout_account": PayoutAccount.objects.filter(organisation=organisation).first(),
        "open_change": PayoutAccountChange.objects.filter(
            organisation=organisation, status__in=PayoutAccountChange.OPEN_STATUSES).first(),
        "owed": claim_owed(organisation=organisation),
        "available": account_summary(organisation=organisation)["cash_available"],
        "requests": withdrawals_of(organisation=organisation),
        "payin": payin_instructions(organisation),
    }, status=status)
