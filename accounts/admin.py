"""The operator's review: users, organisations (with derived SME/start-up
filters), KYC cases with their documents and the decision, the read-only
audit log, and API tokens (revoke only).

KYC decisions are taken on a page of their own (``<case>/decide/``, linked
from the change form) or as bulk actions with an intermediate page that asks
for the reason; both call ``services.kyc_decide``."""

from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts import services
from accounts.forms import KycDecisionForm, KycReasonForm
from accounts.models import (
    ApiToken,
    AuditLog,
    Invitation,
    KycCase,
    KycDocument,
    Membership,
    Organisation,
    User,
    normalize_vat_id,
)
from exchange.admin import ExchangeModelAdmin, ListColumnsMixin, NoBulkDeleteMixin, ReadOnlyAdmin
from exchange.errors import ExchangeError, add_error_to_form

# --- users --------------------------------------------------------------------------------


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class MembershipOfUserInline(admin.StackedInline):
    model = Membership
    extra = 0
    max_num = 1
    autocomplete_fields = ("organisation",)


@admin.register(User)
class UserAdmin(ListColumnsMixin, DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("full_name",)}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "usable_password", "password1", "password2")}),
    )
    list_display = ("email", "full_name", "organisation", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "full_name", "membership__organisation__legal_name")
    ordering = ("email",)
    readonly_fields = ("last_login", "date_joined")
    inlines = (MembershipOfUserInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).select_related("membership__organisation")

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        # The add page asks for e-mail and password only; the membership follows.
        return list(self.inlines) if obj is not None else []

    @admin.display(description=_("organisation"))
    def organisation(self, obj: User) -> str:
        membership = getattr(obj, "membership", None)
        return membership.organisation.legal_name if membership else "–"


# --- organisations ------------------------------------------------------------------------


class SmeFilter(admin.SimpleListFilter):
    title = _("SME")
    parameter_name = "sme"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("SME")), ("no", _("not an SME"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() in ("yes", "no"):
            # ``sme`` is annotated by OrganisationAdmin.get_queryset (with_derived).
            return queryset.filter(sme=self.value() == "yes")
        return None


class StartupFilter(admin.SimpleListFilter):
    title = _("start-up")
    parameter_name = "startup"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("start-up (founded at most 5 years ago)")), ("no", _("not a start-up"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() in ("yes", "no"):
            return queryset.filter(startup=self.value() == "yes")
        return None


class KycStatusFilter(admin.SimpleListFilter):
    title = _("KYC status")
    parameter_name = "kyc_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(KycCase.Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() in KycCase.Status.values:
            if self.value() == KycCase.Status.DRAFT:
                # An organisation without a case counts as a draft.
                return queryset.filter(Q(kyc__status=KycCase.Status.DRAFT) | Q(kyc__isnull=True))
            return queryset.filter(kyc__status=self.value())
        return None


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "is_owner", "is_trader", "is_provider", "is_viewer", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Organisation)
class OrganisationAdmin(ExchangeModelAdmin):
    list_display = ("legal_name", "kind", "state", "kyc_status", "sme_flag", "startup_flag", "created_at")
    list_filter = (KycStatusFilter, "kind", "state", SmeFilter, StartupFilter)
    search_fields = ("legal_name", "vat_id", "register_number", "memberships__user__email")
    readonly_fields = ("created_at", "sme_flag", "startup_flag", "kyc_link")
    inlines = (MembershipInline,)
    fieldsets = (
        (None, {"fields": ("kind", "legal_name", "legal_form", "kyc_link")}),
        (_("Register and tax"), {"fields": ("register_court", "register_type", "register_number", "vat_id")}),
        (_("Address"), {"fields": ("street", "postal_code", "city", "state")}),
        (_("Size"), {"fields": ("founding_date", "employees_band", "turnover_band", "sme_flag", "startup_flag")}),
        (None, {"fields": ("created_at",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organisation]:
        # ``sme`` and ``startup`` annotations feed the list filters and sorting.
        queryset = Organisation.objects.with_derived().select_related("kyc")
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Organisation], search_term: str
    ) -> tuple[QuerySet[Organisation], bool]:
        # A VAT ID is found however it is typed ("de 136 695 976").
        normalised = normalize_vat_id(search_term)
        if normalised != search_term.strip() and normalised.startswith("DE"):
            search_term = normalised
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=_("KYC"), ordering="kyc__status")
    def kyc_status(self, obj: Organisation) -> str:
        case = getattr(obj, "kyc", None)
        return str(case.get_status_display() if case else KycCase.Status.DRAFT.label)

    @admin.display(description=_("KYC case"))
    def kyc_link(self, obj: Organisation) -> str:
        case = getattr(obj, "kyc", None) if obj.pk else None
        if case is None:
            return "–"
        url = reverse("admin:accounts_kyccase_change", args=[case.pk])
        return format_html('<a href="{}">{}</a>', url, case.get_status_display())

    @admin.display(description=_("SME"), boolean=True, ordering="sme")
    def sme_flag(self, obj: Organisation) -> bool:
        return obj.is_sme()

    @admin.display(description=_("start-up"), boolean=True, ordering="founding_date")
    def startup_flag(self, obj: Organisation) -> bool:
        return obj.is_startup()

    def save_model(self, request: HttpRequest, obj: Organisation, form: Any, change: bool) -> None:
        services.organisation_save_by_operator(operator=request.user, organisation=obj,  # type: ignore[arg-type]
                                               changed=list(form.changed_data))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An organisation with history is never deleted (the audit log
        # protects it anyway); operators set its members inactive instead.
        return False


# --- KYC ------------------------------------------------------------------------------------


class KycDocumentInline(admin.TabularInline):
    model = KycDocument
    extra = 0
    can_delete = False
    fields = ("kind", "download", "content_type", "size", "sha256_short", "uploaded_by", "uploaded_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("SHA-256"))
    def sha256_short(self, obj: KycDocument) -> str:
        return format_html('<code title="{}">{}…</code>', obj.sha256, obj.sha256[:16])

    @admin.display(description=_("file"))
    def download(self, obj: KycDocument) -> str:
        url = reverse("kyc_document_download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.original_name)


@admin.register(KycCase)
class KycCaseAdmin(ExchangeModelAdmin):
    list_display = ("organisation", "status", "submitted_at", "decided_at", "decided_by", "document_count")
    list_filter = ("status", "organisation__kind", "organisation__state")
    search_fields = ("organisation__legal_name", "organisation__vat_id", "organisation__register_number")
    list_select_related = ("organisation", "decided_by")
    ordering = ("-submitted_at",)
    readonly_fields = ("organisation_link", "status", "submitted_at", "decided_at", "decided_by", "reason")
    fields = readonly_fields
    inlines = (KycDocumentInline,)
    actions = ("approve_selected", "reject_selected", "needs_info_selected")
    change_form_template = "admin/accounts/kyccase/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("organisation"))
    def organisation_link(self, obj: KycCase) -> str:
        url = reverse("admin:accounts_organisation_change", args=[obj.organisation_id])
        return format_html('<a href="{}">{}</a>', url, obj.organisation.legal_name)

    @admin.display(description=_("documents"))
    def document_count(self, obj: KycCase) -> int:
        return obj.documents.count()

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path("<int:pk>/decide/", self.admin_site.admin_view(self.decide_view), name="accounts_kyccase_decide"),
        ]
        return custom + super().get_urls()

    def _check_may_decide(self, request: HttpRequest, case: KycCase | None = None) -> None:
        if not self.has_change_permission(request, case):
            raise PermissionDenied

    def decide_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """One case: decision and reason on one page."""
        case = get_object_or_404(KycCase.objects.select_related("organisation"), pk=pk)
        self._check_may_decide(request, case)
        form = KycDecisionForm(request.POST or None, initial={"decision": request.GET.get("decision")})
        if request.method == "POST" and form.is_valid():
            try:
                services.kyc_decide(
                    operator=request.user,  # type: ignore[arg-type]
                    case=case,
                    decision=form.cleaned_data["decision"],
                    reason=form.cleaned_data["reason"],
                )
            except ExchangeError as error:
                add_error_to_form(form, error)
            else:
                case.refresh_from_db()
                self.message_user(
                    request,
                    gettext("KYC of %(organisation)s: %(status)s.")
                    % {"organisation": case.organisation.legal_name, "status": case.get_status_display()},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:accounts_kyccase_change", args=[case.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Decide the KYC of %(organisation)s") % {"organisation": case.organisation.legal_name},
            "case": case,
            "documents": case.documents.all(),
            "form": form,
        }
        return TemplateResponse(request, "admin/accounts/kyccase/decide.html", context,
                                status=400 if form.errors else 200)

    def _bulk_decide(self, request: HttpRequest, queryset: QuerySet[KycCase], decision: str) -> HttpResponse | None:
        """Bulk action: an intermediate page asks for the reason, then each case
        is decided on its own (one refused case doesn't stop the others)."""
        self._check_may_decide(request)
        form = KycReasonForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            reason = form.cleaned_data["reason"].strip()
            if decision in services.REASON_REQUIRED and not reason:
                form.add_error("reason", gettext("Give a reason: the organisation's owners will read it."))
            else:
                done = 0
                for case in queryset.select_related("organisation"):
                    try:
                        services.kyc_decide(
                            operator=request.user,  # type: ignore[arg-type]
                            case=case,
                            decision=decision,
                            reason=reason,
                        )
                    except ExchangeError as error:
                        self.message_user(request, f"{case.organisation.legal_name}: {error.detail}", messages.ERROR)
                    else:
                        done += 1
                if done:
                    self.message_user(
                        request,
                        ngettext("%(count)d KYC case decided.", "%(count)d KYC cases decided.", done)
                        % {"count": done},
                        messages.SUCCESS,
                    )
                return None
        labels = dict(KycDecisionForm.DECISIONS)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": labels[decision],
            "decision": decision,
            "decision_label": labels[decision],
            "reason_required": decision in services.REASON_REQUIRED,
            "cases": queryset.select_related("organisation"),
            "form": form,
            "action": request.POST.get("action"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/accounts/kyccase/bulk_decide.html", context)

    @admin.action(description=_("Approve the selected KYC cases"), permissions=["change"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[KycCase]) -> HttpResponse | None:
        return self._bulk_decide(request, queryset, "approve")

    @admin.action(description=_("Reject the selected KYC cases"), permissions=["change"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[KycCase]) -> HttpResponse | None:
        return self._bulk_decide(request, queryset, "reject")

    @admin.action(description=_("Ask for more information"), permissions=["change"])
    def needs_info_selected(self, request: HttpRequest, queryset: QuerySet[KycCase]) -> HttpResponse | None:
        return self._bulk_decide(request, queryset, "needs_info")


# --- audit log, tokens, invitations -------------------------------------------------------



# What each audited action means, for the operators' list (the log stores the code).
AUDIT_ACTIONS: dict[str, Any] = {
    "organisation.create": _("organisation registered"),
    "membership.invite": _("member invited"),
    "membership.join": _("invitation accepted"),
    "kyc.document_add": _("KYC document added"),
    "kyc.submit": _("KYC submitted"),
    "kyc.approve": _("KYC approved"),
    "kyc.reject": _("KYC rejected"),
    "kyc.needs_info": _("KYC: more information requested"),
    "instrument.halt": _("trading halted"),
    "instrument.resume": _("trading resumed"),
    "site.create": _("site registered"),
    "site.update": _("site changed"),
    "site_capacity.set": _("site capacity set"),
    "delivery.hold": _("delivery held for a decision"),
    "delivery.dispute_resolve": _("dispute resolved"),
    "withdrawal_request": _("withdrawal requested"),
    "withdrawal_approve": _("withdrawal approved"),
    "withdrawal_reject": _("withdrawal rejected"),
    "withdrawal_cancel": _("withdrawal cancelled"),
    "payout_change_request": _("payout account requested"),
    "payout_change_first_approve": _("payout account: first approval"),
    "payout_change_approve": _("payout account verified"),
    "payout_change_reject": _("payout account rejected"),
    "payout_change_cancel": _("payout account request cancelled"),
    "ccp_claim_collect": _("clearing house claim collected"),
}


class AuditActionFilter(admin.SimpleListFilter):
    """The actions present in the log, by their readable labels."""

    title = _("action")
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        codes = AuditLog.objects.order_by("action").values_list("action", flat=True).distinct()
        return [(code, AUDIT_ACTIONS.get(code, code)) for code in codes]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditLog]) -> QuerySet[AuditLog]:
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor", "action_label", "organisation", "object_link", "before", "after")
    list_filter = (AuditActionFilter, "object_type")
    search_fields = ("actor__email", "organisation__legal_name", "action", "object_id", "reason")
    list_select_related = ("actor", "organisation")
    date_hierarchy = "created_at"

    @admin.display(description=_("action"), ordering="action")
    def action_label(self, obj: AuditLog) -> str:
        label = AUDIT_ACTIONS.get(obj.action)
        return f"{label} ({obj.action})" if label else obj.action

    @admin.display(description=_("object"), ordering="object_type")
    def object_link(self, obj: AuditLog) -> str:
        """The audited object's name and number, linked to its admin page
        when it has one (no query: the log names model and id)."""
        try:
            model = apps.get_model(obj.object_type)
        except (LookupError, ValueError):
            return f"{obj.object_type} #{obj.object_id}"
        label = f"{capfirst(model._meta.verbose_name)} #{obj.object_id}"
        try:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.object_id])
        except NoReverseMatch:
            return label
        return format_html('<a href="{}">{}</a>', url, label)


@admin.register(ApiToken)
class ApiTokenAdmin(NoBulkDeleteMixin, ReadOnlyAdmin):
    list_display = ("prefix", "user", "created_at", "last_used_at")
    search_fields = ("prefix", "user__email")
    list_select_related = ("user",)
    actions = ("revoke_selected",)


    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Revoking is deleting: the token stops working at once.
        return bool(request.user.is_active and request.user.is_staff
                    and request.user.has_perm("accounts.delete_apitoken"))

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        services.api_token_revoke(token=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            services.api_token_revoke(token=token)

    @admin.action(description=_("Revoke the selected API tokens"), permissions=["delete"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = 0
        for token in queryset:
            services.api_token_revoke(token=token)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d API token revoked.", "%(count)d API tokens revoked.", count) % {"count": count},
            messages.SUCCESS,
        )


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ("email", "organisation", "invited_by", "created_at", "expires_at", "accepted_at")
    search_fields = ("email", "organisation__legal_name")
    list_select_related = ("organisation", "invited_by")

