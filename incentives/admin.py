"""Operators book the state's start financing here; every booking goes
through ``incentives.services.start_financing_book`` (audited, one entry)."""

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from exchange.admin import (
    BookedByServiceAdminMixin,
    ExchangeModelAdmin,
    NoBulkDeleteMixin,
    ReadOnlyAdmin,
    ReadOnlyAdminMixin,
)
from exchange.errors import ExchangeError, add_error_to_form
from exchange.formats import number
from incentives.models import Application, CreditGrant, Programme, StartFinancing
from incentives.selectors import ProgrammeReport, programme_reports
from incentives.services import (
    application_approve,
    application_reject,
    approval_limit,
    programme_close,
    programme_open,
    start_financing_book,
)


class StartFinancingAddForm(forms.ModelForm):
    """Collects the inputs; the service books them and its errors land at the fields."""

    operator: Any = None  # set per request by StartFinancingAdmin.get_form

    amount = forms.DecimalField(label=_("amount (EUR)"), min_value=Decimal("0.01"), max_digits=18, decimal_places=2)
    repayment_share = forms.DecimalField(label=_("repayment share"), min_value=Decimal("0.0001"),
                                         max_value=Decimal("1"), max_digits=5, decimal_places=4,
                                         initial=Decimal("0.5"),
                                         help_text=_("The share of each month's net fee revenue that repays the "
                                                     "financing, e.g. 0.5 for half of it."))
    reason = forms.CharField(label=_("reason (goes into the audit log)"), max_length=255,
                             widget=forms.Textarea(attrs={"rows": 3}))

    class Meta:
        model = StartFinancing
        fields = ("amount", "repayment_share", "reason")

    def clean(self) -> dict[str, Any]:
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        try:
            self.instance = start_financing_book(operator=self.operator, amount=cleaned["amount"],
                                                 repayment_share=cleaned["repayment_share"],
                                                 reason=cleaned["reason"])
        except ExchangeError as error:
            add_error_to_form(self, error)
        return cleaned


@admin.register(StartFinancing)
class StartFinancingAdmin(BookedByServiceAdminMixin, ExchangeModelAdmin):
    list_display = ("booked_at", "amount", "repayment_share", "reason", "booked_by")
    list_select_related = ("booked_by",)
    form = StartFinancingAddForm
    add_fields = ("amount", "repayment_share", "reason")
    booked_fields = ("amount", "repayment_share", "reason", "booked_by", "booked_at", "entry")


# --- programmes, applications, grants (issue 12 parts 2-5) ----------------------------------


class ProgrammeForm(forms.ModelForm):
    states = forms.MultipleChoiceField(label=_("federal states"), choices=Organisation.State.choices,
                                       required=False, widget=forms.CheckboxSelectMultiple,
                                       help_text=_("None ticked: every state."))

    class Meta:
        model = Programme
        fields = ("name", "description", "budget", "starts_on", "ends_on", "max_age_years", "sme_only", "states",
                  "first_time_buyers_only", "max_grant", "matching_ratio", "credit_validity_months")


@admin.register(Programme)
class ProgrammeAdmin(NoBulkDeleteMixin, ExchangeModelAdmin):
    """Drafts are edited here; opening (the budget leaves the fund) and
    closing (the unspent budget returns) are the actions, through the
    services. Reporting columns per programme."""

    form = ProgrammeForm
    list_display = ("name", "status", "starts_on", "ends_on", "budget", "granted", "used", "expired",
                    "remaining", "organisations")
    list_filter = ("status",)
    actions = ("open_selected", "close_selected")

    def get_readonly_fields(self, request: HttpRequest, obj: Programme | None = None) -> Any:
        state = ("status", "opened_by", "opened_at", "opened_entry", "closed_by", "closed_at", "closed_entry")
        if obj is not None and obj.status != Programme.Status.DRAFT:
            return (*ProgrammeForm.Meta.fields, *state)  # the rules of an open programme are fixed
        return state


    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _report(self, obj: Programme) -> ProgrammeReport:
        cache = self.__dict__.setdefault("_reports", {})
        if obj.pk not in cache or cache[obj.pk][0] is not obj:
            cache[obj.pk] = (obj, programme_reports([obj])[obj.pk])
        return cache[obj.pk][1]

    @admin.display(description=_("granted (EUR)"))
    def granted(self, obj: Programme) -> str:
        return number(self._report(obj).granted)

    @admin.display(description=_("used (EUR)"))
    def used(self, obj: Programme) -> str:
        return number(self._report(obj).used)

    @admin.display(description=_("expired and returned (EUR)"))
    def expired(self, obj: Programme) -> str:
        return number(self._report(obj).expired)

    @admin.display(description=_("budget left (EUR)"))
    def remaining(self, obj: Programme) -> str:
        return number(self._report(obj).remaining)

    @admin.display(description=_("organisations"))
    def organisations(self, obj: Programme) -> int:
        return self._report(obj).organisations

    @admin.action(description=_("Open the selected programmes (the budget leaves the incentive fund)"))
    def open_selected(self, request: HttpRequest, queryset: QuerySet[Programme]) -> None:
        for row in queryset.order_by("pk"):
            try:
                programme_open(operator=request.user, programme=row)  # type: ignore[arg-type]
            except ExchangeError as error:
                self.message_user(request, gettext("%(name)s not opened: %(detail)s")
                                  % {"name": row.name, "detail": error.detail}, messages.ERROR)
            else:
                self.message_user(request, gettext("%(name)s is open.") % {"name": row.name}, messages.SUCCESS)

    @admin.action(description=_("Close the selected programmes (the unspent budget returns to the fund)"))
    def close_selected(self, request: HttpRequest, queryset: QuerySet[Programme]) -> None:
        for row in queryset.order_by("pk"):
            try:
                programme_close(operator=request.user, programme=row)  # type: ignore[arg-type]
            except ExchangeError as error:
                self.message_user(request, gettext("%(name)s not closed: %(detail)s")
                                  % {"name": row.name, "detail": error.detail}, messages.ERROR)
            else:
                self.message_user(request, gettext("%(name)s is closed.") % {"name": row.name}, messages.SUCCESS)


class ApplicationActionForm(helpers.ActionForm):
    amount = forms.DecimalField(label=_("amount (EUR, for an approval; empty: as requested)"), required=False,
                                min_value=Decimal("0.01"), max_digits=18, decimal_places=2)
    reason = forms.CharField(label=_("reason (for a rejection)"), required=False, max_length=255)


@admin.register(Application)
class ApplicationAdmin(NoBulkDeleteMixin, ReadOnlyAdminMixin, ExchangeModelAdmin):
    """Applications are decided by the actions, which call the services.
    Above the four-eyes threshold the first approval is only recorded; a
    second, different operator completes it (column "four eyes")."""

    list_display = ("id", "submitted_at", "programme", "organisation", "requested_amount", "status", "four_eyes",
                    "decided_amount", "decided_by")
    list_filter = ("status", "programme")
    list_select_related = ("programme", "organisation", "first_approver", "decided_by")
    search_fields = ("organisation__legal_name",)
    fields = ("programme", "organisation", "applicant", "plan", "requested_amount", "submitted_at", "status",
              "first_approver", "first_approved_at", "first_approved_amount", "decided_by", "decided_at",
              "decided_amount", "reason")
    readonly_fields = fields
    action_form = ApplicationActionForm
    actions = ("approve_selected", "reject_selected")

    @admin.display(description=_("four eyes"))
    def four_eyes(self, obj: Application) -> str:
        if obj.awaits_second_approval:
            return gettext("first approved by %(operator)s (%(amount)s EUR): a second operator completes it") % {
                "operator": obj.first_approver, "amount": number(obj.first_approved_amount or 0)}
        if obj.status == Application.Status.SUBMITTED and obj.requested_amount > settings.INCENTIVE_FOUR_EYES_THRESHOLD:
            return gettext("needs two operators (above %(threshold)s EUR)") % {
                "threshold": number(settings.INCENTIVE_FOUR_EYES_THRESHOLD)}
        return ""

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        row = self.get_object(request, object_id)
        if row is not None and request.method == "GET" and row.status == Application.Status.SUBMITTED:
            limit, _caps = approval_limit(programme=row.programme, application=row)
            self.message_user(request, gettext("At most %(limit)s EUR can be approved now.")
                              % {"limit": number(limit)}, messages.INFO)
            if row.first_approver_id == request.user.pk:
                self.message_user(request, gettext("You gave the first approval; a second operator must complete "
                                                   "it (four eyes)."), messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)


    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The actions need the change permission; the form itself stays read-only.
        return bool(request.user.is_staff and request.user.is_active)

    @admin.action(description=_("Approve the selected applications (amount above; four eyes above the threshold)"))
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Application]) -> None:
        raw = (request.POST.get("amount") or "").strip().replace(",", ".")
        try:
            amount = Decimal(raw) if raw else None
        except ArithmeticError:
            self.message_user(request, gettext("Enter the amount as a number, e.g. 5000.00."), messages.ERROR)
            return
        for row in queryset.order_by("pk"):
            try:
                result = application_approve(operator=request.user, application=row,  # type: ignore[arg-type]
                                             amount=amount)
            except ExchangeError as error:
                self.message_user(request, gettext("Application #%(id)s not approved: %(detail)s")
                                  % {"id": row.pk, "detail": error.detail}, messages.ERROR)
            else:
                if result.status == Application.Status.APPROVED:
                    self.message_user(request, gettext("Application #%(id)s approved: %(amount)s EUR of credits.")
                                      % {"id": row.pk, "amount": number(result.decided_amount or 0)},
                                      messages.SUCCESS)
                else:
                    self.message_user(request, gettext("Application #%(id)s: first approval recorded; a second "
                                                       "operator must complete it.") % {"id": row.pk},
                                      messages.WARNING)

    @admin.action(description=_("Reject the selected applications (give a reason)"))
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Application]) -> None:
        reason = request.POST.get("reason", "")
        for row in queryset.order_by("pk"):
            try:
                application_reject(operator=request.user, application=row, reason=reason)  # type: ignore[arg-type]
            except ExchangeError as error:
                self.message_user(request, gettext("Application #%(id)s not rejected: %(detail)s")
                                  % {"id": row.pk, "detail": error.detail}, messages.ERROR)
            else:
                self.message_user(request, gettext("Application #%(id)s rejected.") % {"id": row.pk},
                                  messages.SUCCESS)


@admin.register(CreditGrant)
class CreditGrantAdmin(ReadOnlyAdmin):
    list_display = ("id", "granted_at", "organisation", "programme", "amount", "expires_at", "expired_amount")
    list_filter = ("programme",)
    list_select_related = ("organisation", "programme")
    search_fields = ("organisation__legal_name",)
