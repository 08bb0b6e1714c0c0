"""Operators book the state's start financing here; every booking goes
through ``incentives.services.start_financing_book`` (audited, one entry)."""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from exchange.admin import ExchangeModelAdmin
from exchange.errors import ExchangeError, add_error_to_form
from incentives.models import StartFinancing
from incentives.services import start_financing_book


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
class StartFinancingAdmin(ExchangeModelAdmin):
    list_display = ("booked_at", "amount", "repayment_share", "reason", "booked_by")
    list_select_related = ("booked_by",)
    form = StartFinancingAddForm
    actions = None

    def get_fields(self, request: HttpRequest, obj: StartFinancing | None = None) -> Any:
        if obj is None:
            return ("amount", "repayment_share", "reason")
        return ("amount", "repayment_share", "reason", "booked_by", "booked_at", "entry")

    def get_readonly_fields(self, request: HttpRequest, obj: StartFinancing | None = None) -> Any:
        return () if obj is None else self.get_fields(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"operator": request.user})

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The service's transaction is durable; the admin's own would nest it (as CashDepositAdmin).
        return self._changeform_view(  # type: ignore[attr-defined]  # Django's own undecorated view body
            request, object_id, form_url, extra_context
        )

    def save_model(self, request: HttpRequest, obj: StartFinancing, form: Any, change: bool) -> None:
        pass  # booked by the form's clean() through the service

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
