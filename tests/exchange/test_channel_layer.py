"""The channel layer keeps a quiet WebSocket open (issue 8 item 1).

redis-py 8 reads with a 5 s socket timeout by default; channels-redis waits
5 s for a message per round. With both at 5 s a consumer that heard nothing
for 5 s died with a TimeoutError and its WebSocket closed with 1011, so an
open screen missed the events of the next Celery job (exchange/settings.py)."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def test_a_channel_quiet_for_longer_than_the_redis_read_timeout_still_receives():
    layer = get_channel_layer()
    assert layer is not None

    async def scenario() -> None:
        channel = await layer.new_channel("quiet.")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), timeout=8)  # nothing came: no error either
        await layer.send(channel, {"type": "after.silence"})
        assert (await asyncio.wait_for(layer.receive(channel), timeout=5))["type"] == "after.silence"

    async_to_sync(scenario)()
