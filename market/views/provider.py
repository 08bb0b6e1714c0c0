"""The provider screen: sites, GPUs per class, and committed and free
capacity per delivery hour. Gated by ``trading_gate(role="provider")``;
every write goes through ``market.services.capacity``.

With htmx, the forms post in place: a site's card, the list of sites or the
capacity table comes back as a partial (errors included, with status 200,
because htmx does not swap 4xx answers), and a change of capacity fires the
``capacity-changed`` event on which the capacity table reloads itself.
Without JavaScript the same URLs answer a redirect (success) or the whole
page with the errors at the fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event
from django_htmx.middleware import HtmxDetails

from accounts.models import Membership, Organisation, User
from accounts.services import trading_gate
from exchange.errors import ExchangeError, add_error_to_form
from market import calendar
from market.models import EnergySource, GpuClass, Site
from market.selectors.capacity import capacity_overview, site_for, sites_for
from market.services import capacity as services

CAPACITY_CHANGED = "capacity-changed"


class ProviderRequest(HttpRequest):
    """What the views see: login_required guarantees a user, HtmxMiddleware adds ``htmx``."""

    user: User
    htmx: HtmxDetails

DAYS = ("today", "tomorrow")

# --- forms (shape only; the rules are the services') --------------------------------------


class SiteForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=120,
                           widget=forms.TextInput(attrs={"placeholder": gettext_lazy("e.g. Munich North")}))
    state = forms.ChoiceField(label=gettext_lazy("Federal state"), choices=Organisation.State.choices,
                              help_text=gettext_lazy("The delivery zone of the site's capacity."))
    energy_source = forms.ChoiceField(label=gettext_lazy("Energy source"), choices=EnergySource.choices)
    # Bounds are the service's (the model's validators); localize accepts "1,25".
    pue = forms.DecimalField(label=gettext_lazy("PUE"), localize=True,
                             help_text=gettext_lazy("Power usage effectiveness, from 1.00 to 3.00, e.g. 1.25."))


class GpuClassChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        # The code alone: the site's table beside the form names the classes.
        return str(obj.code) if obj.active else _("%(code)s (no longer traded)") % {"code": obj.code}


class CapacityForm(forms.Form):
    gpu_class = GpuClassChoice(label=gettext_lazy("GPU class"), queryset=GpuClass.objects.order_by("code"),
                               to_field_name="code", empty_label=None)
    gpus = forms.IntegerField(label=gettext_lazy("GPUs"), min_value=0,
                              help_text=gettext_lazy("The site's whole capacity of this class; 0 removes it."))


@dataclass
class SitePanel:
    """One site on the page, with its two forms."""

    site: Site
    capacity_form: CapacityForm
    edit_form: SiteForm
    editing: bool = False  # the edit form is open (it has errors)


def _panel(site: Site, *, capacity_form: CapacityForm | None = None, edit_form: SiteForm | None = None) -> SitePanel:
    auto_id = f"id_site{site.pk}_%s"
    return SitePanel(
        site=site,
        capacity_form=capacity_form or CapacityForm(auto_id=auto_id),
        edit_form=edit_form or SiteForm(auto_id=f"id_site{site.pk}_edit_%s", initial={
            "name": site.name, "state": site.state, "energy_source": site.energy_source, "pue": site.pue,
        }),
        editing=edit_form is not None and bool(edit_form.errors),
    )


# --- helpers ---------------------------------------------------------------------------


def _gate(request: HttpRequest) -> Membership | HttpResponse:
    try:
        return trading_gate(user=request.user, role="provider")
    except ExchangeError as refused:
        if getattr(request, "htmx", False):
            # A partial can't show the refusal; the whole page explains it.
            return HttpResponseClientRedirect(reverse("provider_home"))
        return render(request, "market/provider/refused.html", {"refusal": refused}, status=refused.status)


def _day_key(request: HttpRequest) -> str:
    key = request.GET.get("day", "")
    return key if key in DAYS else "today"


def _day(key: str) -> date:
    today = timezone.now().astimezone(calendar.BERLIN).date()
    return today + timedelta(days=DAYS.index(key))


def _overview_context(organisation: Organisation, day_key: str) -> dict[str, Any]:
    return {
        "overview": capacity_overview(organisation=organisation, day=_day(day_key)),
        "day_key": day_key,
        "days": [("today", _("Today")), ("tomorrow", _("Tomorrow"))],
    }


def _sites_context(
    organisation: Organisation, *, site_form: SiteForm | None = None, replaced: SitePanel | None = None
) -> dict[str, Any]:
    panels = [
        replaced if replaced is not None and replaced.site.pk == site.pk else _panel(site)
        for site in sites_for(organisation=organisation)
    ]
    return {"panels": panels, "site_form": site_form or SiteForm(auto_id="id_new_site_%s")}


def _page(request: HttpRequest, membership: Membership, *, status: int = 200, **sites: Any) -> HttpResponse:
    organisation = membership.organisation
    context = {
        "organisation": organisation,
        **_sites_context(organisation, **sites),
        **_overview_context(organisation, _day_key(request)),
    }
    return render(request, "market/provider/home.html", context, status=status)


def _partial(request: HttpRequest, template: str, context: dict[str, Any], *, changed: bool = False) -> HttpResponse:
    # The messages travel out of band into the page's #messages container.
    html = render_to_string(template, context, request) + render_to_string(
        "market/provider/_messages_oob.html", {}, request
    )
    response = HttpResponse(html)
    if changed:
        trigger_client_event(response, CAPACITY_CHANGED)
    return response


def _own_site(membership: Membership, pk: int) -> Site:
    site = site_for(organisation=membership.organisation, pk=pk)
    if site is None:
        raise Http404
    return site


def _refreshed(site: Site) -> Site:
    """The site again, with its capacities, as the list shows it."""
    return next(s for s in sites_for(organisation=site.organisation) if s.pk == site.pk)


# --- views -----------------------------------------------------------------------------


@login_required
@require_GET
def provider_home(request: ProviderRequest) -> HttpResponse:
    found = _gate(request)
    if isinstance(found, HttpResponse):
        return found
    return _page(request, found)


@login_required
@require_GET
def provider_capacity(request: ProviderRequest) -> HttpResponse:
    """The capacity table alone (htmx: day tabs, and reload after a change)."""
    found = _gate(request)
    if isinstance(found, HttpResponse):
        return found
    day_key = _day_key(request)
    if not request.htmx:
        return redirect(f"{reverse('provider_home')}?day={day_key}#capacity")
    return render(request, "market/provider/_capacity.html", _overview_context(found.organisation, day_key))


@login_required
@require_POST
def provider_site_create(request: ProviderRequest) -> HttpResponse:
    found = _gate(request)
    if isinstance(found, HttpResponse):
        return found
    form = SiteForm(request.POST, auto_id="id_new_site_%s")
    status = 400
    if form.is_valid():
        try:
            site = services.site_create(user=request.user, **form.cleaned_data)
        except ExchangeError as error:
            add_error_to_form(form, error)
            status = error.status
        else:
            messages.success(request, _("The site %(name)s is added. Now set its capacity per GPU class.")
                             % {"name": site.name})
            if request.htmx:
                return _partial(request, "market/provider/_sites.html", _sites_context(found.organisation))
            return redirect(f"{reverse('provider_home')}#site-{site.pk}")
    if request.htmx:
        return _partial(request, "market/provider/_sites.html", _sites_context(found.organisation, site_form=form))
    return _page(request, found, status=status, site_form=form)


@login_required
@require_POST
def provider_site_update(request: ProviderRequest, pk: int) -> HttpResponse:
    found = _gate(request)
    if isinstance(found, HttpResponse):
        return found
    site = _own_site(found, pk)
    form = SiteForm(request.POST, auto_id=f"id_site{site.pk}_edit_%s")
    status = 400
    if form.is_valid():
        try:
            site = services.site_update(user=request.user, site=site, **form.cleaned_data)
        except ExchangeError as error:
            add_error_to_form(form, error)
            status = error.status
        else:
            messages.success(request, _("The site %(name)s is saved.") % {"name": site.name})
            if request.htmx:
                return _partial(request, "market/provider/_site.html", {"panel": _panel(_refreshed(site))},
                                changed=True)
            return redirect(f"{reverse('provider_home')}#site-{site.pk}")
    panel = _panel(_refreshed(site), edit_form=form)
    if request.htmx:
        return _partial(request, "market/provider/_site.html", {"panel": panel})
    return _page(request, found, status=status, replaced=panel)


@login_required
@require_POST
def provider_capacity_set(request: ProviderRequest, pk: int) -> HttpResponse:
    found = _gate(request)
    if isinstance(found, HttpResponse):
        return found
    site = _own_site(found, pk)
    form = CapacityForm(request.POST, auto_id=f"id_site{site.pk}_%s")
    status = 400
    if form.is_valid():
        gpu_class, gpus = form.cleaned_data["gpu_class"], form.cleaned_data["gpus"]
        try:
            services.site_capacity_set(user=request.user, site=site, gpu_class=gpu_class, gpus=gpus)
        except ExchangeError as error:
            add_error_to_form(form, error)
            status = error.status
        else:
            names = {"site": site.name, "gpus": gpus, "gpu_class": gpu_class.code}
            if gpus:
                messages.success(request, _("%(site)s now offers %(gpus)s GPUs of %(gpu_class)s.") % names)
            else:
                messages.success(request, _("%(site)s no longer offers %(gpu_class)s.") % names)
            if request.htmx:
                return _partial(request, "market/provider/_site.html", {"panel": _panel(_refreshed(site))},
                                changed=True)
            return redirect(f"{reverse('provider_home')}#site-{site.pk}")
    panel = _panel(_refreshed(site), capacity_form=form)
    if request.htmx:
        return _partial(request, "market/provider/_site.html", {"panel": panel})
    return _page(request, found, status=status, replaced=panel)


urlpatterns: list[URLPattern | URLResolver] = [
    path("provider/", provider_home, name="provider_home"),
    path("provider/capacity/", provider_capacity, name="provider_capacity"),
    path("provider/sites/", provider_site_create, name="provider_site_create"),
    path("provider/sites/<int:pk>/", provider_site_update, name="provider_site_update"),
    path("provider/sites/<int:pk>/capacity/", provider_capacity_set, name="provider_capacity_set"),
]
