"""Preflight names the server that does not answer and how to start it."""

from __future__ import annotations

from ordersystem.preflight import START_POSTGRES, START_RABBITMQ, preflight, report
from tests.support import free_port


def test_a_server_that_does_not_answer_is_named_with_how_to_start_it() -> None:
    closed = free_port()
    env = {"POSTGRES_PORT": str(closed), "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{closed}/"}

    findings = preflight(env)
    text = report(findings)

    assert [(f.server, f.ok) for f in findings] == [("PostgreSQL", False), ("RabbitMQ", False)]
    assert f"MISSING PostgreSQL: 127.0.0.1:{closed}" in text
    assert START_POSTGRES in text
    assert START_RABBITMQ in text
    assert "guest:guest" not in text  # credentials never printed
