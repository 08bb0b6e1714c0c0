"""Hardening (issue 7, item 10): a WebSocket message nested too deeply is
answered like any other message the stream does not take, and the stream
goes on; it does not kill the consumer."""

import contextlib

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from exchange.asgi import application
from tests.factories import OpenInstrumentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_deeply_nested_message_on_the_book_stream_is_an_error_message_not_a_crash():
    instrument = OpenInstrumentFactory()

    async def scenario() -> None:
        ws = WebsocketCommunicator(application, f"/ws/book/{instrument.symbol}/")
        try:
            connected, _subprotocol = await ws.connect()
            assert connected
            assert (await ws.receive_json_from())["type"] == "snapshot"
            await ws.send_to(text_data="[" * 100_000)
            answer = await ws.receive_json_from(timeout=2)
            assert (answer["type"], answer["code"]) == ("error", "invalid")
            await ws.send_json_to({"type": "snapshot"})  # still alive
            assert (await ws.receive_json_from(timeout=2))["type"] == "snapshot"
        finally:
            with contextlib.suppress(Exception):
                await ws.disconnect()

    async_to_sync(scenario)()
