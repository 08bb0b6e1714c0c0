"""Pages of the start-up incentives (issue 12): the public dashboard of the
start financing and the fund, and the members' incentives screen."""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from accounts.selectors import membership_for
from exchange.errors import ExchangeError, add_error_to_form
from incentives.models import APPLICATION_PLAN_MAX_LENGTH, Application, Programme
from incentives.selectors import (
    credits_summary,
    financing_summary,
    incentives_summary,
    may_apply,
    open_programmes,
    programme_eligibility,
    reason_texts,
)
from incentives.services import application_submit, application_withdraw


@require_GET
def dashboard_incentives(request: HttpRequest) -> HttpResponse:
    """Public (no login): what the exchange owes the state, the repayments
    per month, the expected payoff month, the incentive fund's balance and
    the programmes' anonymous aggregate."""
    return render(request, "incentives/dashboard.html",
                  {"summary": financing_summary(), "incentives": incentives_summary()})


class ApplicationForm(forms.Form):
    plan = forms.CharField(label=_("Your plan"), max_length=APPLICATION_PLAN_MAX_LENGTH,
                           widget=forms.Textarea(attrs={"rows": 4}),
                           help_text=_("What will your organisation compute with the credits? A few sentences."))
    amount = forms.DecimalField(label=_("Amount (EUR)"), min_value=Decimal("0.01"), max_digits=18,
                                decimal_places=2, localize=True)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def incentives(request: HttpRequest) -> HttpResponse:
    """Open programmes with the organisation's eligibility (and the reasons
    in words when it is not eligible), an apply form per programme, and the
    organisation's applications and credits."""
    membership = membership_for(request.user)
    if membership is None:
        raise Http404
    organisation = membership.organisation
    if organisation.is_observer:
        raise PermissionDenied
    applies = may_apply(membership)
    forms_by_programme: dict[int, ApplicationForm] = {}
    status = 200
    if request.method == "POST":
        if not applies:
            raise PermissionDenied
        if request.POST.get("action") == "withdraw":
            application = get_object_or_404(Application, pk=request.POST.get("application") or 0,
                                            organisation=organisation)
            try:
                application_withdraw(user=request.user, application=application)  # type: ignore[arg-type]
                flash.success(request, _("The application is withdrawn."))
            except ExchangeError as error:
                flash.error(request, error.detail)
            return redirect("incentives")
        programme = get_object_or_404(Programme, pk=request.POST.get("programme") or 0,
                                      status=Programme.Status.OPEN)
        form = ApplicationForm(request.POST, prefix=f"p{programme.pk}")
        forms_by_programme[programme.pk] = form
        if form.is_valid():
            try:
                application_submit(user=request.user, programme=programme,  # type: ignore[arg-type]
                                   plan=form.cleaned_data["plan"], amount=form.cleaned_data["amount"])
                flash.success(request, _("Your application is submitted. Operators of the exchange will decide "
                                         "it; you will hear by e-mail."))
                return redirect("incentives")
            except ExchangeError as error:
                add_error_to_form(form, error)
        status = 400
    open_applications = set(Application.objects.filter(
        organisation=organisation, status=Application.Status.SUBMITTED).values_list("programme_id", flat=True))
    rows: list[dict[str, Any]] = []
    for programme in open_programmes():
        reasons = programme_eligibility(programme, organisation)
        rows.append({
            "programme": programme,
            "reasons": reason_texts(reasons),
            "has_open_application": programme.pk in open_applications,
            "form": forms_by_programme.get(programme.pk) or ApplicationForm(
                prefix=f"p{programme.pk}", initial={"amount": programme.max_grant}),
        })
    # A plain form post (the page re-renders with the errors at the field): the
    # screen has nothing that changes while one looks at it, so no htmx swap.
    return render(request, "incentives/incentives.html", {
        "membership": membership, "may_apply": applies, "rows": rows,
        "applications": Application.objects.filter(organisation=organisation).select_related("programme"),
        "credits": credits_summary(organisation),
    }, status=status)
