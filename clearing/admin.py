"""Operator views of the books. Everything is read-only except booking a bank
deposit, which goes through ``clearing.services.cash_deposit_book``."""

from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from clearing.models import (
    Account,
    CashDeposit,
    DeliveryTicket,
    FeeAccrual,
    FeeSchedule,
    Invoice,
    InvoiceLine,
    JobFailure,
    JournalEntry,
    JournalLine,
    PayoutAccount,
    PayoutAccountChange,
    ReconciliationRun,
    StatementOrganisation,
    WithdrawalRequest,
)
from clearing.reconcile import run_checks
from clearing.selectors import account_summary, with_current_balance
from clearing.services import cash_deposit_book, dispute_resolve, withdrawal_approve, withdrawal_reject
from clearing.services.cash import (
    ccp_claim_collect,
    claim_owed,
    four_eyes_refusal,
    payout_change_approve,
    payout_change_reject,
    payout_change_request,
    payout_four_eyes_refusal,
)
from clearing.services.delivery import delivery_hold, tickets_flag_not_provided
from clearing.services.jobs import job_failures_acknowledge
from clearing.statements import local_today, statement_for
from exchange.admin import (
    BookedByServiceAdminMixin,
    ExchangeModelAdmin,
    NoBulkDeleteMixin,
    ReadOnlyAdminMixin,
    admin_link,
    grouped,
)
from exchange.errors import ExchangeError, add_error_to_form
from exchange.formats import number
from market.models import Order, Trade


class CashDepositAddForm(forms.ModelForm):
    """Collects the three inputs; the service books them and its errors land at the fields."""

    # Set per request by CashDepositAdmin.get_form.
    operator: Any = None

    amount = forms.DecimalField(label=_("amount (EUR)"), min_value=Decimal("0.01"), max_digits=18, decimal_places=2)

    class Meta:
        model = CashDeposit
        fields = ("organisation", "amount", "bank_reference")

    def clean(self) -> dict[str, Any]:
        # Not calling ModelForm.clean on purpose: it would turn on the model's
        # uniqueness check, which the service makes race-free itself.
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        try:
            self.instance = cash_deposit_book(
                operator=self.operator,
                organisation=cleaned["organisation"],
                amount=cleaned["amount"],
                bank_reference=cleaned["bank_reference"],
            )
        except ExchangeError as error:
            # add_error_to_form uses only the BaseForm API a ModelForm has too.
            add_error_to_form(self, error)
        return cleaned


@admin.register(CashDeposit)
class CashDepositAdmin(BookedByServiceAdminMixin, ExchangeModelAdmin):
    list_display = ("booked_at", "organisation", "amount", "bank_reference", "booked_by")
    list_select_related = ("organisation", "booked_by")
    search_fields = ("bank_reference", "organisation__legal_name")
    date_hierarchy = "booked_at"
    form = CashDepositAddForm
    add_fields = ("organisation", "amount", "bank_reference")
    booked_fields = ("organisation", "amount", "bank_reference", "booked_by", "booked_at", "entry")


class ClaimCollectForm(forms.Form):
    reason = forms.CharField(label=_("reason (goes into the audit log)"), max_length=255,
                             widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Account)
class AccountAdmin(NoBulkDeleteMixin, ReadOnlyAdminMixin, ExchangeModelAdmin):
    """Read-only balances. A member's ``ccp_claim`` account that is negative
    (the organisation owes the clearing house) links to the page where an
    operator collects the claim from its available cash
    (``clearing.services.cash.ccp_claim_collect``, audited with a reason)."""

    list_display = ("__str__", "organisation", "kind", "current_balance", "claim_link")
    list_filter = ("kind",)
    list_select_related = ("organisation",)
    search_fields = ("organisation__legal_name",)
    fields = ("organisation", "kind", "current_balance", "created_at")
    readonly_fields = fields
    actions = ("collect_claim",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        # House accounts keep no running balance (issue 7): theirs is the sum of their lines.
        return with_current_balance(super().get_queryset(request)).order_by("organisation__legal_name", "kind")

    @admin.display(description=_("balance"), ordering="current_balance")
    def current_balance(self, obj: Account) -> str:
        # Formatted here: the admin shows a method's value on the detail page unlocalised.
        return grouped(obj.current_balance, 2)  # type: ignore[attr-defined]  # from get_queryset

    @staticmethod
    def _owes(obj: Account) -> bool:
        return obj.kind == Account.Kind.CCP_CLAIM and obj.balance < 0

    @admin.display(description=_("claim"))
    def claim_link(self, obj: Account) -> str:
        if not self._owes(obj):
            return ""
        return format_html('<a href="{}">{}</a>', reverse("admin:clearing_account_collect", args=[obj.pk]),
                           gettext("Collect…"))


    @admin.action(description=_("Collect the clearing house's claim"))
    def collect_claim(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        if queryset.count() != 1 or not self._owes(queryset.get()):
            self.message_user(request, gettext("Choose one claim of the clearing house (kind \"claim of the "
                                               "clearing house\", negative balance)."), messages.WARNING)
            return None
        return redirect("admin:clearing_account_collect", pk=queryset.get().pk)

    def get_urls(self) -> list[URLPattern]:
        custom = [path("<int:pk>/collect/", self.admin_site.admin_view(self.collect_view),
                       name="clearing_account_collect")]
        return custom + super().get_urls()

    def collect_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not (self.has_view_permission(request) and request.user.is_staff):
            raise PermissionDenied
        account = get_object_or_404(Account.objects.select_related("organisation"), pk=pk,
                                    kind=Account.Kind.CCP_CLAIM, organisation__isnull=False)
        organisation = cast(Organisation, account.organisation)  # the query asked for one
        form = ClaimCollectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = ccp_claim_collect(operator=request.user,
                                          organisation=organisation, reason=form.cleaned_data["reason"])
            except ExchangeError as error:
                add_error_to_form(form, error)
            else:
                collected = sum((line.amount for line in entry.lines.all() if line.account_id == account.pk),
                                Decimal("0.00"))
                self.message_user(request, gettext("%(amount)s EUR of the claim against %(organisation)s collected.")
                                  % {"amount": number(collected), "organisation": organisation.legal_name},
                                  messages.SUCCESS)
                return redirect("admin:clearing_account_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Collect the claim against %(organisation)s") % {"organisation": organisation.legal_name},
            "organisation": organisation,
            "owed": claim_owed(organisation=organisation),
            "available": account_summary(organisation=organisation)[Account.Kind.CASH_AVAILABLE],
            "form": form,
        }
        return TemplateResponse(request, "admin/clearing/account/collect.html", context)


class JournalLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = JournalLine
    fields = ("account", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False


def _reference_target(reference: str) -> Any:
    """The object a journal reference names (``trade:12``, ``order:7``,
    ``delivery:3``, ``withdrawal:5``, ``claim:<organisation>``,
    ``fees:<organisation>:<month>``, ``bank:<bank reference>``), or None."""
    kind, _sep, rest = reference.partition(":")
    key = rest.split(":")[0]
    if kind == "bank":
        return CashDeposit.objects.filter(bank_reference=rest).first()
    model = {"trade": Trade, "order": Order, "delivery": DeliveryTicket, "withdrawal": WithdrawalRequest,
             "claim": Organisation, "fees": Organisation}.get(kind)
    if model is None or not key.isdigit():
        return None
    return model._default_manager.filter(pk=int(key)).first()


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdminMixin, ExchangeModelAdmin):
    list_display = ("id", "created_at", "kind", "reference_link", "memo", "actor")
    list_filter = ("kind",)
    list_select_related = ("actor",)
    search_fields = ("reference", "memo")
    date_hierarchy = "created_at"
    fields = ("kind", "reference", "memo", "actor", "created_at")
    readonly_fields = fields
    inlines = (JournalLineInline,)
    actions = None

    @admin.display(description=_("reference"), ordering="reference")
    def reference_link(self, obj: JournalEntry) -> str:
        """The reference as a link to what it names (one query a row, on a page of 100)."""
        if not obj.reference:
            return "–"
        target = _reference_target(obj.reference)
        if target is None:
            return obj.reference
        return format_html("{} ({})", admin_link(target), obj.reference)


# --- Reconciliation, statements and invoices (issue 4) ------------------------------------


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdminMixin, ExchangeModelAdmin):
    """The "Abstimmung" page: every check run now, green or red, above the
    history of the scheduled runs (clearing.reconcile)."""

    list_display = ("started_at", "ok", "broken_checks_display", "alert_sent")
    date_hierarchy = "started_at"
    fields = ("started_at", "finished_at", "ok", "checks", "breaches_display", "alert_sent")
    readonly_fields = fields
    actions = None

    @admin.display(description=_("broken checks"))
    def broken_checks_display(self, run: ReconciliationRun) -> str:
        return ", ".join(run.broken_checks) or "–"

    @admin.display(description=_("breaches"))
    def breaches_display(self, run: ReconciliationRun) -> str:
        if not run.breaches:
            return "–"
        return format_html(
            "<ul>{}</ul>",
            format_html("".join(
                format_html("<li><code>{}</code>: {}</li>", breach["check"], breach["detail"])
                for breach in run.breaches
            )),
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        results = run_checks()
        extra_context = {
            **(extra_context or {}),
            "title": gettext("Reconciliation"),
            "check_results": results,
            "all_ok": all(result.ok for result in results),
        }
        return super().changelist_view(request, extra_context)


@admin.register(JobFailure)
class JobFailureAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Celery jobs that failed for good. An open one is an alarm (the
    reconciliation check "No scheduled job is failing", /healthz) until the
    job succeeds again or an operator acknowledges it here."""

    list_display = ("failed_at", "task", "error_display", "alarm_ended", "resolution", "resolved_by")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter), "task")
    list_select_related = ("resolved_by",)
    search_fields = ("task", "task_id", "error")
    date_hierarchy = "failed_at"
    fields = ("task", "task_id", "failed_at", "error", "traceback", "resolution", "resolved_at", "resolved_by")
    readonly_fields = fields
    actions = ["acknowledge"]

    @admin.display(description=_("error"))
    def error_display(self, failure: JobFailure) -> str:
        return failure.error if len(failure.error) <= 120 else failure.error[:119] + "…"

    # Green once the alarm has ended, red while it is open.
    @admin.display(description=_("alarm ended"), boolean=True)
    def alarm_ended(self, failure: JobFailure) -> bool:
        return failure.resolved_at is not None

    @admin.action(description=_("Acknowledge the selected failures (ends their alarm)"))
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[JobFailure]) -> None:
        try:
            count = job_failures_acknowledge(operator=request.user,  # type: ignore[arg-type]
                                             failure_ids=queryset.values_list("pk", flat=True))
        except ExchangeError as error:
            self.message_user(request, error.detail, messages.ERROR)
            return
        self.message_user(request, ngettext("%(count)d failure acknowledged.", "%(count)d failures acknowledged.",
                                            count) % {"count": count}, messages.SUCCESS)


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InvoiceLine
    fields = ("position", "description", "quantity", "unit", "unit_price", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, ExchangeModelAdmin):
    list_display = ("number", "issued_at", "organisation", "reference", "net_total", "vat_amount", "gross_total")
    list_filter = ("year",)
    list_select_related = ("organisation",)
    search_fields = ("number", "reference", "organisation__legal_name")
    date_hierarchy = "issued_at"
    fields = ("number", "issued_at", "organisation", "recipient", "reference", "net_total", "vat_rate",
              "vat_amount", "gross_total", "vat_note", "entry")
    readonly_fields = fields
    inlines = (InvoiceLineInline,)
    actions = None


@admin.register(StatementOrganisation)
class StatementOrganisationAdmin(ReadOnlyAdminMixin, ExchangeModelAdmin):
    """Operators' way to any organisation's statement: pick the organisation,
    then the day. The same statement the members see, in the admin."""

    list_display = ("legal_name", "kind", "statement_link")
    list_display_links = None
    list_filter = ("kind",)
    search_fields = ("legal_name", "vat_id")
    ordering = ("legal_name",)
    actions = None

    @admin.display(description=_("statement"))
    def statement_link(self, organisation: StatementOrganisation) -> str:
        url = reverse("admin:clearing_statementorganisation_statement", args=[organisation.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Statement of today"))

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path("<int:pk>/statement/", self.admin_site.admin_view(self.statement_view),
                 name="clearing_statementorganisation_statement"),
        ]
        return custom + super().get_urls()

    def statement_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        # Imported here: the views module is the members' side of the same pages.
        from clearing.views import parse_day, statement_csv_response

        organisation = get_object_or_404(StatementOrganisation, pk=pk)
        today = local_today()
        day = parse_day(request.GET["day"]) if request.GET.get("day") else today
        if request.GET.get("format") == "csv":
            return statement_csv_response(request, organisation, day)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Statement of %(organisation)s") % {"organisation": organisation.legal_name},
            "statement": statement_for(organisation=organisation, day=day),
            "today": today,
            "previous_day": day - timedelta(days=1),
            "next_day": day + timedelta(days=1) if day < today else None,
        }
        return TemplateResponse(request, "admin/clearing/statementorganisation/statement.html", context)


# --- Fees, funds and withdrawals (issue 4) ---------------------------------------------------


@admin.register(FeeSchedule)
class FeeScheduleAdmin(ExchangeModelAdmin):
    """Operators add a schedule that starts in the future (FeeSchedule.clean);
    one in effect opens read-only and cannot be deleted (the model refuses too)."""

    list_display = ("valid_from", "in_effect_display", "day_ahead_per_side", "intraday_maker", "intraday_taker",
                    "futures_per_side", "incentive_fund_share", "rnd_fund_share", "created_by", "note")
    list_select_related = ("created_by",)
    fields = ("valid_from", "day_ahead_per_side", "intraday_maker", "intraday_taker", "futures_per_side",
              "incentive_fund_share", "rnd_fund_share", "note", "created_by", "created_at")
    readonly_fields = ("created_by", "created_at")
    # The bulk delete would refuse rows in effect; a future row is deleted on its own page.
    actions = None

    @admin.display(description=_("in effect"), boolean=True)
    def in_effect_display(self, schedule: FeeSchedule) -> bool:
        return schedule.in_effect

    def has_change_permission(self, request: HttpRequest, obj: FeeSchedule | None = None) -> bool:
        if obj is not None and obj.in_effect:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: FeeSchedule | None = None) -> bool:
        if obj is not None and obj.in_effect:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: FeeSchedule, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


class WithdrawalActionForm(helpers.ActionForm):
    reason = forms.CharField(label=_("reason (for a rejection)"), required=False, max_length=255)


@admin.register(WithdrawalRequest)
class WithdrawalRequestAdmin(NoBulkDeleteMixin, ReadOnlyAdminMixin, ExchangeModelAdmin):
    """Requests are decided by the actions, which call the services; the
    four-eyes refusal is shown as a message and nothing is written."""

    list_display = ("id", "requested_at", "organisation", "amount", "iban", "requested_by", "entered_by", "status",
                    "decided_by", "decided_at")
    list_filter = ("status",)
    list_select_related = ("organisation", "requested_by", "entered_by", "decided_by")
    search_fields = ("organisation__legal_name", "iban")
    date_hierarchy = "requested_at"
    fields = ("organisation", "amount", "iban", "holder_name", "requested_by", "entered_by", "requested_at",
              "status", "decided_by", "decided_at", "reason", "hold_entry", "entry")
    readonly_fields = fields
    action_form = WithdrawalActionForm
    actions = ("approve_selected", "reject_selected")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Tell the viewing operator up front when the four-eyes rule bars them.
        row = self.get_object(request, object_id)
        if row is not None and row.status == WithdrawalRequest.Status.REQUESTED and request.method == "GET":
            refusal = four_eyes_refusal(operator=request.user, request=row)  # type: ignore[arg-type]
            if refusal:
                self.message_user(request, refusal, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)


    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The actions need the change permission; the form itself stays read-only (readonly_fields).
        return bool(request.user.is_staff and request.user.is_active)

    @admin.action(description=_("Approve (pay out) the selected requests"))
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[WithdrawalRequest]) -> None:
        for row in queryset.select_related("organisation").order_by("pk"):
            try:
                withdrawal_approve(operator=request.user, request=row)  # type: ignore[arg-type]
            except ExchangeError as error:
                self.message_user(request, gettext("Request #%(id)s not approved: %(detail)s")
                                  % {"id": row.pk, "detail": error.detail}, messages.ERROR)
            else:
                self.message_user(request, gettext("Request #%(id)s approved: %(amount)s EUR paid out.")
                                  % {"id": row.pk, "amount": number(row.amount)}, messages.SUCCESS)

    @admin.action(description=_("Reject the selected requests (give a reason)"))
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[WithdrawalRequest]) -> None:
        reason = request.POST.get("reason", "")
        for row in queryset.select_related("organisation").order_by("pk"):
            try:
                withdrawal_reject(operator=request.user, request=row, reason=reason)  # type: ignore[arg-type]
            except ExchangeError as error:
                self.message_user(request, gettext("Request #%(id)s not rejected: %(detail)s")
                                  % {"id": row.pk, "detail": error.detail}, messages.ERROR)
            else:
                self.message_user(request, gettext("Request #%(id)s rejected: the amount is available again.")
                                  % {"id": row.pk}, messages.SUCCESS)


# --- Delivery tickets and dispute resolution (issue 4) -------------------------------------------


class DeliveryHoldForm(forms.Form):
    reason = forms.CharField(label=_("reason (goes into the audit log)"), widget=forms.Textarea(attrs={"rows": 4}))


class DisputeResolveForm(forms.Form):
    refund_amount = forms.DecimalField(label=_("refund to the buyer (EUR)"), min_value=Decimal("0"),
                                       max_digits=18, decimal_places=2)
    reason = forms.CharField(label=_("reason (goes into the audit log)"), widget=forms.Textarea(attrs={"rows": 4}))


@admin.register(DeliveryTicket)
class DeliveryTicketAdmin(ReadOnlyAdminMixin, ExchangeModelAdmin):
    """Read-only tickets; a disputed or ``not_provided`` one gets a "resolve"
    page that calls ``dispute_resolve`` (refund, audit, settlement in one
    transaction); a ``not_provided`` one can be held (no automatic refund)."""

    # What an operator decides on first (status, hold, hour), then who and how much: at 1280 px beside
    # the admin's navigation, the columns after "buyer" need scrolling.
    list_display = ("id", "status", "on_hold", "delivery_start", "seller", "buyer", "gpus", "value", "trade",
                    "settled_at")
    list_filter = ("status",)
    search_fields = ("=id", "=trade__id", "seller__legal_name", "buyer__legal_name")
    actions = ["resolve_dispute", "hold_ticket"]

    @admin.display(description=_("on hold"), boolean=True)
    def on_hold(self, ticket: DeliveryTicket) -> bool:
        return ticket.held_at is not None and ticket.settled_at is None

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        tickets_flag_not_provided()  # operators see the flag even if the beat job lags
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Resolve dispute"))
    def resolve_dispute(self, request: HttpRequest, queryset: QuerySet[DeliveryTicket]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, gettext("Resolve one dispute at a time."), messages.WARNING)
            return None
        return redirect("admin:clearing_deliveryticket_resolve", pk=queryset.get().pk)

    @admin.action(description=_("Hold (no automatic refund of missing access)"))
    def hold_ticket(self, request: HttpRequest, queryset: QuerySet[DeliveryTicket]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, gettext("Hold one delivery at a time."), messages.WARNING)
            return None
        return redirect("admin:clearing_deliveryticket_hold", pk=queryset.get().pk)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path("<int:pk>/resolve/", self.admin_site.admin_view(self.resolve_view),
                 name="clearing_deliveryticket_resolve"),
            path("<int:pk>/hold/", self.admin_site.admin_view(self.hold_view),
                 name="clearing_deliveryticket_hold"),
        ]
        return custom + super().get_urls()

    def hold_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not (self.has_view_permission(request) and request.user.is_staff):
            raise PermissionDenied
        ticket = get_object_or_404(DeliveryTicket, pk=pk)
        form = DeliveryHoldForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                delivery_hold(operator=request.user, ticket=ticket, reason=form.cleaned_data["reason"])
            except ExchangeError as error:
                add_error_to_form(form, error)
            else:
                self.message_user(request, gettext("Ticket #%(id)s is on hold; decide it with \"Resolve\".")
                                  % {"id": ticket.pk}, messages.SUCCESS)
                return redirect("admin:clearing_deliveryticket_change", ticket.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Hold delivery ticket #%(id)s") % {"id": ticket.pk},
            "ticket": ticket,
            "form": form,
            "hold": True,
        }
        return TemplateResponse(request, "admin/clearing/deliveryticket/resolve.html", context)

    def resolve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not (self.has_view_permission(request) and request.user.is_staff):
            raise PermissionDenied
        ticket = get_object_or_404(DeliveryTicket, pk=pk)
        form = DisputeResolveForm(request.POST or None, initial={"refund_amount": ticket.value})
        if request.method == "POST" and form.is_valid():
            try:
                dispute_resolve(operator=request.user, ticket=ticket,
                                refund_amount=form.cleaned_data["refund_amount"], reason=form.cleaned_data["reason"])
            except ExchangeError as error:
                add_error_to_form(form, error)
            else:
                self.message_user(request, gettext("Dispute of ticket #%(id)s resolved and settled.")
                                  % {"id": ticket.pk}, messages.SUCCESS)
                return redirect("admin:clearing_deliveryticket_change", ticket.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Resolve the dispute of delivery ticket #%(id)s") % {"id": ticket.pk},
            "ticket": ticket,
            "form": form,
        }
        return TemplateResponse(request, "admin/clearing/deliveryticket/resolve.html", context)


# --- Payout accounts under four eyes (issue 7 item 10) -------------------------------------------


@admin.register(PayoutAccount)
class PayoutAccountAdmin(ReadOnlyAdminMixin, ExchangeModelAdmin):
    """The verified accounts; changed only through an approved change."""

    list_display = ("organisation", "iban", "holder_name", "verified_at", "change")
    list_select_related = ("organisation",)
    search_fields = ("organisation__legal_name", "iban")
    fields = ("organisation", "iban", "holder_name", "verified_at", "change")
    readonly_fields = fields
    actions = None


class PayoutChangeAddForm(forms.ModelForm):
    """An operator enters a change (a letter from the member): the service
    records them as its first operator; a second one approves it."""

    operator: Any = None

    class Meta:
        model = PayoutAccountChange
        fields = ("organisation", "iban", "holder_name")

    def clean(self) -> dict[str, Any]:
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        try:
            self.instance = payout_change_request(user=self.operator, organisation=cleaned["organisation"],
                                                  iban=cleaned["iban"], holder_name=cleaned["holder_name"])
        except ExchangeError as error:
            add_error_to_form(self, error)
        return cleaned


@admin.register(PayoutAccountChange)
class PayoutAccountChangeAdmin(NoBulkDeleteMixin, ReadOnlyAdminMixin, ExchangeModelAdmin):
    """Changes of payout accounts: enter one (you are its first operator),
    approve (first or second operator) or reject; the four-eyes refusal is
    shown as a message and nothing is written."""

    # Who and where it stands first: beside the admin's navigation the later columns need scrolling.
    list_display = ("id", "organisation", "status", "iban", "holder_name", "requested_at", "requested_by",
                    "first_approved_by", "decided_by")
    list_filter = ("status",)
    list_select_related = ("organisation", "requested_by", "first_approved_by", "decided_by")
    search_fields = ("organisation__legal_name", "iban")
    fields = ("organisation", "iban", "holder_name", "status", "requested_by", "requested_at",
              "first_approved_by", "first_approved_at", "decided_by", "decided_at", "reason")
    readonly_fields = fields
    form = PayoutChangeAddForm
    action_form = WithdrawalActionForm
    actions = ("approve_selected", "reject_selected")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("organisation", "iban", "holder_name") if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff and request.user.is_active)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The actions need it; the page itself stays read-only (readonly_fields).
        return bool(request.user.is_staff and request.user.is_active)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"operator": request.user})

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if object_id is not None and request.method == "GET":
            row = self.get_object(request, object_id)
            if row is not None and row.status in PayoutAccountChange.OPEN_STATUSES:
                refusal = payout_four_eyes_refusal(operator=request.user, change=row)  # type: ignore[arg-type]
                if refusal:
                    self.message_user(request, refusal, messages.WARNING)
        # The service's durable transaction must not nest in the admin's (see CashDepositAdmin).
        return self._changeform_view(  # type: ignore[attr-defined]  # Django's own undecorated view body
            request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: PayoutAccountChange, form: Any, change: bool) -> None:
        pass  # the form's clean() has entered the change through the service


    @admin.action(description=_("Approve the selected changes (first or second operator)"))
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[PayoutAccountChange]) -> None:
        for row in queryset.order_by("pk"):
            try:
                done = payout_change_approve(operator=request.user, change=row)  # type: ignore[arg-type]
            except ExchangeError as error:
                self.message_user(request, gettext("Change #%(id)s not approved: %(detail)s")
                                  % {"id": row.pk, "detail": error.detail}, messages.ERROR)
                continue
            if done.status == PayoutAccountChange.Status.APPROVED:
                self.message_user(request, gettext("Change #%(id)s approved: the payout account is in force.")
                                  % {"id": row.pk}, messages.SUCCESS)
            else:
                self.message_user(request, gettext("Change #%(id)s approved once; a second operator must approve "
                                                   "it.") % {"id": row.pk}, messages.SUCCESS)

    @admin.action(description=_("Reject the selected changes (give a reason)"))
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[PayoutAccountChange]) -> None:
        reason = request.POST.get("reason", "")
        for row in queryset.order_by("pk"):
            try:
                payout_change_reject(operator=request.user, change=row, reason=reason)  # type: ignore[arg-type]
            except ExchangeError as error:
                self.message_user(request, gettext("Change #%(id)s not rejected: %(detail)s")
                                  % {"id": row.pk, "detail": error.detail}, messages.ERROR)
            else:
                self.message_user(request, gettext("Change #%(id)s rejected.") % {"id": row.pk}, messages.SUCCESS)


@admin.register(FeeAccrual)
class FeeAccrualAdmin(ReadOnlyAdminMixin, ExchangeModelAdmin):
    """Each member's fees of a month: exact, held with VAT, and when and on
    which invoice they were charged. Written only by the order service and
    the monthly charge (clearing.services.fees); read-only here."""

    list_display = ("month_display", "organisation", "accrued", "held", "charged_at", "invoice", "entry")
    list_filter = (("charged_at", admin.EmptyFieldListFilter), "month")
    list_select_related = ("organisation", "invoice", "entry")
    search_fields = ("organisation__legal_name", "invoice__number")
    fields = ("organisation", "month", "accrued", "held", "charged_at", "invoice", "entry")
    readonly_fields = fields
    actions = None

    @admin.display(description=_("month"), ordering="month")
    def month_display(self, obj: FeeAccrual) -> str:
        return date_format(obj.month, "YEAR_MONTH_FORMAT")
