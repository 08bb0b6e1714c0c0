"""The WebSocket streams (API contract, "Market data"), through the whole
ASGI application (origin check, session and token auth, routing) and the
Redis channel layer the suite runs on.

The scenarios are coroutines run with ``async_to_sync``; the consumers read
the database in a worker thread, so the tests are transactional."""

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.authentication import hash_token
from accounts.models import ApiToken, KycCase, User
from exchange.asgi import application
from market import broadcast, consumers
from market.models import Instrument, Order, Side
from market.services.orders import order_submit
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory
from tests.market.trading_setup import TradingWorld, open_instrument, trading_world

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


_sockets: list[WebsocketCommunicator] = []


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the scenario in an event loop of its own, and end every consumer
    it started: a consumer left waiting on the channel layer in a finished
    loop makes the (shared) Redis layer refuse the next test's loop."""

    async def main() -> None:
        try:
            await scenario()
        finally:
            while _sockets:
                with contextlib.suppress(Exception):  # it may have ended already, or failed
                    await _sockets.pop().disconnect()

    async_to_sync(main)()


def socket(path: str, *, headers: list[tuple[bytes, bytes]] | None = None,
           subprotocols: list[str] | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [], subprotocols=subprotocols)
    _sockets.append(communicator)
    return communicator


async def refused_with(communicator: WebsocketCommunicator) -> int | None:
    """The close code of a socket the server accepted and then closed at once."""
    connected, _subprotocol = await communicator.connect()
    assert connected
    message = await communicator.receive_output(timeout=2)
    assert message["type"] == "websocket.close"
    return message.get("code")


async def nothing_more(communicator: WebsocketCommunicator) -> bool:
    return await communicator.receive_nothing(timeout=0.3)


def resting(instrument: Instrument, user: User, side: str, price: str, quantity: int, priority: int) -> Order:
    """A resting order written straight into the book (the streams only read it)."""
    return Order.objects.create(
        instrument=instrument, organisation=user.membership.organisation, placed_by=user, side=side,
        price=D(price), quantity=quantity, priority=priority,
    )


def session_cookie(user: User) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())]


def api_token(user: User) -> str:
    key = "rb_" + secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, key_hash=hash_token(key), prefix=key[:10])
    return key


@pytest.fixture
def world() -> TradingWorld:
    return trading_world()


@pytest.fixture
def book(world: TradingWorld) -> Instrument:
    """Two asks and a bid of Alice's and Charlie's at book sequence 5."""
    instrument = world.instrument
    resting(instrument, world.alice, Side.SELL, "2.60", 10, 1)
    resting(instrument, world.alice, Side.SELL, "2.50", 4, 2)
    resting(instrument, world.charlie, Side.BUY, "2.40", 7, 3)
    Instrument.objects.filter(pk=instrument.pk).update(book_sequence=5)
    return instrument


# --- /ws/book/ ------------------------------------------------------------------------------


def test_book_sends_the_snapshot_first_then_the_updates_in_sequence(book: Instrument) -> None:
    symbol = book.symbol

    async def scenario() -> None:
        ws = socket(f"/ws/book/{symbol}/")
        connected, _ = await ws.connect()
        assert connected
        assert await ws.receive_json_from() == {
            "type": "snapshot", "sequence": 5, "bids": [["2.40", 7]], "asks": [["2.50", 4], ["2.60", 10]],
            "depth": consumers.SNAPSHOT_DEPTH,
        }
        await sync_to_async(broadcast.publish_book)(symbol, 6, [], [(D("2.50"), 0)])
        await sync_to_async(broadcast.publish_book)(symbol, 7, [(D("2.45"), 3)], [])
        assert await ws.receive_json_from() == {"type": "update", "sequence": 6, "bids": [], "asks": [["2.50", 0]]}
        assert await ws.receive_json_from() == {"type": "update", "sequence": 7, "bids": [["2.45", 3]], "asks": []}
        # A late duplicate is already in what the client has.
        await sync_to_async(broadcast.publish_book)(symbol, 7, [(D("2.45"), 3)], [])
        assert await nothing_more(ws)
        await ws.disconnect()

    run(scenario)


def test_updates_the_snapshot_already_holds_are_dropped(book: Instrument, monkeypatch: pytest.MonkeyPatch) -> None:
    """The group is joined before the snapshot is read: an update published in
    between reaches the consumer, which drops it when the snapshot has it."""
    symbol = book.symbol
    read_snapshot = consumers._snapshot

    async def snapshot_while_trading(instrument_id: int) -> dict[str, Any]:
        # Sequence 5 is in the snapshot; 6 is committed just after the read.
        await sync_to_async(broadcast.publish_book)(symbol, 5, [], [(D("2.50"), 4)])
        snapshot = await read_snapshot(instrument_id)
        await sync_to_async(broadcast.publish_book)(symbol, 6, [], [(D("2.60"), 8)])
        return snapshot

    monkeypatch.setattr(consumers, "_snapshot", snapshot_while_trading)

    async def scenario() -> None:
        ws = socket(f"/ws/book/{symbol}/")
        await ws.connect()
        first = await ws.receive_json_from()
        assert (first["type"], first["sequence"]) == ("snapshot", 5)
        assert await ws.receive_json_from() == {"type": "update", "sequence": 6, "bids": [], "asks": [["2.60", 8]]}
        assert await nothing_more(ws)
        await ws.disconnect()

    run(scenario)


def test_a_client_that_saw_a_gap_asks_for_a_new_snapshot(book: Instrument, world: TradingWorld) -> None:
    symbol = book.symbol

    async def scenario() -> None:
        ws = socket(f"/ws/book/{symbol}/")
        await ws.connect()
        assert (await ws.receive_json_from())["sequence"] == 5
        # Meanwhile the book moved on to sequence 9 (say the client lost 6-9).
        await sync_to_async(lambda: (
            resting(book, world.charlie, Side.BUY, "2.45", 2, 4),
            Instrument.objects.filter(pk=book.pk).update(book_sequence=9),
        ))()
        await ws.send_json_to({"type": "snapshot"})
        assert await ws.receive_json_from() == {
            "type": "snapshot", "sequence": 9, "bids": [["2.45", 2], ["2.40", 7]],
            "asks": [["2.50", 4], ["2.60", 10]], "depth": consumers.SNAPSHOT_DEPTH,
        }
        # Updates up to the new snapshot's sequence are not sent again.
        await sync_to_async(broadcast.publish_book)(symbol, 9, [(D("2.45"), 2)], [])
        await sync_to_async(broadcast.publish_book)(symbol, 10, [(D("2.45"), 0)], [])
        assert (await ws.receive_json_from())["sequence"] == 10
        await ws.disconnect()

    run(scenario)


def test_the_stream_repairs_a_gap_itself_with_a_snapshot(book: Instrument) -> None:
    """Updates from two web processes can overtake each other: the client
    gets a snapshot instead of a sequence that does not follow its last."""
    symbol = book.symbol

    async def scenario() -> None:
        ws = socket(f"/ws/book/{symbol}/")
        await ws.connect()
        assert (await ws.receive_json_from())["sequence"] == 5
        await sync_to_async(lambda: Instrument.objects.filter(pk=book.pk).update(book_sequence=7))()
        await sync_to_async(broadcast.publish_book)(symbol, 7, [], [(D("2.60"), 10)])  # 6 not here yet
        repaired = await ws.receive_json_from()
        assert (repaired["type"], repaired["sequence"]) == ("snapshot", 7)
        await sync_to_async(broadcast.publish_book)(symbol, 6, [], [(D("2.50"), 4)])  # the late one
        assert await nothing_more(ws)
        await sync_to_async(broadcast.publish_book)(symbol, 8, [], [(D("2.50"), 1)])
        assert (await ws.receive_json_from())["sequence"] == 8
        await ws.disconnect()

    run(scenario)


def test_book_stream_refuses_other_messages_and_too_many_snapshots(book: Instrument) -> None:
    async def scenario() -> None:
        ws = socket(f"/ws/book/{book.symbol}/")
        await ws.connect()
        await ws.receive_json_from()
        await ws.send_json_to({"type": "subscribe"})
        assert (await ws.receive_json_from())["type"] == "error"
        await ws.send_to(text_data="snapshot, please")
        assert (await ws.receive_json_from())["type"] == "error"
        for _ in range(consumers.SNAPSHOT_REQUESTS_PER_WINDOW):
            await ws.send_json_to({"type": "snapshot"})
            assert (await ws.receive_json_from())["type"] == "snapshot"
        await ws.send_json_to({"type": "snapshot"})
        assert await ws.receive_output() == {"type": "websocket.close", "code": consumers.CLOSE_THROTTLED}

    run(scenario)


def test_unknown_symbol_closes_with_4404(db: None) -> None:
    async def scenario() -> None:
        assert await refused_with(socket("/ws/book/H100.DE.1999-01-01T00/")) == 4404
        assert await refused_with(socket("/ws/trades/NOPE/")) == 4404

    run(scenario)


def test_book_from_real_orders_and_its_updates(world: TradingWorld) -> None:
    """End to end with the order service: its broadcast after commit is the
    next sequence of the snapshot the stream sent."""
    instrument = world.instrument
    order_submit(user=world.alice, instrument=instrument, side=Side.SELL, quantity=10, price=D("2.50"))

    async def scenario() -> None:
        ws = socket(f"/ws/book/{instrument.symbol}/")
        await ws.connect()
        snapshot = await ws.receive_json_from()
        assert snapshot["asks"] == [["2.50", 10]] and snapshot["bids"] == []
        await sync_to_async(order_submit)(user=world.charlie, instrument=instrument, side=Side.BUY, quantity=4,
                                          price=D("2.50"))
        assert await ws.receive_json_from() == {
            "type": "update", "sequence": snapshot["sequence"] + 1, "bids": [], "asks": [["2.50", 6]],
        }
        await ws.disconnect()

    run(scenario)


# --- /ws/trades/ ----------------------------------------------------------------------------


def test_trades_stream_forwards_each_trade(world: TradingWorld) -> None:
    instrument = world.instrument
    order_submit(user=world.alice, instrument=instrument, side=Side.SELL, quantity=10, price=D("2.50"))

    async def scenario() -> None:
        ws = socket(f"/ws/trades/{instrument.symbol}/")
        connected, _ = await ws.connect()
        assert connected
        await sync_to_async(order_submit)(user=world.charlie, instrument=instrument, side=Side.BUY, quantity=4,
                                          price=D("2.60"))
        trade = await ws.receive_json_from()
        assert trade["type"] == "trade"
        assert (trade["price"], trade["quantity"], trade["aggressor"]) == ("2.50", 4, "buy")
        assert set(trade) == {"type", "id", "price", "quantity", "executed_at", "aggressor"}  # no member identity
        await ws.disconnect()

    run(scenario)


def test_trades_of_another_instrument_do_not_arrive(world: TradingWorld) -> None:
    other = open_instrument(label="15")

    async def scenario() -> None:
        ws = socket(f"/ws/trades/{other.symbol}/")
        await ws.connect()
        await sync_to_async(broadcast.publish_trade)(world.instrument.symbol, {"id": 1, "price": "2.50"})
        assert await nothing_more(ws)
        await ws.disconnect()

    run(scenario)


# --- /ws/private/ ---------------------------------------------------------------------------


def test_private_stream_needs_a_login(db: None) -> None:
    async def scenario() -> None:
        assert await refused_with(socket("/ws/private/")) == 4401
        assert await refused_with(socket("/ws/private/?token=rb_not-a-token")) == 4401
        assert await refused_with(socket("/ws/private/", headers=[(b"authorization", b"Token rb_wrong")])) == 4401

    run(scenario)


def test_private_stream_needs_an_organisation(db: None) -> None:
    loner = UserFactory(email="loner@example.com")
    cookie = session_cookie(loner)

    async def scenario() -> None:
        assert await refused_with(socket("/ws/private/", headers=cookie)) == 4403

    run(scenario)


def test_private_events_reach_the_organisation_and_never_charlie(world: TradingWorld) -> None:
    """Alice by session cookie, Bob (Alice's colleague) and Charlie by API token."""
    alice_cookie = session_cookie(world.alice)
    bob_key, charlie_key = api_token(world.bob), api_token(world.charlie)

    async def scenario() -> None:
        alice = socket("/ws/private/", headers=alice_cookie)
        bob = socket("/ws/private/", headers=[(b"authorization", f"Token {bob_key}".encode())])
        charlie = socket(f"/ws/private/?token={charlie_key}")
        for ws in (alice, bob, charlie):
            connected, _ = await ws.connect()
            assert connected

        await sync_to_async(order_submit)(user=world.alice, instrument=world.instrument, side=Side.SELL,
                                          quantity=5, price=D("2.50"))
        for ws in (alice, bob):
            event = await ws.receive_json_from()
            assert event["type"] == "order"
            assert (event["order"]["side"], event["order"]["quantity"], event["order"]["status"]) == ("sell", 5, "open")
        assert await nothing_more(charlie)

        # Charlie buys from Alice: each side hears of its own order and fill only.
        await sync_to_async(order_submit)(user=world.charlie, instrument=world.instrument, side=Side.BUY,
                                          quantity=2, price=D("2.50"))
        alice_events = [await alice.receive_json_from(), await alice.receive_json_from()]
        charlie_events = [await charlie.receive_json_from(), await charlie.receive_json_from()]
        alice_fill = next(e["fill"] for e in alice_events if e["type"] == "fill")
        charlie_fill = next(e["fill"] for e in charlie_events if e["type"] == "fill")
        assert (alice_fill["side"], alice_fill["liquidity"]) == ("sell", "maker")
        assert (charlie_fill["side"], charlie_fill["liquidity"]) == ("buy", "taker")
        alice_orders = {e["order"]["id"] for e in alice_events if e["type"] == "order"}
        charlie_orders = {e["order"]["id"] for e in charlie_events if e["type"] == "order"}
        assert alice_orders.isdisjoint(charlie_orders)
        assert alice_fill["order_id"] in alice_orders and charlie_fill["order_id"] in charlie_orders
        for ws in (alice, charlie):
            assert await nothing_more(ws)
        for ws in (alice, bob, charlie):
            await ws.disconnect()

    run(scenario)


def test_fill_notifications_of_every_instrument_reach_one_private_socket(world: TradingWorld) -> None:
    """The screens' fill notifications (static/js/notify.js) listen on one
    /ws/private/ socket per page: a fill of the organisation's orders in any
    instrument arrives there, with what the notification shows; the other
    party gets its own, and a third organisation nothing."""
    other_hour = open_instrument(label="16")
    bystander = UserFactory(email="dora@example.com")
    MembershipFactory(user=bystander, organisation=OrganisationFactory(kyc__status=KycCase.Status.APPROVED),
                      is_trader=True)
    charlie_cookie, bystander_cookie = session_cookie(world.charlie), session_cookie(bystander)

    async def fills(ws: WebsocketCommunicator) -> list[dict[str, Any]]:
        found = []
        while not await ws.receive_nothing(timeout=0.5):
            event = await ws.receive_json_from()
            if event["type"] == "fill":
                found.append(event["fill"])
        return found

    async def scenario() -> None:
        charlie = socket("/ws/private/", headers=charlie_cookie)
        others = socket("/ws/private/", headers=bystander_cookie)
        for ws in (charlie, others):
            connected, _ = await ws.connect()
            assert connected
        for instrument, price in ((world.instrument, "2.40"), (other_hour, "2.30")):
            await sync_to_async(order_submit)(user=world.charlie, instrument=instrument, side=Side.BUY,
                                              quantity=3, price=D(price))
        assert await fills(charlie) == []  # resting bids: order events only
        # Alice sells into both bids, one instrument after the other.
        for instrument, price in ((world.instrument, "2.40"), (other_hour, "2.30")):
            await sync_to_async(order_submit)(user=world.alice, instrument=instrument, side=Side.SELL,
                                              quantity=2, price=D(price))
        received = await fills(charlie)
        assert [(f["instrument"], f["side"], f["quantity"], f["price"], f["liquidity"]) for f in received] == [
            (world.instrument.symbol, "buy", 2, "2.40", "maker"), (other_hour.symbol, "buy", 2, "2.30", "maker")]
        assert all(f["trade_id"] and f["executed_at"] for f in received)
        assert await fills(others) == []

    run(scenario)


def test_token_in_the_subprotocol_for_browsers(world: TradingWorld) -> None:
    key = api_token(world.charlie)

    async def scenario() -> None:
        ws = socket("/ws/private/", subprotocols=["token", key])
        connected, subprotocol = await ws.connect()
        assert connected
        assert subprotocol == "token"  # the key itself is never echoed
        await sync_to_async(broadcast.publish_private)(world.org_c.pk, {"type": "order", "order": {"id": 1}})
        assert await ws.receive_json_from() == {"type": "order", "order": {"id": 1}}
        await ws.disconnect()

    run(scenario)


def test_a_revoked_token_does_not_fall_back_to_the_session(world: TradingWorld) -> None:
    cookie = session_cookie(world.alice)

    async def scenario() -> None:
        headers = [*cookie, (b"authorization", b"Token rb_revoked")]
        assert await refused_with(socket("/ws/private/", headers=headers)) == 4401

    run(scenario)


def test_browsers_from_other_sites_are_refused(world: TradingWorld) -> None:
    """Cross-site WebSocket hijacking: a foreign page must not ride on the
    member's cookie. Programs (no Origin) and our own pages get through."""
    cookie = session_cookie(world.alice)

    async def scenario() -> None:
        foreign = socket("/ws/private/", headers=[*cookie, (b"origin", b"https://evil.example")])
        connected, _ = await foreign.connect()
        assert not connected
        own = socket("/ws/private/", headers=[*cookie, (b"origin", b"http://testserver")])
        connected, _ = await own.connect()
        assert connected
        await own.disconnect()
        program = socket(f"/ws/book/{world.instrument.symbol}/")
        connected, _ = await program.connect()
        assert connected
        await program.disconnect()

    run(scenario)


def test_book_updates_format_levels_with_the_serializer_field_of_the_rest_book(monkeypatch):
    # The wire: prices with two places, quantities as integers, zero removes a level.
    _group, update = broadcast.book_message("H100.DE.X", 8, [(Decimal("2.5"), 3)], [(Decimal("2.60"), 0)])
    assert update == {"type": "update", "sequence": 8, "bids": [["2.50", 3]], "asks": [["2.60", 0]]}

    # Written once: the update is what market.serializers.BookLevelsField makes.
    from market.serializers import BookLevelsField

    monkeypatch.setattr(BookLevelsField, "to_representation", lambda self, value: [["shape", len(value)]])
    _group, update = broadcast.book_message("H100.DE.X", 9, [(Decimal("2.50"), 3)], [])
    assert (update["bids"], update["asks"]) == ([["shape", 1]], [["shape", 0]])
