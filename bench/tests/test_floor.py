"""The floor scenario of `make bench` measures what it says and leaves nothing behind."""

from __future__ import annotations

import pytest

from bench.floor import DELIVERIES, PUBLISHES, REQUESTS, floor
from tests.broker import queue_exists
from tests.support import RUN_ID

pytestmark = pytest.mark.e2e


async def test_the_floor_adds_an_orders_messages_and_request_and_removes_its_queue(
    rabbitmq_up: None,
) -> None:
    prefix = f"t{RUN_ID}.floor"
    figures = await floor(prefix, messages=600, seconds=1)

    parts = ("publish_ours", "publish_broker", "deliver_ours", "request_server", "request_client")
    for part in parts:
        assert 0 < figures[part] < 0.05, part  # CPU seconds per message or request
    assert figures["requests_per_s"] > 0
    expected = (
        PUBLISHES * (figures["publish_ours"] + figures["publish_broker"])
        + DELIVERIES * (figures["deliver_ours"] + figures["deliver_broker"])
        + REQUESTS * (figures["request_server"] + figures["request_client"])
    )
    assert figures["per_order"] == pytest.approx(expected)
    assert figures["most_per_s"] < figures["most_per_s_without_client"]
    assert not await queue_exists(f"{prefix}.floor")
