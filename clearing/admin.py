"""Operator views of the books. Everything is read-only except booking a bank
deposit, which goes through ``clearing.services.cash_deposit_book``."""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from clearing.models import Account, CashDeposit, JournalEntry, JournalLine
from clearing.services import cash_deposit_book
from exchange.admin import ReadOnlyAdminMixin
from exchange.errors import ExchangeError, add_error_to_form


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
class CashDepositAdmin(admin.ModelAdmin):
    list_display = ("booked_at", "organisation", "amount", "bank_reference", "booked_by")
    list_select_related = ("organisation", "booked_by")
    search_fields = ("bank_reference", "organisation__legal_name")
    date_hierarchy = "booked_at"
    form = CashDepositAddForm
    actions = None

    def get_fields(self, request: HttpRequest, obj: CashDeposit | None = None) -> Any:
        if obj is None:
            return ("organisation", "amount", "bank_reference")
        return ("organisation", "amount", "bank_reference", "booked_by", "booked_at", "entry")

    def get_readonly_fields(self, request: HttpRequest, obj: CashDeposit | None = None) -> Any:
        if obj is None:
            return ()
        return self.get_fields(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        # A subclass per request: the operator is never shared between requests.
        return type(form.__name__, (form,), {"operator": request.user})

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The admin wraps a POST in its own transaction, which would nest the
        # service's durable one. The service's transaction is the one that
        # matters; the admin's log entry is written after the deposit commits.
        return self._changeform_view(  # type: ignore[attr-defined]  # Django's own undecorated view body
            request, object_id, form_url, extra_context
        )

    def save_model(self, request: HttpRequest, obj: CashDeposit, form: Any, change: bool) -> None:
        # The form's clean() has booked the deposit through the service.
        pass

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "organisation", "kind", "balance")
    list_filter = ("kind",)
    list_select_related = ("organisation",)
    search_fields = ("organisation__legal_name",)
    fields = ("organisation", "kind", "balance", "created_at")
    readonly_fields = fields
    actions = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return super().get_queryset(request).order_by("organisation__legal_name", "kind")


class JournalLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = JournalLine
    fields = ("account", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "kind", "reference", "memo", "actor")
    list_filter = ("kind",)
    list_select_related = ("actor",)
    search_fields = ("reference", "memo")
    date_hierarchy = "created_at"
    fields = ("kind", "reference", "memo", "actor", "created_at")
    readonly_fields = fields
    inlines = (JournalLineInline,)
    actions = None
