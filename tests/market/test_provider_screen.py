"""The provider screen /provider/: who sees it, its forms (with and without
htmx), errors at the field, and that Charlie never sees Alice's sites."""

import json
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from accounts.models import KycCase, Organisation, User
from market.models import Order, Site, SiteCapacity
from tests.factories import (
    GpuClassFactory,
    HourInstrumentFactory,
    MembershipFactory,
    ObserverFactory,
    OrganisationFactory,
    SiteCapacityFactory,
    SiteFactory,
    UserFactory,
    delivery_hour,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
HOME = "/provider/"


class FieldErrors(HTMLParser):
    """The errors shown inside each form field's <div class="field">, by the
    name of the input, select or textarea in that div."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, list[str]] = {}
        self._depth = 0  # <div> nesting inside the current field
        self._names: list[str] = []
        self._messages: list[str] = []
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "div" and self._depth:
            self._depth += 1
        elif tag == "div" and "field" in classes:
            self._depth, self._names, self._messages = 1, [], []
        elif self._depth and tag in ("input", "select", "textarea"):
            self._names.append(dict(attrs).get("name") or "")
        elif self._depth and tag == "p" and "field-error" in classes:
            self._in_error = True
            self._messages.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._in_error = False
        if tag == "div" and self._depth:
            self._depth -= 1
            if not self._depth and self._messages:
                for name in self._names:
                    self.errors.setdefault(name, []).extend(m.strip() for m in self._messages)

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self._messages[-1] += data


def field_errors(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    parser = FieldErrors()
    parser.feed(response.content.decode())
    return parser.errors


# --- actors ------------------------------------------------------------------------------


@pytest.fixture
def org_a() -> Organisation:
    return OrganisationFactory(legal_name="Alice Rechenwerk GmbH", kyc__status=KycCase.Status.APPROVED)


@pytest.fixture
def alice(org_a: Organisation) -> User:
    user = UserFactory(email="alice@example.com")
    MembershipFactory(user=user, organisation=org_a, is_owner=True, is_trader=True, is_provider=True)
    return user


@pytest.fixture
def bob(org_a: Organisation, alice: User) -> User:
    user = UserFactory(email="bob@example.com")
    MembershipFactory(user=user, organisation=org_a, is_trader=True)
    return user


@pytest.fixture
def charlie() -> User:
    user = UserFactory(email="charlie@example.com")
    organisation = OrganisationFactory(legal_name="Charlie Cloud AG", kyc__status=KycCase.Status.APPROVED)
    MembershipFactory(user=user, organisation=organisation, is_owner=True, is_trader=True, is_provider=True)
    return user


@pytest.fixture
def h100():  # type: ignore[no-untyped-def]
    return GpuClassFactory(code="H100")


@pytest.fixture
def alices_site(org_a: Organisation, h100) -> Site:  # type: ignore[no-untyped-def]
    site = SiteFactory(organisation=org_a, name="Alices Halle Garching", state="DE-BY")
    SiteCapacityFactory(site=site, gpu_class=h100, gpus=512)
    return site


def site_post(**overrides: str) -> dict[str, str]:
    return {"name": "Nürnberg Hafen", "state": "DE-BY", "energy_source": "grid_mix", "pue": "1,35", **overrides}


# --- who sees the page -------------------------------------------------------------------


def test_the_provider_sees_sites_capacity_and_the_forms(client, alice, alices_site):
    client.force_login(alice)
    response = client.get(HOME)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Alices Halle Garching" in html
    assert "Standort hinzufügen" in html  # German by default
    assert "Bayern" in html and "512" in html
    assert 'id="capacity"' in html and "00:00–01:00" in html
    assert 'href="/provider/"' in html and "Anbieter</a>" in html  # the nav item, current


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get(HOME)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_a_trader_without_the_provider_role_is_refused_and_sees_no_nav_item(client, bob, alices_site):
    client.force_login(bob)
    response = client.get(HOME)
    assert response.status_code == 403
    html = response.content.decode()
    assert "Alices Halle Garching" not in html
    assert "Dafür ist die Rolle Anbieter nötig." in html
    assert "Sie dürfen keine Standorte und Kapazitäten verwalten." in html
    assert 'href="/provider/"' not in html


def test_an_organisation_in_review_is_told_to_wait_for_kyc(client):
    user = UserFactory()
    organisation = OrganisationFactory(kyc__status=KycCase.Status.SUBMITTED)
    MembershipFactory(user=user, organisation=organisation, is_owner=True, is_provider=True)
    client.force_login(user)
    response = client.get(HOME)
    assert response.status_code == 403
    assert reverse("organisation_detail") in response.content.decode()


def test_an_observer_is_refused(client):
    user = UserFactory()
    MembershipFactory(user=user, organisation=ObserverFactory(kyc__status=KycCase.Status.APPROVED),
                      is_trader=False, is_viewer=True)
    client.force_login(user)
    assert client.get(HOME).status_code == 403


def test_charlie_never_sees_or_touches_alices_sites(client, charlie, alices_site, h100):
    client.force_login(charlie)
    html = client.get(HOME).content.decode()
    assert "Alices Halle Garching" not in html
    assert f"site-{alices_site.pk}" not in html
    capacity_url = reverse("provider_capacity_set", args=[alices_site.pk])
    assert client.post(capacity_url, {"gpu_class": "H100", "gpus": "1"}).status_code == 404
    assert client.post(capacity_url, {"gpu_class": "H100", "gpus": "1"}, **HTMX).status_code == 404
    update_url = reverse("provider_site_update", args=[alices_site.pk])
    assert client.post(update_url, site_post(name="Gekapert")).status_code == 404
    alices_site.refresh_from_db()
    assert alices_site.name == "Alices Halle Garching"
    assert SiteCapacity.objects.get(site=alices_site).gpus == 512


# --- adding a site -----------------------------------------------------------------------


def test_adding_a_site_redirects_to_it(client, alice, org_a):
    client.force_login(alice)
    response = client.post(reverse("provider_site_create"), site_post())
    site = Site.objects.get(organisation=org_a)
    assert response.status_code == 302
    assert response["Location"] == f"{HOME}#site-{site.pk}"
    assert (site.name, site.pue, site.energy_source) == ("Nürnberg Hafen", Decimal("1.35"), "grid_mix")
    page = client.get(response["Location"]).content.decode()
    assert "Nürnberg Hafen" in page and "alert-success" in page


def test_adding_a_site_with_htmx_answers_the_list_of_sites(client, alice, alices_site):
    client.force_login(alice)
    response = client.post(reverse("provider_site_create"), site_post(), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert html.lstrip().startswith('<section id="provider-sites"')
    assert "Nürnberg Hafen" in html and "Alices Halle Garching" in html
    assert 'hx-swap-oob="true"' in html and "alert-success" in html  # the message, out of band


def test_a_bad_pue_is_shown_at_the_field_and_nothing_is_written(client, alice):
    client.force_login(alice)
    response = client.post(reverse("provider_site_create"), site_post(pue="3,5"))
    assert response.status_code == 400
    errors = field_errors(response)
    assert list(errors) == ["pue"]
    assert "3" in errors["pue"][0]
    assert not Site.objects.exists()
    # The typed values stay in the form.
    assert 'value="Nürnberg Hafen"' in response.content.decode()


def test_a_duplicate_name_is_shown_at_the_field_also_with_htmx(client, alice, alices_site):
    client.force_login(alice)
    response = client.post(reverse("provider_site_create"), site_post(name="alices halle garching"), **HTMX)
    assert response.status_code == 200  # htmx swaps only 2xx answers
    assert list(field_errors(response)) == ["name"]
    assert Site.objects.count() == 1


def test_a_trader_cannot_post_a_site(client, bob):
    client.force_login(bob)
    assert client.post(reverse("provider_site_create"), site_post()).status_code == 403
    response = client.post(reverse("provider_site_create"), site_post(), **HTMX)
    assert response.status_code == 200 and response["HX-Redirect"] == HOME
    assert not Site.objects.exists()


# --- capacity and site details -------------------------------------------------------------


def test_setting_capacity_with_htmx_swaps_the_site_and_reloads_the_table(client, alice, alices_site):
    GpuClassFactory(code="H200")
    client.force_login(alice)
    url = reverse("provider_capacity_set", args=[alices_site.pk])
    response = client.post(url, {"gpu_class": "H200", "gpus": "256"}, **HTMX)
    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"capacity-changed": {}}
    html = response.content.decode()
    assert html.lstrip().startswith(f'<article class="card site-card" id="site-{alices_site.pk}"')
    assert "H200" in html and "256" in html
    assert SiteCapacity.objects.get(site=alices_site, gpu_class__code="H200").gpus == 256


def test_setting_capacity_without_htmx_redirects_and_zero_removes(client, alice, alices_site):
    client.force_login(alice)
    url = reverse("provider_capacity_set", args=[alices_site.pk])
    response = client.post(url, {"gpu_class": "H100", "gpus": "0"})
    assert response.status_code == 302
    assert not SiteCapacity.objects.filter(site=alices_site).exists()


def test_a_negative_number_of_gpus_is_shown_at_the_field(client, alice, alices_site):
    client.force_login(alice)
    url = reverse("provider_capacity_set", args=[alices_site.pk])
    response = client.post(url, {"gpu_class": "H100", "gpus": "-3"})
    assert response.status_code == 400
    assert list(field_errors(response)) == ["gpus"]
    assert SiteCapacity.objects.get(site=alices_site).gpus == 512


def test_reducing_below_what_is_sold_is_refused_at_the_gpus_field(client, alice, org_a, alices_site, h100):
    instrument = HourInstrumentFactory(gpu_class=h100, zone_code="DE-BY", hour=delivery_hour(1, "10"))
    Order.objects.create(instrument=instrument, organisation=org_a, placed_by=alice, side="sell",
                         price=Decimal("9.50"), quantity=300, priority=1)
    client.force_login(alice)
    url = reverse("provider_capacity_set", args=[alices_site.pk])
    response = client.post(url, {"gpu_class": "H100", "gpus": "200"})
    assert response.status_code == 409
    errors = field_errors(response)
    assert list(errors) == ["gpus"] and "300" in errors["gpus"][0]
    assert SiteCapacity.objects.get(site=alices_site).gpus == 512
    # The committed figures are on the page too.
    assert "300" in client.get(HOME + "?day=tomorrow").content.decode()


def test_editing_a_site_keeps_the_form_open_on_errors(client, alice, alices_site):
    client.force_login(alice)
    url = reverse("provider_site_update", args=[alices_site.pk])
    response = client.post(url, site_post(name="", pue="1,2"))
    assert response.status_code == 400
    html = response.content.decode()
    assert list(field_errors(response)) == ["name"]
    assert '<details class="site-edit" open>' in html
    response = client.post(url, site_post(name="Garching Halle 2"), **HTMX)
    assert response.status_code == 200 and "Garching Halle 2" in response.content.decode()
    alices_site.refresh_from_db()
    assert (alices_site.name, alices_site.pue) == ("Garching Halle 2", Decimal("1.35"))


# --- the capacity table ----------------------------------------------------------------


def test_the_capacity_table_answers_a_partial_per_day(client, alice, org_a, alices_site, h100):
    instrument = HourInstrumentFactory(gpu_class=h100, zone_code="DE", hour=delivery_hour(1, "17"))
    Order.objects.create(instrument=instrument, organisation=org_a, placed_by=alice, side="sell",
                         price=Decimal("9.50"), quantity=123, priority=1)
    client.force_login(alice)
    response = client.get(reverse("provider_capacity") + "?day=tomorrow", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="capacity"')
    assert "<html" not in html
    assert "123" in html and "389" in html  # committed in DE, and 512 - 123 free
    today = client.get(reverse("provider_capacity") + "?day=today", **HTMX).content.decode()
    assert "123" not in today
    # Without htmx the URL leads to the page.
    plain = client.get(reverse("provider_capacity") + "?day=tomorrow")
    assert plain.status_code == 302 and plain["Location"] == f"{HOME}?day=tomorrow#capacity"
