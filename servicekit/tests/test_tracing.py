"""Tracing: nothing at all when it is off; when on, each span's parent is what caused it.

The spans are read from the SDK's in-memory exporter; the whole path through real processes
and a real broker is tests/e2e/test_tracing.py's.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from contracts.codec import envelope
from contracts.events import Envelope, IntegrationEvent, OrderConfirmedV1
from servicekit import tracing
from servicekit.api import service_app
from servicekit.messaging import Message, Poison, traced
from tests.support import ROOT

CLIENT_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_untraced_nothing_of_opentelemetry_is_even_imported() -> None:
    # A process of its own: this one imports the SDK for the tests below.
    probe = """
import sys
from servicekit import tracing
import servicekit.api, servicekit.relay, servicekit.consumer, order_service.app
assert tracing.configure("orders-api", {}) is False
assert tracing.ENABLED is False and tracing._provider is None
event = type("Event", (), {})()
tracing.stamp([event], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
assert vars(event) == {}
assert tracing.current_traceparent() == "" and tracing.cause_of(event) is None
tracing.flush()
loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
assert not loaded, loaded
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr


def test_an_empty_endpoint_is_no_endpoint() -> None:
    assert tracing.configure("orders-api", {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) is False
    assert tracing.ENABLED is False


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process traced into memory, for one test; untraced again after it."""
    exporter = InMemorySpanExporter()
    tracing.shutdown()  # whatever this process's environment asked for
    assert tracing.configure("test", {}, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()
    assert not tracing.ENABLED


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracing.flush()
    return list(exporter.get_finished_spans())


def traceparent(span: ReadableSpan) -> str:
    assert span.context is not None
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def ids(traceparent: str) -> str:
    """The trace and span ids a traceparent names, without its version and flags."""
    return traceparent[3:-3]


def parent_of(span: ReadableSpan) -> str | None:
    """The ids of a span's parent; None for a root span."""
    if span.parent is None:
        return None
    return f"{span.parent.trace_id:032x}-{span.parent.span_id:016x}"


def test_the_service_name_is_the_roles_unless_otel_service_name_says_otherwise() -> None:
    for env, expected in (({}, "orders-relay"), ({"OTEL_SERVICE_NAME": "edge"}, "edge")):
        exporter = InMemorySpanExporter()
        tracing.configure("orders-relay", env, exporter=exporter)
        try:
            with tracing.server_span("GET", "/x", "/x", None):
                pass
            (span,) = finished(exporter)
        finally:
            tracing.shutdown()
        assert span.resource.attributes["service.name"] == expected


class Noted:
    """An event, as far as `stamp` is concerned: an object with attributes."""


def test_an_event_carries_the_span_it_was_stored_in_unless_told_its_cause(
    spans: InMemorySpanExporter,
) -> None:
    first, second, already = Noted(), Noted(), Noted()
    object.__setattr__(already, "traceparent", CLIENT_TRACEPARENT)

    with tracing.server_span("POST", "/api/v1/orders", "/api/v1/orders", None) as span:
        current = tracing.current_traceparent()
        tracing.stamp([first, already])
    tracing.stamp([second], CLIENT_TRACEPARENT)

    assert current == tracing.traceparent_of(span)
    assert vars(first)["traceparent"] == current
    assert vars(already)["traceparent"] == CLIENT_TRACEPARENT  # its own cause stays
    assert vars(second)["traceparent"] == CLIENT_TRACEPARENT
    outside = Noted()
    tracing.stamp([outside])  # no span, no cause: nothing to say
    assert "traceparent" not in vars(outside)


def confirmed(position: int, traceparent: str | None) -> Envelope[IntegrationEvent]:
    data = OrderConfirmedV1(order_id=uuid.uuid4(), from_status="pending", status="confirmed")
    return envelope(
        data,
        id=uuid.uuid4(),
        position=position,
        previous_position=position - 1 or None,
        occurred_at=datetime.now(UTC),
        correlation_id="c",
        traceparent=traceparent,
    )


def test_each_published_message_is_a_producer_span_child_of_its_events_cause(
    spans: InMemorySpanExporter,
) -> None:
    traced_event, old_event = confirmed(1, CLIENT_TRACEPARENT), confirmed(2, None)

    with tracing.ProducerSpans("orders", None, [traced_event, old_event]) as producing:
        headers = [producing.traceparent(traced_event), producing.traceparent(old_event)]

    by_position = {span.attributes["ordersystem.position"]: span for span in finished(spans)}  # type: ignore[index]
    child, root = by_position[1], by_position[2]
    assert (child.name, child.kind) == ("publish orders", SpanKind.PRODUCER)
    assert parent_of(child) == ids(CLIENT_TRACEPARENT)
    assert root.parent is None  # an event stored untraced starts a trace of its own
    assert headers == [traceparent(child), traceparent(root)]
    assert child.attributes["messaging.rabbitmq.destination.routing_key"] == "order.confirmed"  # type: ignore[index]


def test_a_failed_publish_fails_every_span_of_its_batch(spans: InMemorySpanExporter) -> None:
    batch = [confirmed(1, None), confirmed(2, None)]

    with pytest.raises(ConnectionError), tracing.ProducerSpans("orders", None, batch):
        raise ConnectionError("broker gone")

    assert [s.status.status_code for s in finished(spans)] == [StatusCode.ERROR] * 2


@dataclass
class Delivered:
    """What the consumer spans read of a delivered message."""

    headers: dict[str, Any] = field(default_factory=dict)
    routing_key: str = "order.created"
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))


async def test_each_message_is_handled_in_a_consumer_span_child_of_its_header(
    spans: InMemorySpanExporter,
) -> None:
    sent, untraced, poison = (
        Delivered({"traceparent": CLIENT_TRACEPARENT}),
        Delivered(),
        Delivered({"traceparent": "garbage"}),
    )
    batch = cast(list[Message], [sent, untraced, poison])
    causes: list[str | None] = []

    async def on_batch(messages: list[Message]) -> list[Poison]:
        causes.extend(tracing.cause_of(m) for m in messages)
        return [Poison(messages[2], "ContractError: not an envelope")]

    assert await traced("q", on_batch)(batch) == [
        Poison(batch[2], "ContractError: not an envelope")
    ]

    by_id = {span.attributes["messaging.message.id"]: span for span in finished(spans)}  # type: ignore[index]
    child, root, failed = (by_id[m.message_id] for m in (sent, untraced, poison))
    assert (child.name, child.kind) == ("process q", SpanKind.CONSUMER)
    assert parent_of(child) == ids(CLIENT_TRACEPARENT)
    assert root.parent is None  # no usable header: a trace anew
    assert failed.parent is None
    assert causes == [traceparent(child), traceparent(root), traceparent(failed)]
    assert failed.status.status_code is StatusCode.ERROR
    assert child.status.status_code is StatusCode.UNSET
    assert {(s.start_time, s.end_time) for s in (child, root, failed)} == {
        (child.start_time, child.end_time)
    }  # handled together
    assert tracing.cause_of(sent) is None  # outside the batch, nothing


async def test_a_failed_batch_fails_its_spans_and_is_raised(spans: InMemorySpanExporter) -> None:
    async def on_batch(_: list[Message]) -> list[Poison]:
        raise ConnectionError("database gone")

    with pytest.raises(ConnectionError):
        await traced("q", on_batch)(cast(list[Message], [Delivered()]))

    (span,) = finished(spans)
    assert span.status.status_code is StatusCode.ERROR


@get("/api/v1/things/{thing_id:int}", sync_to_thread=False)
def thing(thing_id: FromPath[int]) -> dict[str, str]:
    return {"traceparent": tracing.current_traceparent()}


@pytest.fixture
async def client(spans: InMemorySpanExporter) -> AsyncIterator[AsyncTestClient[Litestar]]:
    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        yield

    app = service_app("things", "Things", [thing], lifespan=lifespan, rate_limit=0, readiness={})
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_a_request_is_a_server_span_named_by_its_route_that_continues_the_client(
    client: AsyncTestClient[Litestar], spans: InMemorySpanExporter
) -> None:
    answer = await client.get("/api/v1/things/7", headers={"traceparent": CLIENT_TRACEPARENT})
    await client.get("/health")  # probes are not traced

    (span,) = finished(spans)
    assert (span.name, span.kind) == ("GET /api/v1/things/{thing_id}", SpanKind.SERVER)
    assert parent_of(span) == ids(CLIENT_TRACEPARENT)
    assert answer.json() == {"traceparent": traceparent(span)}  # current while handled
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    assert span.resource.attributes["service.name"] == "test"  # configured before the app
