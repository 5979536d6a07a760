"""One order's trace, as a collector receives it from every process of a system of its own.

The processes export over OTLP/HTTP to a receiver of the test's own (tests/otlp.py). The
order is over the payment limit, so its payment fails and cancels it: its trace goes from
the order API through the relay to the projector and the payment service, and back through
the payment relay and the payment-results consumer to the order relay and the projector.
Every span must be in the client's trace, and each one's parent the span that caused it.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.conftest import System, running_system
from tests.otlp import Receiver, Span, otlp_receiver
from tests.support import Databases, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("rabbitmq_up")]

# Twice 600.00: over the limit of 1000, so the payment fails and the order is cancelled.
OVER_THE_LIMIT = {"customer_id": 2, "product_name": "Lamp", "quantity": 2, "price": "600.00"}
EXPECTED_SPANS = 9  # each asserted below


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as receiving:
        yield receiving


@pytest.fixture(scope="module")
async def system(databases: Databases, receiver: Receiver) -> AsyncIterator[System]:
    async with running_system(databases, env=receiver.env()) as running:
        yield running


def one(spans: list[Span], service: str, kind: str, routing_key: str | None = None) -> Span:
    """The one span of `service` of this kind (and for this routing key, if given)."""
    found = [
        span
        for span in spans
        if span.service == service
        and span.kind == kind
        and routing_key in (None, span.attributes.get("messaging.rabbitmq.destination.routing_key"))
    ]
    assert len(found) == 1, f"{service} {kind} {routing_key}: {found}"
    return found[0]


async def test_one_orders_spans_form_one_trace_each_the_child_of_its_cause(
    system: System, receiver: Receiver
) -> None:
    # The client starts the trace: its traceparent names a span of its own.
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
        placed = await client.post(
            "/api/v1/orders",
            json=OVER_THE_LIMIT,
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
        )
    assert placed.status_code == 201, placed.text

    # Every process exports within a tenth of a second; the last hop comes after five.
    await eventually(
        lambda: len(receiver.spans(trace_id)) >= EXPECTED_SPANS,
        within=30,
        what=f"{EXPECTED_SPANS} spans of the order's trace",
    )
    spans = receiver.spans(trace_id)

    # The request, continuing the client's trace.
    api = one(spans, "orders-api", "server")
    assert api.name == "POST /api/v1/orders"
    assert api.parent_id == client_span
    assert api.attributes["http.response.status_code"] == 201
    # The customer looked up in the customer API, within the request (the first lookup of
    # this customer: nothing cached).
    lookup = one(spans, "customers-api", "server")
    assert lookup.name == "GET /api/v1/customers/{customer_id}"
    assert lookup.parent_id == api.span_id
    # OrderCreated, published with the request's context, to the projector and the payments.
    created = one(spans, "orders-relay", "producer", "order.created")
    assert created.parent_id == api.span_id
    assert one(spans, "projector", "consumer", "order.created").parent_id == created.span_id
    processor = one(spans, "payment-processor", "consumer", "order.created")
    assert processor.parent_id == created.span_id
    # The payment failed: its outcome published with the processor's context.
    outcome = one(spans, "payments-relay", "producer", "payment.failed")
    assert outcome.parent_id == processor.span_id
    results = one(spans, "payment-results", "consumer", "payment.failed")
    assert results.parent_id == outcome.span_id
    # Back in the order service: the cancellation it recorded, published and projected.
    cancelled = one(spans, "orders-relay", "producer", "order.cancelled")
    assert cancelled.parent_id == results.span_id
    assert one(spans, "projector", "consumer", "order.cancelled").parent_id == cancelled.span_id

    assert len(spans) == EXPECTED_SPANS, spans  # nothing else, nothing twice
    assert {span.trace_id for span in spans} == {trace_id}
    published = {span.attributes["messaging.message.id"] for span in (created, cancelled)}
    assert published == set(await _event_ids(system, placed.json()["id"]))


async def _event_ids(system: System, order_id: str) -> list[str]:
    """The ids of the order's public events, as the feed serves them."""
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
        feed = (await client.get("/api/v1/events", params={"after": 0, "limit": 100})).json()
    return [item["id"] for item in feed if item["data"]["order_id"] == order_id]


async def test_the_feed_serves_each_event_with_the_context_that_caused_it(
    system: System, receiver: Receiver
) -> None:
    trace_id = secrets.token_hex(16)
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
        placed = await client.post(
            "/api/v1/orders",
            json={**OVER_THE_LIMIT, "quantity": 1},  # paid: no cancellation follows
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        assert placed.status_code == 201, placed.text
        await eventually(
            lambda: any(s.service == "orders-api" for s in receiver.spans(trace_id)),
            within=30,
            what="the request's span",
        )
        feed = (await client.get("/api/v1/events", params={"after": 0, "limit": 100})).json()

    api = one(receiver.spans(trace_id), "orders-api", "server")
    (event,) = [e for e in feed if e["data"]["order_id"] == placed.json()["id"]]
    assert event["traceparent"] == f"00-{trace_id}-{api.span_id}-01"
