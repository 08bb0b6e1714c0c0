"""The trader controls on the screens and in admin: mass cancel on the
trading screen and the open-orders page, the owners' kill switch, the order
events page and its CSV, the operators' kill switch and read-only events.
Actors as in orders_world (Alice owns, Bob trades, Vera views; Charlie is
another organisation)."""

import csv
import io

import pytest
from django.test import Client

from accounts.models import User
from market.models import KillSwitch, Order, OrderEvent
from market.services.orders import order_submit
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory
from tests.market.orders_world import D, World, books_balance, make_world

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world() -> World:
    return make_world()


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rest(world: World, user: User, side: str = "sell", price: str = "13.00") -> Order:
    return order_submit(user=user, instrument=world.instrument, side=side, price=D(price), quantity=5).order


def test_the_trading_screen_cancels_all_of_the_organisations_orders_in_its_instrument(world):
    orders = [rest(world, world.alice), rest(world, world.bob, price="14.00")]
    charlies = rest(world, world.charlie, side="buy", price="11.00")
    client = login(world.bob)
    page = client.get(f"/markets/{world.instrument.symbol}/").content.decode()
    assert 'data-testid="cancel-all-instrument"' in page

    answer = client.post(f"/markets/{world.instrument.symbol}/cancel-all/", **HTMX)

    assert answer.status_code == 200
    assert "rb:orders-changed" in answer["HX-Trigger"]
    assert "2 Orders sind gelöscht." in answer.content.decode()
    assert {Order.objects.get(pk=o.pk).status for o in orders} == {"cancelled"}
    assert Order.objects.get(pk=charlies.pk).status == "open"
    books_balance()


def test_the_open_orders_page_cancels_everything_with_and_without_htmx(world):
    rest(world, world.alice)
    client = login(world.alice)
    assert 'data-testid="cancel-all"' in client.get("/markets/orders/").content.decode()

    plain = client.post("/markets/orders/cancel-all/")
    assert (plain.status_code, plain["Location"]) == (302, "/markets/orders/")
    assert not Order.objects.filter(status="open").exists()
    again = client.post("/markets/orders/cancel-all/", **HTMX)
    assert "Es lag keine Order im Buch" in again.content.decode()


def test_a_viewer_sees_no_cancel_all_and_cannot_post_it(world):
    rest(world, world.alice)
    client = login(world.vera)

    assert 'data-testid="cancel-all"' not in client.get("/markets/orders/").content.decode()
    client.post("/markets/orders/cancel-all/")
    assert Order.objects.get().status == "open"


def test_owners_engage_and_lift_the_kill_switch_on_the_open_orders_page(world):
    rest(world, world.bob)
    owner, trader = login(world.alice), login(world.bob)
    assert 'data-testid="kill-switch-engage"' in owner.get("/markets/orders/").content.decode()
    assert 'data-testid="kill-switch"' not in trader.get("/markets/orders/").content.decode()

    assert trader.post("/markets/kill-switch/", {"action": "engage"}).status_code == 302
    assert not KillSwitch.objects.exists()
    answer = owner.post("/markets/kill-switch/", {"action": "engage", "reason": "Test"}, **HTMX)
    assert answer["HX-Redirect"] == "/markets/orders/"
    assert KillSwitch.objects.get().reason == "Test"
    assert not Order.objects.filter(status="open").exists()
    # Everyone in the organisation sees it; the order form says why it takes nothing.
    assert "Not-Aus" in trader.get("/markets/orders/").content.decode()
    assert "Not-Aus" in trader.get(f"/markets/{world.instrument.symbol}/").content.decode()

    owner.post("/markets/kill-switch/", {"action": "lift"})
    assert KillSwitch.objects.get().lifted_by == world.alice


def test_the_order_events_page_and_csv_show_the_organisations_own_events_only(world):
    alices = rest(world, world.alice)
    rest(world, world.charlie, side="buy", price="13.00")  # Alice's order fills
    client = login(world.bob)

    page = client.get("/markets/events/").content.decode()
    assert page.count("data-event-kind=") == 2
    assert "die Börse" in page and "alice@orders.test" in page
    assert "charlie@orders.test" not in page

    response = client.get("/markets/events/", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(int(r["order"]), r["kind"], r["status"]) for r in rows] == [
        (alices.pk, "filled", "filled"), (alices.pk, "submitted", "open")]
    assert rows[0]["fill_price"] == "13.00" and rows[0]["actor"] == ""
    assert rows[1]["at"].endswith(("+01:00", "+02:00"))

    assert login(world.charlie).get("/markets/events/", {"order": alices.pk}).content.decode().count(
        "data-event-kind=") == 0


def test_observers_have_no_order_events_page(world):
    ministry = OrganisationFactory(kind="observer", legal_name="Ministerium")
    observer = UserFactory(email="obs@example.com")
    MembershipFactory(user=observer, organisation=ministry, is_viewer=True, is_trader=False)

    assert login(observer).get("/markets/events/").status_code == 403


def test_operators_engage_and_lift_a_kill_switch_in_admin_and_read_events(world, admin_client):
    rest(world, world.alice)

    added = admin_client.post("/admin/market/killswitch/add/", {"organisation": world.org_a.pk,
                                                                 "reason": "Marktaufsicht"})
    assert added.status_code == 302, added.content.decode()[:2000]
    switch = KillSwitch.objects.get()
    assert (switch.organisation, switch.reason, switch.lifted_at) == (world.org_a, "Marktaufsicht", None)
    assert not Order.objects.filter(status="open").exists()

    admin_client.post("/admin/market/killswitch/", {"action": "lift", "_selected_action": [switch.pk]})
    switch.refresh_from_db()
    assert switch.lifted_at is not None

    assert admin_client.get("/admin/market/orderevent/").status_code == 200
    event = OrderEvent.objects.first()
    assert event is not None
    assert admin_client.get(f"/admin/market/orderevent/{event.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/market/orderevent/{event.pk}/delete/").status_code == 403
