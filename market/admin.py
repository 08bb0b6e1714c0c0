"""Operator screens for the product catalogue.

Instruments are listed by the job and never edited here; operators halt and
resume them with an action that asks for a reason and calls the services.
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.models import User
from exchange.admin import ExchangeModelAdmin, ReadOnlyAdmin
from exchange.errors import ExchangeError
from market import calendar, services
from market.models import (
    DayAheadAuction,
    DayAheadBid,
    DayAheadHour,
    DefaultFundContribution,
    DefaultFundSize,
    DeliveryZone,
    GpuClass,
    Instrument,
    KillSwitch,
    MarginCall,
    Order,
    OrderEvent,
    Position,
    PowerPrice,
    Segment,
    SettlementPrice,
    Site,
    SiteCapacity,
    Trade,
    VariationMargin,
)
from market.services import controls


class GpuClassForm(forms.ModelForm):
    """The power draw (issue 11) may be left empty: the class keeps its figure."""

    class Meta:
        model = GpuClass
        fields = ["code", "name", "active", "memory_gb", "interconnect", "min_benchmark_value", "min_benchmark_unit",
                  "delivery_standard", "power_draw_kw", "min_price", "max_price", "initial_margin_rate",
                  "intraday_lead_time_minutes"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "power_draw_kw" in self.fields:
            self.fields["power_draw_kw"].required = False

    def clean_power_draw_kw(self) -> Decimal:
        value = self.cleaned_data.get("power_draw_kw")
        return value if value is not None else self.instance.power_draw_kw


@admin.register(GpuClass)
class GpuClassAdmin(ExchangeModelAdmin):
    form = GpuClassForm
    list_display = ["code", "name", "memory_gb", "delivery_standard", "min_price", "max_price",
                    "initial_margin_rate", "intraday_lead_time_minutes", "active"]
    list_filter = ["active", "delivery_standard"]
    search_fields = ["code", "name"]
    fieldsets = [
        (None, {"fields": ["code", "name", "active"]}),
        (gettext_lazy("Specification"), {"fields": ["memory_gb", "interconnect", "min_benchmark_value",
                                                    "min_benchmark_unit", "delivery_standard"]}),
        (gettext_lazy("Electricity"), {"fields": ["power_draw_kw"]}),
        (gettext_lazy("Trading"), {
            "fields": ["min_price", "max_price", "initial_margin_rate", "intraday_lead_time_minutes"],
            "description": gettext_lazy(
                "New price bounds and lead time apply to instruments listed from now on and to those "
                "still scheduled; open instruments keep theirs."),
        }),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: GpuClass | None = None) -> list[str]:
        # The code is part of every symbol already listed.
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: GpuClass | None = None) -> bool:
        # Classes with instruments are protected; deactivate a class instead.
        return False

    def save_model(self, request: HttpRequest, obj: GpuClass, form: forms.ModelForm, change: bool) -> None:
        updated = services.gpu_class_save(gpu_class=obj)
        if updated:
            self.message_user(request, ngettext(
                "%(count)d scheduled instrument now has the new bounds.",
                "%(count)d scheduled instruments now have the new bounds.",
                updated) % {"count": updated})


@admin.register(DeliveryZone)
class DeliveryZoneAdmin(ExchangeModelAdmin):
    """The zones are fixed by the market rules (DE and the 16 states): names
    may be edited, zones neither added nor removed."""

    list_display = ["code", "name"]
    search_fields = ["code", "name"]
    readonly_fields = ["code"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DeliveryZone | None = None) -> bool:
        return False


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=gettext_lazy("Recorded with your name in the audit log."),
    )

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("This field is required."))
        return reason


StatusService = Callable[..., Instrument]


@admin.register(Instrument)
class InstrumentAdmin(ExchangeModelAdmin):
    list_display = ["symbol", "segment", "gpu_class", "zone", "delivery_start", "hours", "min_price",
                    "max_price", "opens_at", "closes_at", "status"]
    list_filter = ["segment", "status", "gpu_class", "zone", ("delivery_start", admin.DateFieldListFilter)]
    search_fields = ["symbol"]
    date_hierarchy = "delivery_start"
    list_select_related = ["gpu_class", "zone"]
    list_per_page = 100
    actions = ["halt", "resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # instruments are listed by the job (market.services)

    def has_delete_permission(self, request: HttpRequest, obj: Instrument | None = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Instrument | None = None) -> list[str]:
        # Everything is read-only once listed; status changes go through the actions.
        return [field.name for field in Instrument._meta.fields] + ["audit_trail"]

    @admin.display(description=gettext_lazy("Halts and resumes"))
    def audit_trail(self, obj: Instrument) -> str:
        url = reverse("admin:accounts_auditlog_changelist")
        query = urlencode({"object_type": Instrument._meta.label, "object_id": str(obj.pk)})
        return format_html('<a href="{}?{}">{}</a>', url, query, _("Audit log of this instrument"))

    def has_halt_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("market.halt_instrument")

    @admin.action(description=gettext_lazy("Halt trading in the selected instruments"), permissions=["halt"])
    def halt(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> HttpResponse | None:
        return self._status_action(
            request, queryset, action="halt", service=services.instrument_halt,
            title=_("Halt trading"),
            question=_("Halt trading in these instruments? Resting orders stay in the book; "
                       "no new orders are accepted until trading is resumed."),
            submit_label=_("Halt"),
            done=lambda n: ngettext("Halted %(count)d instrument.", "Halted %(count)d instruments.", n),
        )

    @admin.action(description=gettext_lazy("Resume trading in the selected instruments"), permissions=["halt"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> HttpResponse | None:
        return self._status_action(
            request, queryset, action="resume", service=services.instrument_resume,
            title=_("Resume trading"),
            question=_("Resume trading in these instruments? Each returns to what its trading window "
                       "says: open, scheduled or closed."),
            submit_label=_("Resume"),
            done=lambda n: ngettext("Resumed %(count)d instrument.", "Resumed %(count)d instruments.", n),
        )

    def _status_action(self, request: HttpRequest, queryset: QuerySet[Instrument], *, action: str,
                       service: StatusService, title: str, question: str, submit_label: str,
                       done: Callable[[int], str]) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            succeeded = 0
            for instrument in queryset.order_by("symbol"):
                try:
                    # Each instrument is its own transaction: one that can't
                    # be halted doesn't stop the others.
                    service(operator=request.user, instrument=instrument, reason=form.cleaned_data["reason"])
                except ExchangeError as error:
                    self.message_user(request, f"{instrument.symbol}: {error.detail}", messages.ERROR)
                else:
                    succeeded += 1
            if succeeded:
                self.message_user(request, done(succeeded) % {"count": succeeded}, messages.SUCCESS)
            return None  # back to the change list
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "question": question,
            "submit_label": submit_label,
            "queryset": queryset.order_by("symbol"),
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/market/instrument/status_action.html", context)


# --- provider sites and capacity ------------------------------------------------------------
# Read-only for operators: capacity is the provider's own declaration and backs
# its sell orders, so it changes only through market.services.capacity (the
# provider screen), which refuses a reduction below what is sold or offered and
# writes the audit log. Operators see it here, with the site's audit trail.


class SiteCapacityInline(admin.TabularInline):
    model = SiteCapacity
    fields = ["gpu_class", "gpus"]
    readonly_fields = ["gpu_class", "gpus"]
    extra = 0
    can_delete = False
    ordering = ["gpu_class__code"]

    def has_add_permission(self, request: HttpRequest, obj: Site | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Site | None = None) -> bool:
        return False


@admin.register(Site)
class SiteAdmin(ExchangeModelAdmin):
    list_display = ["name", "organisation", "state", "energy_source", "pue", "total_gpus", "created_at"]
    list_filter = ["state", "energy_source", ("capacities__gpu_class", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "organisation__legal_name"]
    list_select_related = ["organisation"]
    inlines = [SiteCapacityInline]
    fields = ["organisation", "name", "state", "energy_source", "pue", "created_at", "audit_trail"]
    readonly_fields = ["organisation", "name", "state", "energy_source", "pue", "created_at", "audit_trail"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Site]:
        return super().get_queryset(request).annotate(gpu_total=Sum("capacities__gpus"))

    @admin.display(description=gettext_lazy("GPUs (all classes)"), ordering="gpu_total")
    def total_gpus(self, obj: Site) -> int:
        return getattr(obj, "gpu_total", None) or 0

    @admin.display(description=gettext_lazy("Changes"))
    def audit_trail(self, obj: Site) -> str:
        url = reverse("admin:accounts_auditlog_changelist")
        query = urlencode({"object_type": Site._meta.label, "object_id": str(obj.pk)})
        return format_html('<a href="{}?{}">{}</a>', url, query, _("Audit log of this site"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Site | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Site | None = None) -> bool:
        return False


# --- orders and trades --------------------------------------------------------------------
# Read-only: orders and trades change only through market.services.orders
# (members' requests, the expiry job), which keep the book, the reservations
# and the ledger in step. Operators look, filter and search here.


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["id", "instrument", "organisation", "side", "type", "price", "quantity", "filled_quantity",
                    "time_in_force", "status", "reason", "reserved_amount", "created_at"]
    list_filter = ["status", "side", "type", "time_in_force", "post_only", "instrument__segment",
                   "instrument__gpu_class", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=id", "client_order_id", "instrument__symbol", "organisation__legal_name"]
    list_select_related = ["instrument", "organisation"]
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False  # the order table grows fast; COUNT(*) on every page is not worth it


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ["id", "instrument", "price", "quantity", "aggressor", "buyer", "seller", "buyer_fee",
                    "seller_fee", "buy_order", "sell_order", "executed_at"]
    list_filter = ["aggressor", "instrument__segment", "instrument__gpu_class",
                   ("executed_at", admin.DateFieldListFilter)]
    search_fields = ["=id", "instrument__symbol", "buyer__legal_name", "seller__legal_name"]
    list_select_related = ["instrument", "buyer", "seller", "buy_order", "sell_order"]
    date_hierarchy = "executed_at"
    list_per_page = 100
    show_full_result_count = False


# --- Trader controls (issue 8, item 5) --------------------------------------------------------


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    """The REMIT-style order records: append-only, read here, never changed."""

    list_display = ["id", "at", "kind", "order", "organisation", "instrument", "side", "price", "quantity",
                    "filled_quantity", "status", "reason", "trade", "fill_price", "fill_quantity", "actor"]
    list_filter = ["kind", "status", "side", ("at", admin.DateFieldListFilter)]
    search_fields = ["=order__id", "=trade__id", "instrument__symbol", "organisation__legal_name", "actor__email"]
    list_select_related = ["order", "organisation", "instrument", "trade", "actor"]
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False


class KillSwitchEngageForm(forms.ModelForm):
    class Meta:
        model = KillSwitch
        fields = ["organisation", "reason"]


@admin.register(KillSwitch)
class KillSwitchAdmin(ExchangeModelAdmin):
    """Operators engage an organisation's kill switch by adding one (it
    cancels all its orders at once, through the same service as the
    owners' button) and lift it with the action. Rows are the record of
    each engagement: never changed by hand, never deleted."""

    list_display = ["organisation", "engaged_at", "engaged_by", "reason", "lifted_at", "lifted_by", "engaged"]
    list_filter = [("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["organisation__legal_name"]
    list_select_related = ["organisation", "engaged_by", "lifted_by"]
    autocomplete_fields = ["organisation"]
    actions = ["lift"]

    @admin.display(description=gettext_lazy("on"), boolean=True)
    def engaged(self, obj: KillSwitch) -> bool:
        return obj.engaged

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = KillSwitchEngageForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: KillSwitch | None = None) -> list[str]:
        if obj is None:
            return []
        return ["organisation", "engaged_at", "engaged_by", "reason", "lifted_at", "lifted_by"]

    def get_fields(self, request: HttpRequest, obj: KillSwitch | None = None) -> Any:
        if obj is None:
            return ["organisation", "reason"]
        return ["organisation", "engaged_at", "engaged_by", "reason", "lifted_at", "lifted_by"]

    def has_delete_permission(self, request: HttpRequest, obj: KillSwitch | None = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Engaging runs the service, whose transactions are its own (durable),
        so it cannot run inside the admin's save transaction: a valid POST
        is handled here, anything else by the admin's own form."""
        if request.method == "POST" and self.has_add_permission(request):
            form = KillSwitchEngageForm(request.POST)
            if form.is_valid():
                try:
                    cancelled = controls.kill_switch_engage(
                        user=request.user, organisation=form.cleaned_data["organisation"],  # type: ignore[arg-type]
                        reason=form.cleaned_data["reason"])
                except ExchangeError as error:
                    self.message_user(request, error.detail, messages.ERROR)
                else:
                    self.message_user(request, ngettext(
                        "The kill switch is on; %(count)d order was cancelled.",
                        "The kill switch is on; %(count)d orders were cancelled.",
                        len(cancelled)) % {"count": len(cancelled)}, messages.WARNING)
                return HttpResponseRedirect(reverse("admin:market_killswitch_changelist"))
        return super().add_view(request, form_url, extra_context)

    def has_change_permission(self, request: HttpRequest, obj: KillSwitch | None = None) -> bool:
        return False  # a record: lifted with the action, never edited

    @admin.action(description=gettext_lazy("Lift the selected kill switches"))
    def lift(self, request: HttpRequest, queryset: QuerySet[KillSwitch]) -> None:
        lifted = 0
        for switch in queryset.filter(lifted_at__isnull=True).select_related("organisation"):
            try:
                controls.kill_switch_lift(user=request.user, organisation=switch.organisation)  # type: ignore[arg-type]
            except ExchangeError as error:
                self.message_user(request, error.detail, messages.ERROR)
            else:
                lifted += 1
        self.message_user(request, ngettext("%(count)d kill switch lifted.", "%(count)d kill switches lifted.",
                                            lifted) % {"count": lifted})


# --- Day-ahead auction (issue 9) ----------------------------------------------------------------


_HOUR_FIELDS = ("hour", "delivery_start", "price", "volume", "buy_volume", "sell_volume", "price_low", "price_high")


class DayAheadHourInline(admin.TabularInline):
    model = DayAheadHour
    fields = _HOUR_FIELDS
    readonly_fields = _HOUR_FIELDS
    extra = 0
    can_delete = False
    ordering = ["position"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DayAheadAuction)
class DayAheadAuctionAdmin(ReadOnlyAdmin):
    """Auctions are created by bids and cleared by the run (``run_dayahead_auction``); read here."""

    list_display = ["id", "delivery_date", "gpu_class", "zone", "status", "gate_closure", "cleared_at", "method",
                    "time_limit_hit", "rounds"]
    list_filter = ["status", "method", "gpu_class", "zone", "time_limit_hit"]
    date_hierarchy = "delivery_date"
    list_select_related = ["gpu_class", "zone"]
    inlines = [DayAheadHourInline]


@admin.register(DayAheadBid)
class DayAheadBidAdmin(ReadOnlyAdmin):
    list_display = ["id", "auction", "organisation", "kind", "side", "hour", "first_hour", "last_hour", "price",
                    "quantity", "min_acceptance_ratio", "exclusive_group", "status", "reserved_amount",
                    "paradoxically_rejected", "created_at"]
    list_filter = ["status", "kind", "side", "paradoxically_rejected", "auction__gpu_class",
                   ("auction__delivery_date", admin.DateFieldListFilter)]
    search_fields = ["=id", "organisation__legal_name", "exclusive_group"]
    list_select_related = ["auction__gpu_class", "auction__zone", "organisation"]
    list_per_page = 100


# --- Futures (issue 10) -----------------------------------------------------------------------


class OverrideForm(ReasonForm):
    price = forms.DecimalField(label=gettext_lazy("New settlement price (EUR/GPUh)"), max_digits=12,
                               decimal_places=2, min_value=Decimal("0"))
    field_order = ["price", "reason"]


@admin.register(SettlementPrice)
class SettlementPriceAdmin(ReadOnlyAdmin):
    """Daily settlement prices, computed at 17:30; an operator may override
    one with a reason before the day's margin run (audited)."""

    list_display = ["date", "instrument", "price", "source", "computed_price", "computed_source", "overridden_by",
                    "override_reason"]
    list_filter = ["source", "instrument__gpu_class", ("date", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol"]
    date_hierarchy = "date"
    list_select_related = ["instrument", "overridden_by"]
    actions = ["override"]

    def has_override_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("market.change_settlementprice")

    @admin.action(description=gettext_lazy("Override the settlement price (one row)"), permissions=["override"])
    def override(self, request: HttpRequest, queryset: QuerySet[SettlementPrice]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, _("Choose exactly one settlement price to override."), messages.ERROR)
            return None
        row = queryset.select_related("instrument").get()
        form = OverrideForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            from market.services import futures

            try:
                futures.settlement_price_override(operator=cast(User, request.user), settlement_price=row,
                                                  price=form.cleaned_data["price"], reason=form.cleaned_data["reason"])
            except ExchangeError as error:
                self.message_user(request, error.detail, messages.ERROR)
            else:
                self.message_user(request, _("The settlement price was overridden."), messages.SUCCESS)
            return None
        context: dict[str, Any] = {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "title": _("Override a settlement price"), "row": row, "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "media": self.media,
        }
        return TemplateResponse(request, "admin/market/settlementprice/override.html", context)


@admin.register(MarginCall)
class MarginCallAdmin(ReadOnlyAdmin):
    """Margin calls; an operator closes out a member whose call is unpaid
    past its due time (``market.services.futures.margin_call_close_out``)."""

    list_display = ["date", "organisation", "amount", "due_at", "met_at", "closed_out_at", "closed_out_by"]
    list_filter = [("date", admin.DateFieldListFilter)]
    search_fields = ["organisation__legal_name"]
    list_select_related = ["organisation", "closed_out_by"]
    actions = ["close_out"]

    def has_close_out_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("market.change_margincall")

    @admin.action(description=gettext_lazy("Close out the member's futures (one unpaid call)"),
                  permissions=["close_out"])
    def close_out(self, request: HttpRequest, queryset: QuerySet[MarginCall]) -> HttpResponse | None:
        from market.services import futures

        if queryset.count() != 1:
            self.message_user(request, _("Choose exactly one margin call to close out."), messages.ERROR)
            return None
        call = queryset.select_related("organisation").get()
        if "apply" in request.POST:
            try:
                result = futures.margin_call_close_out(operator=cast(User, request.user), call=call)
            except ExchangeError as error:
                self.message_user(request, error.detail, messages.ERROR)
                return None
            legs = "; ".join(_("%(symbol)s: %(closed)s of %(wanted)s GPUs closed") % {
                "symbol": symbol, "closed": closed, "wanted": wanted} for symbol, wanted, closed in result.legs)
            if result.complete:
                self.message_user(request, _("Closed out: %(legs)s.") % {"legs": legs or "-"}, messages.SUCCESS)
            else:
                self.message_user(request, _("Not every position could be closed, the call stays open: %(legs)s.")
                                  % {"legs": legs}, messages.WARNING)
            return None
        context: dict[str, Any] = {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "title": _("Close out a member"), "call": call,
            "positions": Position.objects.filter(organisation=call.organisation, instrument__segment=Segment.FUTURES)
            .exclude(quantity=0).select_related("instrument").order_by("instrument__delivery_start"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "media": self.media,
        }
        return TemplateResponse(request, "admin/market/margincall/close_out.html", context)


@admin.register(VariationMargin)
class VariationMarginAdmin(ReadOnlyAdmin):
    list_display = ["date", "organisation", "instrument", "position", "settlement_price", "amount"]
    list_filter = [("date", admin.DateFieldListFilter), "instrument__gpu_class"]
    search_fields = ["organisation__legal_name", "instrument__symbol"]
    list_select_related = ["organisation", "instrument"]


class DefaultFundContributionInline(admin.TabularInline):
    model = DefaultFundContribution
    fields = ("organisation", "initial_margin", "stress_loss", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DefaultFundSize)
class DefaultFundSizeAdmin(ReadOnlyAdmin):
    list_display = ["date", "size", "stress_move", "computed_at"]
    inlines = [DefaultFundContributionInline]


# --- electricity prices (issue 11) ---------------------------------------------------------


class SmardImportForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("SMARD CSV export"), help_text=gettext_lazy(
        'smard.de → Download centre → Market → Wholesale prices, CSV, hourly or quarter-hourly; the column '
        '"Deutschland/Luxemburg [€/MWh]" is imported, times are German local time.'))

    MAX_BYTES = 5 * 1024 * 1024

    def clean_file(self) -> str:
        from market import power_csv

        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than 5 MB: import a year at most at a time."))
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(_("The file is not UTF-8 text: download it from SMARD again as CSV.")) from None
        try:
            power_csv.parse(text)
        except power_csv.SmardError as error:
            message = _(error.template) % error.params if error.params else _(error.template)
            if error.line is not None:
                message = _("Line %(line)s: %(message)s") % {"line": error.line, "message": message}
            raise forms.ValidationError(message) from None
        return text


@admin.register(PowerPrice)
class PowerPriceAdmin(ReadOnlyAdmin):
    """Hourly electricity prices of DE-LU, read by the electricity page;
    added only through the import (changelist button "Import SMARD CSV")."""

    list_display = ["hour_start", "zone", "price", "source", "is_demo", "imported_at"]
    list_filter = ["is_demo", ("hour_start", admin.DateFieldListFilter)]
    date_hierarchy = "hour_start"
    change_list_template = "admin/market/powerprice/change_list.html"

    def get_urls(self) -> list[Any]:
        from django.urls import path

        return [path("import/", self.admin_site.admin_view(self.import_view), name="market_powerprice_import"),
                *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        from market.power_csv import SmardError
        from market.services.power import power_prices_import

        if not request.user.is_staff or not self.has_view_permission(request):
            raise PermissionDenied
        form = SmardImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = power_prices_import(text=form.cleaned_data["file"], operator=cast(User, request.user),
                                             source=f"SMARD {getattr(request.FILES.get('file'), 'name', '')}"[:100])
            except SmardError as error:  # pragma: no cover - the form read the same file
                form.add_error("file", str(error))
            else:
                self.message_user(request, _(
                    "Imported %(created)d new hours, updated %(updated)d, %(unchanged)d unchanged (%(first)s to "
                    "%(last)s, Europe/Berlin).") % {
                    "created": result.created, "updated": result.updated, "unchanged": result.unchanged,
                    "first": result.first.astimezone(calendar.BERLIN).strftime("%d.%m.%Y %H:%M"),
                    "last": result.last.astimezone(calendar.BERLIN).strftime("%d.%m.%Y %H:%M")}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:market_powerprice_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": _("Import SMARD CSV"), "media": self.media}
        return TemplateResponse(request, "admin/market/powerprice/import.html", context)
