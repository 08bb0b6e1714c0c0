"""Members hear their auction results on /ws/private/ (issue 9, item 5),
each only its own, through the whole ASGI application and the Redis layer."""

from datetime import date

import pytest
from asgiref.sync import sync_to_async

from market.services import dayahead
from tests.market.test_consumers import nothing_more, run, session_cookie, socket
from tests.market.test_dayahead_service import GATE, hand_computed_book
from tests.market.test_dayahead_service import market as market  # noqa: PLC0414 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_member_hears_its_own_accepted_quantities(market):
    bids = hand_computed_book(market)
    b1_cookie = session_cookie(market["b1"][1])
    s2_cookie = session_cookie(market["s2"][1])

    async def scenario() -> None:
        b1 = socket("/ws/private/", headers=b1_cookie)
        s2 = socket("/ws/private/", headers=s2_cookie)
        for ws in (b1, s2):
            connected, _ = await ws.connect()
            assert connected
        await sync_to_async(dayahead.auctions_clear_due)(now=GATE)
        event = await b1.receive_json_from(timeout=5)
        assert event["type"] == "dayahead_result"
        assert (event["delivery_date"], event["gpu_class"], event["zone"]) == (date(2026, 12, 10).isoformat(),
                                                                               "H100", "DE")
        assert event["bids"] == [{"id": bids["b1"].pk, "kind": "curve", "side": "buy",
                                  "accepted_quantity": {"14": 50}, "paradoxically_rejected": False}]
        other = await s2.receive_json_from(timeout=5)
        assert [b["id"] for b in other["bids"]] == [bids["s2"].pk]
        for ws in (b1, s2):
            assert await nothing_more(ws)

    run(scenario)


def test_a_publish_from_a_thread_that_runs_an_event_loop_goes_through_the_publisher():
    """A stale thread-local from an earlier sync_to_async call, and an event loop
    running in this very thread (as a browser-driving test has): async_to_sync
    would refuse, so the publisher thread takes the messages."""
    import asyncio

    from asgiref.sync import SyncToAsync

    from market import broadcast

    stopped = asyncio.new_event_loop()
    SyncToAsync.threadlocal.main_event_loop = stopped
    SyncToAsync.threadlocal.main_event_loop_pid = __import__("os").getpid()
    try:
        assert broadcast._in_asgi_thread() is False  # the loop it names is not running

        async def inside() -> bool:
            return broadcast._in_asgi_thread()

        assert asyncio.run(inside()) is False
    finally:
        del SyncToAsync.threadlocal.main_event_loop
        del SyncToAsync.threadlocal.main_event_loop_pid
        stopped.close()
