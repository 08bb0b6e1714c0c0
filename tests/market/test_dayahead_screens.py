"""The member screens of the day-ahead auction (issue 9, items 1 and 5):
the page with the auction's state, the curve editor and the block form with
their reservation preview, the organisation's bids with cancel, and after
clearing the accepted quantities.

Bea's start-up bids to buy; Bodo is a viewer in Bea's organisation (reads,
never bids); Selma's data centre sells; Charlie's organisation must see and
touch none of Bea's bids; Olga observes for a ministry. The delivery day is
the day after tomorrow, whose book is open whatever the time of day."""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import KycCase, Organisation, User
from clearing.models import Account
from market import calendar
from market.models import BidStatus, DayAheadBid, DayAheadStep
from market.services import dayahead
from market.views.dayahead import CurveForm, countdown_text
from tests.factories import (
    GpuClassFactory,
    MembershipFactory,
    ObserverFactory,
    OrganisationFactory,
    SiteCapacityFactory,
    SiteFactory,
    UserFactory,
    deposit,
)
from tests.market.trading_setup import APPROVED, ensure_zones

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
PAGE = "/trading/dayahead/"
WEEKDAYS = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"]


def berlin_today() -> date:
    return timezone.now().astimezone(calendar.BERLIN).date()


def member(name: str, email: str, *, cash: str | None = "10000.00", **roles: bool) -> tuple[Organisation, User]:
    organisation = OrganisationFactory(legal_name=name, kyc__status=APPROVED)
    user = UserFactory(email=email)
    MembershipFactory(user=user, organisation=organisation, **{"is_owner": True, "is_trader": True, **roles})
    if cash:
        deposit(organisation, cash)
    return organisation, user


class World:
    def __init__(self) -> None:
        ensure_zones("DE", "DE-BY")
        self.h100 = GpuClassFactory(code="H100")
        self.day = berlin_today() + timedelta(days=2)
        self.bea_org, self.bea = member("Bea Start GmbH", "bea@example.com")
        self.bodo = UserFactory(email="bodo@example.com")
        MembershipFactory(user=self.bodo, organisation=self.bea_org, is_trader=False, is_viewer=True)
        self.selma_org, self.selma = member("Selma Rechenzentrum GmbH", "selma@example.com", is_provider=True)
        SiteCapacityFactory(site=SiteFactory(organisation=self.selma_org, state=Organisation.State.BY),
                            gpu_class=self.h100, gpus=100)
        self.charlie_org, self.charlie = member("Charlie Cloud AG", "charlie@example.com")
        self.olga = UserFactory(email="olga@ministerium.example")
        MembershipFactory(user=self.olga, organisation=ObserverFactory(kyc__status=APPROVED), is_trader=False,
                          is_viewer=True)

    def query(self, **extra: str) -> str:
        return "?" + "&".join(f"{k}={v}" for k, v in {"delivery_date": self.day.isoformat(), "gpu_class": "H100",
                                                         "zone": "DE", **extra}.items())

    def bid(self, user: User, **fields: object) -> DayAheadBid:
        fields = {"delivery_date": self.day, "gpu_class": "H100", "zone": "DE", **fields}
        return dayahead.dayahead_bid_submit(user=user, **fields)  # type: ignore[arg-type]

    def selection(self) -> dict[str, str]:
        return {"delivery_date": self.day.isoformat(), "gpu_class": "H100", "zone": "DE"}


@pytest.fixture
def world() -> World:
    return World()


def client_for(user: User, *, english: bool = False, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    if english:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def curve_post(world: World, steps: list[tuple[str, str]], **values: str) -> dict[str, object]:
    return {**world.selection(), "kind": "curve", "side": "buy", "hour": "14",
            "step_price": [p for p, _q in steps], "step_quantity": [q for _p, q in steps], **values}


def block_post(world: World, **values: str) -> dict[str, str]:
    return {**world.selection(), "kind": "block", "side": "buy", "first_hour": "09", "last_hour": "11",
            "price": "12,00", "quantity": "5", "min_acceptance_ratio": "1", "exclusive_group": "", **values}


def field_errors(html: str, name: str) -> list[str]:
    """The error texts shown in the form field holding the input ``name``."""
    for block in html.split('<div class="field')[1:]:
        if f'name="{name}"' in block:
            return re.findall(r'<p class="field-error">(.*?)</p>', block.split('<div class="field')[0], re.S)
    return []


def step_row_errors(html: str) -> list[str]:
    return re.findall(r'<tr class="step-errors" data-step-errors>.*?<p class="field-error">(.*?)</p>', html, re.S)


def cash(organisation: Organisation, kind: str) -> Decimal:
    account = Account.objects.filter(organisation=organisation, kind=kind).first()
    return account.balance if account else Decimal("0.00")


def bid_row(html: str, bid: DayAheadBid) -> str:
    found = re.search(rf'<tr id="dayahead-bid-{bid.pk}".*?</tr>', html, re.S)
    assert found, f"no row for bid {bid.pk}"
    return found.group(0)


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# --- who sees what ----------------------------------------------------------------------------


def test_the_screens_need_a_login(world: World) -> None:
    anonymous = Client()
    for url in (PAGE, reverse("market_dayahead_bids"), reverse("market_dayahead_preview")):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    for url in (reverse("market_dayahead_curve"), reverse("market_dayahead_block"),
                reverse("market_dayahead_cancel", args=[1])):
        response = anonymous.post(url, curve_post(world, [("15,00", "30")]))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not DayAheadBid.objects.exists()


def test_a_trader_sees_the_state_the_gate_closure_in_berlin_time_and_both_forms(world: World) -> None:
    response = client_for(world.bea).get(PAGE + world.query())
    html = response.content.decode()
    assert response.status_code == 200
    gate = calendar.dayahead_gate_closure(world.day).astimezone(calendar.BERLIN)
    assert f'datetime="{gate.isoformat()}"' in html  # 12:00 Berlin time (+01:00 in winter, +02:00 in summer)
    facts = text_of(re.search(r'<dl class="da-facts">.*?</dl>', html, re.S).group(0))
    month = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
             "November", "Dezember"][gate.month - 1]
    assert f"Gebotsschluss {WEEKDAYS[gate.weekday()]}, {gate.day}. {month} {gate.year}, 12:00" in facts
    assert "Verfügbares Guthaben 10.000,00 EUR" in facts
    assert 'data-testid="dayahead-state">Offen für Gebote' in html
    countdown = re.search(r'data-testid="dayahead-countdown">(.*?)<', html).group(1)
    assert "Tag" in countdown or "Stunde" in countdown  # 24 to 48 hours ahead
    assert 'id="curve-form"' in html and 'id="block-form"' in html
    assert 'ws-connect="/ws/private/"' in html
    assert "vendor/plotly.min.js" in html and "js/dayahead_bids.js" in html
    assert 'id="dayahead-i18n"' in html


def test_the_default_day_is_the_next_auction(world: World) -> None:
    html = client_for(world.bea).get(PAGE).content.decode()
    now = timezone.now()
    tomorrow = berlin_today() + timedelta(days=1)
    expected = tomorrow if now < calendar.dayahead_gate_closure(tomorrow) else tomorrow + timedelta(days=1)
    assert f'data-delivery-date="{expected.isoformat()}"' in html
    assert f'<option value="{expected.isoformat()}" selected>' in html


def test_observers_and_people_without_an_organisation_are_refused(world: World) -> None:
    response = client_for(world.olga).get(PAGE + world.query())
    assert response.status_code == 403
    assert 'id="curve-form"' not in response.content.decode()
    nobody = UserFactory(email="nobody@example.com")
    assert client_for(nobody).get(PAGE).status_code == 403
    assert client_for(world.olga).post(reverse("market_dayahead_curve"),
                                       curve_post(world, [("15,00", "30")])).status_code == 403
    assert not DayAheadBid.objects.exists()


def test_a_viewer_reads_the_organisations_bids_but_sees_no_form_and_no_cancel(world: World) -> None:
    beas = world.bid(world.bea, side="buy", kind="curve", hour="14", steps=[["15.00", 30]])
    html = client_for(world.bodo).get(PAGE + world.query()).content.decode()
    assert 'id="curve-form"' not in html and 'id="block-form"' not in html
    assert 'data-testid="dayahead-refusal"' in html
    assert "Händler" in html or "trader" in html.lower()  # the role it needs
    row = bid_row(html, beas)
    assert "Zurückziehen" not in row and "cancel" not in row
    response = client_for(world.bodo).post(reverse("market_dayahead_curve"), curve_post(world, [("15,00", "30")]),
                                           **HTMX)
    assert DayAheadBid.objects.count() == 1
    assert "alert-error" in response.content.decode()


def test_a_member_whose_kyc_is_pending_sees_why_and_no_form(world: World) -> None:
    pending = OrganisationFactory(kyc__status=KycCase.Status.SUBMITTED)
    dora = UserFactory(email="dora@example.com")
    MembershipFactory(user=dora, organisation=pending, is_trader=True)
    html = client_for(dora).get(PAGE + world.query()).content.decode()
    assert 'id="curve-form"' not in html
    assert "KYC" in html


def test_a_member_never_sees_another_members_bids(world: World) -> None:
    beas = world.bid(world.bea, side="buy", kind="curve", hour="14", steps=[["15.00", 30]])
    charlies = client_for(world.charlie)
    assert f'id="dayahead-bid-{beas.pk}"' not in charlies.get(PAGE + world.query()).content.decode()
    assert f'id="dayahead-bid-{beas.pk}"' not in charlies.get(
        reverse("market_dayahead_bids") + world.query(), **HTMX).content.decode()
    assert f'id="dayahead-bid-{beas.pk}"' in client_for(world.bea).get(
        reverse("market_dayahead_bids") + world.query(), **HTMX).content.decode()


def test_the_menu_leads_members_to_the_auction(world: World) -> None:
    html = client_for(world.bea).get(PAGE + world.query()).content.decode()
    nav = re.search(r'<nav class="main-nav".*?</nav>', html, re.S).group(0)
    assert '<a href="/trading/dayahead/" aria-current="page">Day-Ahead</a>' in nav
    assert 'href="/markets/" aria-current="page"' not in nav  # "Trading" is not the current page here
    olga_home = client_for(world.olga).get("/").content.decode()
    assert "/trading/dayahead/" not in re.search(r'<nav class="main-nav".*?</nav>', olga_home, re.S).group(0)
    assert 'href="/trading/dayahead/"' in client_for(world.bea).get(reverse("trading_home")).content.decode()


# --- the curve editor -------------------------------------------------------------------------


def test_hours_come_from_the_calendar_so_dst_days_have_23_and_25() -> None:
    autumn = [label for label, _text in CurveForm(day=date(2026, 10, 25)).fields["hour"].choices]
    spring = [label for label, _text in CurveForm(day=date(2026, 3, 29)).fields["hour"].choices]
    assert len(autumn) == 25 and autumn[2:4] == ["02A", "02B"]
    assert len(spring) == 23 and "02" not in spring
    texts = dict(CurveForm(day=date(2026, 10, 25)).fields["hour"].choices)
    assert texts["14"] == "14:00–15:00" and texts["02B"] == "02:00–03:00 (02B)"


def test_a_curve_for_the_doubled_hour_of_the_october_day(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 10, 20, 9, 0, tzinfo=UTC))
    world.day = date(2026, 10, 25)
    html = client_for(world.bea).get(PAGE + world.query()).content.decode()
    assert html.count('name="hour"') == 1
    assert '<option value="02B">02:00–03:00 (02B)</option>' in html
    response = client_for(world.bea).post(reverse("market_dayahead_curve"),
                                          curve_post(world, [("15,00", "3")], hour="02B"), **HTMX)
    assert "alert-success" in response.content.decode()
    assert DayAheadBid.objects.get().hour == "02B"


def test_a_curve_is_entered_with_htmx_and_the_list_is_told(world: World) -> None:
    response = client_for(world.bea).post(reverse("market_dayahead_curve"),
                                          curve_post(world, [("15,00", "30"), ("11,50", "20"), ("", "")]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    bid = DayAheadBid.objects.get()
    assert (bid.kind, bid.side, bid.hour, bid.reserved_amount) == ("curve", "buy", "14", Decimal("681.00"))
    assert list(DayAheadStep.objects.filter(bid=bid).values_list("price", "quantity")) == [
        (Decimal("15.00"), 30), (Decimal("11.50"), 20)]
    assert "rb:dayahead-changed" in response["HX-Trigger"]
    assert f'data-placed-bid="{bid.pk}"' in html and "681,00 EUR" in html
    # The editor shows the hour's curve as it now is, to be changed.
    assert 'value="15,00"' in html and 'value="11,50"' in html
    assert cash(world.bea_org, Account.Kind.CASH_RESERVED) == Decimal("681.00")


def test_without_javascript_a_curve_is_entered_and_the_page_says_so(world: World) -> None:
    client = client_for(world.bea)
    response = client.post(reverse("market_dayahead_curve"), curve_post(world, [("15,00", "30")]))
    assert response.status_code == 302
    assert response["Location"].startswith(PAGE) and "hour=14" in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "Kurve" in page and "450,60 EUR" in page  # 15.00 x 30 + 30 x 0.02 (0.01 fee + VAT, rounded up)


def test_a_new_curve_for_the_hour_replaces_the_old_one(world: World) -> None:
    client = client_for(world.bea)
    client.post(reverse("market_dayahead_curve"), curve_post(world, [("15,00", "30")]), **HTMX)
    client.post(reverse("market_dayahead_curve"), curve_post(world, [("14,00", "10")]), **HTMX)
    assert list(DayAheadBid.objects.order_by("pk").values_list("status", flat=True)) == [
        BidStatus.REPLACED, BidStatus.ACTIVE]
    html = client.get(PAGE + world.query()).content.decode()
    assert len(re.findall(r'<tr id="dayahead-bid-\d+"', html)) == 1  # the replaced curve lives on in its successor


@pytest.mark.parametrize(
    ("steps", "where", "text"),
    [
        ([("15,00", "30"), ("500,00", "5")], "row", "between"),  # price_out_of_bounds, the second row
        ([("15,005", "30")], "row", "0.01"),  # tick_size
        ([("15,00", "30"), ("15,00", "5")], "table", "once"),  # one price once
        ([("15,00", "abc")], "row", "gpus"),  # not a number: the form's own reading
        ([("", ""), ("", "")], "table", "1 to 64"),  # no step at all
        ([("199,00", "9000")], "table", "cash"),  # insufficient_funds names no field: the table
    ],
)
def test_curve_errors_show_at_the_row_or_table_and_nothing_is_saved(world: World, steps, where, text) -> None:  # type: ignore[no-untyped-def]
    response = client_for(world.bea, english=True).post(
        reverse("market_dayahead_curve"),
        curve_post(world, [(p.replace(",", "."), q) for p, q in steps]), **HTMX)
    html = response.content.decode()
    if where == "row":
        errors = step_row_errors(html)
    else:
        errors = re.findall(r'<p class="field-error" data-steps-error>(.*?)</p>', html, re.S)
    assert errors, html
    assert text in " ".join(errors).lower()
    assert "alert-error" not in html  # at the rows, not above the form
    assert not DayAheadBid.objects.exists()
    assert cash(world.bea_org, Account.Kind.CASH_RESERVED) == Decimal("0.00")


def test_the_row_that_is_wrong_is_the_one_marked(world: World) -> None:
    html = client_for(world.bea, english=True).post(
        reverse("market_dayahead_curve"), curve_post(world, [("15.00", "30"), ("500.00", "5"), ("9.00", "5")]),
        **HTMX).content.decode()
    rows = re.findall(r"<tr data-step( class=\"has-error\")?>", html)
    assert [bool(mark) for mark in rows] == [False, True, False]


def test_a_sell_curve_beyond_the_capacity_is_refused_at_the_steps(world: World) -> None:
    response = client_for(world.selma, english=True).post(
        reverse("market_dayahead_curve"), curve_post(world, [("10.00", "150")], side="sell"), **HTMX)
    errors = re.findall(r'<p class="field-error" data-steps-error>(.*?)</p>', response.content.decode(), re.S)
    assert errors and "capacity" in errors[0]
    assert not DayAheadBid.objects.exists()


# --- the block form ---------------------------------------------------------------------------


def test_a_block_with_a_group_is_entered(world: World) -> None:
    response = client_for(world.bea).post(reverse("market_dayahead_block"),
                                          block_post(world, min_acceptance_ratio="0,5", exclusive_group="training"),
                                          **HTMX)
    html = response.content.decode()
    bid = DayAheadBid.objects.get()
    assert (bid.kind, bid.first_hour, bid.last_hour, bid.hours, bid.price, bid.quantity) == (
        "block", "09", "11", 3, Decimal("12.00"), 5)
    assert (bid.min_acceptance_ratio, bid.exclusive_group) == (Decimal("0.5"), "training")
    assert bid.reserved_amount == Decimal("180.20")  # 12.00 x 5 x 3 + 5 x 0.04 (0.03 fee for 3 h + VAT, up)
    assert "rb:dayahead-changed" in response["HX-Trigger"]
    assert f'data-placed-bid="{bid.pk}"' in html
    row = text_of(bid_row(client_for(world.bea).get(PAGE + world.query()).content.decode(), bid))
    assert "09:00–12:00" in row and "3 h" in row
    assert "MAR 0,5" in row and "Gruppe training" in row and "180,20" in row


def test_the_block_form_explains_mar_and_exclusive_groups(world: World) -> None:
    html = client_for(world.bea).get(PAGE + world.query()).content.decode()
    form = re.search(r'<form id="block-form".*?</form>', html, re.S).group(0)
    assert 'name="min_acceptance_ratio"' in form and 'value="1"' in form  # default: all or nothing
    assert "alles oder nichts" in form
    assert "08–20" in form and "12–24" in form  # the training-job example, within one delivery day


@pytest.mark.parametrize(
    ("values", "field", "text"),
    [
        ({"min_acceptance_ratio": "0"}, "min_acceptance_ratio", "ratio"),
        ({"first_hour": "11", "last_hour": "09"}, "last_hour", "before"),
        ({"exclusive_group": "nacht schicht!"}, "exclusive_group", "letters"),
        ({"price": "12.345"}, "price", "0.01"),
        ({"price": ""}, "price", "required"),
        ({"price": "199.00", "quantity": "9000"}, "quantity", "cash"),  # insufficient_funds
    ],
)
def test_block_errors_show_at_the_field_and_nothing_is_saved(world: World, values, field, text) -> None:  # type: ignore[no-untyped-def]
    response = client_for(world.bea, english=True).post(
        reverse("market_dayahead_block"), block_post(world, **{"price": "12.00", **values}), **HTMX)
    errors = field_errors(response.content.decode(), field)
    assert errors, response.content.decode()
    assert text in " ".join(errors).lower()
    assert not DayAheadBid.objects.exists()
    assert cash(world.bea_org, Account.Kind.CASH_RESERVED) == Decimal("0.00")


def test_without_javascript_an_error_answers_the_page_with_the_error_at_the_field(world: World) -> None:
    response = client_for(world.bea, english=True).post(reverse("market_dayahead_block"),
                                                        block_post(world, price="12.00", min_acceptance_ratio="2"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "<html" in html and field_errors(html, "min_acceptance_ratio")
    assert not DayAheadBid.objects.exists()


# --- the reservation preview ------------------------------------------------------------------


def preview(user: User, data: dict[str, object]) -> str:
    return client_for(user).get(reverse("market_dayahead_preview"), data, **HTMX).content.decode()


def reserved(html: str) -> str:
    return re.search(r'data-cost="reserved">(.*?)</dd>', html).group(1)


def test_the_preview_shows_what_a_buy_curve_reserves(world: World) -> None:
    html = preview(world.bea, curve_post(world, [("15,00", "30"), ("11,50", "20"), ("", "")]))
    assert reserved(html) == "681,00 EUR"
    assert not DayAheadBid.objects.exists()  # a preview reserves nothing


def test_the_preview_of_a_block_and_of_a_sell_curve(world: World) -> None:
    assert reserved(preview(world.bea, block_post(world, first_hour="14", last_hour="14", price="13,00",
                                                  quantity="10"))) == "130,20 EUR"
    sell = preview(world.selma, curve_post(world, [("10,00", "30")], side="sell"))
    assert reserved(sell) == "0,00 EUR" and "Kapazität" in sell


def test_the_preview_warns_when_cash_is_short_and_says_what_is_wrong(world: World) -> None:
    html = preview(world.bea, curve_post(world, [("199,00", "90")]))
    assert "cost-shortfall" in html and "10.000,00" in html and "17.911,80" in html
    note = preview(world.bea, curve_post(world, [("500,00", "1")]))
    assert 'data-testid="dayahead-preview-note"' in note and "200,00" in note
    empty = preview(world.bea, curve_post(world, [("", "")]))
    assert 'data-testid="dayahead-preview-note"' in empty


# --- cancel -----------------------------------------------------------------------------------


def test_a_bid_is_withdrawn_and_its_reservation_released(world: World) -> None:
    bid = world.bid(world.bea, side="buy", kind="curve", hour="14", steps=[["15.00", 30]])
    response = client_for(world.bea).post(reverse("market_dayahead_cancel", args=[bid.pk]), world.selection(),
                                          **HTMX)
    html = response.content.decode()
    bid.refresh_from_db()
    assert bid.status == BidStatus.CANCELLED
    assert cash(world.bea_org, Account.Kind.CASH_RESERVED) == Decimal("0.00")
    assert 'id="dayahead-bids"' in html and 'hx-swap-oob="true"' in html and "450,60 EUR" in html
    assert "Zurückziehen" not in bid_row(html, bid)


def test_another_members_bid_cannot_be_withdrawn_it_does_not_exist_there(world: World) -> None:
    beas = world.bid(world.bea, side="buy", kind="curve", hour="14", steps=[["15.00", 30]])
    response = client_for(world.charlie).post(reverse("market_dayahead_cancel", args=[beas.pk]), world.selection(),
                                              **HTMX)
    assert response.status_code == 404
    beas.refresh_from_db()
    assert beas.status == BidStatus.ACTIVE


def test_a_viewer_cannot_withdraw_the_organisations_bid(world: World) -> None:
    beas = world.bid(world.bea, side="buy", kind="curve", hour="14", steps=[["15.00", 30]])
    client_for(world.bodo).post(reverse("market_dayahead_cancel", args=[beas.pk]), world.selection(), **HTMX)
    beas.refresh_from_db()
    assert beas.status == BidStatus.ACTIVE


def test_posts_need_the_csrf_token(world: World) -> None:
    beas = world.bid(world.bea, side="buy", kind="curve", hour="14", steps=[["15.00", 30]])
    client = client_for(world.bea, csrf=True)
    assert client.post(reverse("market_dayahead_cancel", args=[beas.pk]), world.selection()).status_code == 403
    assert client.post(reverse("market_dayahead_curve"), curve_post(world, [("9,00", "1")], hour="15")
                       ).status_code == 403
    beas.refresh_from_db()
    assert beas.status == BidStatus.ACTIVE and DayAheadBid.objects.count() == 1
    page = client.get(PAGE + world.query()).content.decode()
    cancel_form = re.search(rf'<form method="post" action="/trading/dayahead/bids/{beas.pk}/cancel/".*?</form>',
                            page, re.S).group(0)
    assert 'name="csrfmiddlewaretoken"' in cancel_form


# --- after clearing ---------------------------------------------------------------------------


def test_after_clearing_the_list_shows_accepted_quantities_per_bid(world: World) -> None:
    beas_curve = world.bid(world.bea, side="buy", kind="curve", hour="14", steps=[["15.00", 30], ["11.50", 20]])
    beas_block = world.bid(world.bea, side="buy", kind="block", first_hour="09", last_hour="11", price="12.00",
                           quantity=5)
    beas_idle = world.bid(world.bea, side="buy", kind="block", first_hour="20", last_hour="21", price="9.00",
                          quantity=5)
    world.bid(world.selma, side="sell", kind="curve", hour="14", steps=[["10.00", 30], ["12.00", 20]])
    for hour in ("09", "10", "11"):
        world.bid(world.selma, side="sell", kind="curve", hour=hour, steps=[["10.00", 10]])
    assert dayahead.auctions_clear_due(now=calendar.dayahead_gate_closure(world.day)) == 1
    DayAheadBid.objects.filter(pk=beas_idle.pk).update(paradoxically_rejected=True)  # as the core may report

    html = client_for(world.bea).get(PAGE + world.query()).content.decode()
    assert 'data-testid="dayahead-state">Geräumt' in html
    assert 'id="curve-form"' not in html  # nothing to enter any more
    curve = bid_row(html, beas_curve)
    # Hour 14: 30 GPUs trade (b(30) = 15 >= s(30) = 10, b(31) = 11.50 < s(31) = 12); the price is the
    # midpoint of [11.50, 12.00].
    assert 'data-accepted-quantity="14">30<' in curve and "11,75" in text_of(curve)
    block = bid_row(html, beas_block)
    assert 'data-accepted-quantity="09">5<' in block and "in jeder Stunde" in text_of(block)
    idle = bid_row(html, beas_idle)
    assert "nicht angenommen" in text_of(idle) and "data-paradoxical" in idle
    assert "Zurückziehen" not in html
    assert "0,00" in text_of(curve)  # nothing reserved any more


# --- texts ------------------------------------------------------------------------------------


def test_the_countdown_names_days_hours_and_minutes() -> None:
    with translation.override("de"):
        assert countdown_text(timedelta(days=2, minutes=1)) == "2 Tage und 1 Minute"
    with translation.override("en"):
        _countdown_in_english()


def _countdown_in_english() -> None:
    assert countdown_text(timedelta(days=1, hours=3, minutes=20, seconds=30)) == "1 day, 3 hours and 20 minutes"
    assert countdown_text(timedelta(hours=2)) == "2 hours"
    assert countdown_text(timedelta(seconds=20)) == "0 minutes"


def cleared_auction(world: World) -> None:
    world.bid(world.bea, side="buy", kind="curve", hour="14", steps=[["15.00", 30]])
    world.bid(world.selma, side="sell", kind="curve", hour="14", steps=[["10.00", 30]])
    assert dayahead.auctions_clear_due(now=calendar.dayahead_gate_closure(world.day)) == 1


def test_a_cleared_auction_links_its_public_results(world: World) -> None:
    open_page = client_for(world.bea).get(PAGE + world.query()).content.decode()
    assert "/dashboard/dayahead/" not in open_page  # nothing to see before clearing
    cleared_auction(world)
    html = client_for(world.bea).get(PAGE + world.query()).content.decode()
    assert f'href="/dashboard/dayahead/{world.day.isoformat()}/?gpu_class=H100&amp;zone=DE"' in html


def test_the_page_is_in_english_on_request(world: World) -> None:
    html = client_for(world.bea, english=True).get(PAGE + world.query()).content.decode()
    assert "<h1>Day-ahead auction</h1>" in html
    assert "Hourly curve" in html and "Block order" in html and "Minimum acceptance ratio (MAR)" in html
    assert 'data-testid="dayahead-state">Open for bids' in html
