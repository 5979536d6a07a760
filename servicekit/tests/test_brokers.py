"""Several RabbitMQ addresses: the first node that answers is taken, each attempt starting
one further along, and a list with none answering names every node it tried."""

from __future__ import annotations

import pytest

from servicekit import brokers
from tests.broker import AMQP_URL
from tests.support import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq_up")]


def dead_node() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # nothing listens there


async def test_a_node_that_does_not_answer_is_passed_over() -> None:
    listed = f"{dead_node()},{AMQP_URL}"

    for _ in range(2):  # whichever it starts from, it ends on the one that answers
        connection = await brokers.connect(listed, timeout=2)
        assert not connection.is_closed
        await connection.close()


async def test_no_node_answering_is_an_error_naming_each_node_without_credentials() -> None:
    first, second = dead_node(), dead_node()

    with pytest.raises(ConnectionError) as refused:
        await brokers.connect(f"{first}, {second}", timeout=2)

    message = str(refused.value)
    assert brokers.where(first) in message
    assert brokers.where(second) in message
    assert "guest:guest" not in message


def test_the_setting_lists_nodes_and_must_name_one() -> None:
    assert brokers.nodes("amqp://a/, amqp://b/ ,") == ["amqp://a/", "amqp://b/"]
    with pytest.raises(ValueError, match="names no node"):
        brokers.nodes(" , ")


async def test_every_connection_agrees_a_short_heartbeat_unless_its_url_names_one() -> None:
    """A cut-off host's connections are closed by the node within two heartbeats, its
    queues handed to another consumer: the heartbeat the node agreed to is what counts."""
    agreed = []
    for url in (AMQP_URL, f"{AMQP_URL}?heartbeat=30"):
        connection = await brokers.connect(url, timeout=2)
        agreed.append(connection.transport.connection.connection_tune.heartbeat)  # type: ignore[union-attr]
        await connection.close()

    assert agreed == [brokers.HEARTBEAT, 30]
