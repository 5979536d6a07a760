"""Stored order events become contract events; the log chains positions over public ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from eventsourcing.domain import Aggregate, event
from hypothesis import given
from hypothesis import strategies as st

from contracts.events import OrderCreatedV1
from order_service.application import Orders
from order_service.domain import Order, Status
from order_service.relay import event_log
from order_service.translation import PUBLIC_TOPICS, to_contract
from order_service.usecases import PlaceOrder
from servicekit.eventlog import EVENT_ID_NAMESPACE, EventLog, event_id


@pytest.fixture
def orders() -> Iterator[Orders]:
    app = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def test_a_placed_order_becomes_order_created_v1() -> None:
    order = Order.place(
        order_id=uuid.uuid4(),
        customer_id=7,
        product_name="Widget",
        quantity=2,
        price=Decimal("3.5"),
        status=Status.CONFIRMED,
    )
    (placed,) = order.collect_events()

    assert to_contract(placed) == OrderCreatedV1(
        order_id=order.id,
        customer_id=7,
        product_name="Widget",
        quantity=2,
        price=Decimal("3.50"),
        status="confirmed",
        total=Decimal("7.00"),
    )


def test_an_event_with_no_contract_translates_to_nothing() -> None:
    assert to_contract(object()) is None


def test_event_ids_are_stable_for_a_stream_and_version() -> None:
    stream = uuid.uuid4()

    assert event_id(stream, 1) == event_id(stream, 1)
    assert event_id(stream, 1) != event_id(stream, 2)


@given(st.uuids(), st.integers(min_value=1, max_value=2**63 - 1))
def test_an_event_id_is_the_uuid5_of_its_stream_and_version(
    stream: uuid.UUID, version: int
) -> None:
    expected = uuid.uuid5(EVENT_ID_NAMESPACE, f"{stream}:{version}")

    assert event_id(stream, version) == expected
    assert event_id(str(stream), version) == expected
    assert event_id(stream, version).version == 5


def place(orders: Orders, count: int) -> None:
    for n in range(count):
        orders.place(
            PlaceOrder(customer_id=1, product_name=f"p{n}", quantity=1, price=Decimal(1)),
            correlation_id=f"c{n}",
        )


def test_the_log_carries_position_chain_and_correlation(orders: Orders) -> None:
    place(orders, 3)

    items = event_log(orders).read(after=0, limit=10)

    assert [(e.previous_position, e.position) for e in items] == [(None, 1), (1, 2), (2, 3)]
    assert [e.correlation_id for e in items] == ["c0", "c1", "c2"]
    assert len({e.id for e in items}) == 3


class Note(Aggregate):
    """An aggregate whose events are internal: no public topic."""

    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text


def test_internal_events_are_left_out_of_the_log_and_its_chain(orders: Orders) -> None:
    place(orders, 1)
    orders.save(Note("internal"))
    place(orders, 1)

    log = event_log(orders)

    assert [(e.previous_position, e.position) for e in log.read(after=0, limit=10)] == [
        (None, 1),
        (1, 3),
    ]
    assert [e.previous_position for e in log.read(after=2, limit=10)] == [1]
    assert log.pending(0) == 2


def test_a_public_event_without_a_translation_is_a_programming_error(orders: Orders) -> None:
    place(orders, 1)

    log = EventLog(orders.recorder, orders.mapper, lambda _: None, PUBLIC_TOPICS)

    with pytest.raises(TypeError, match="no translation"):
        log.read(after=0, limit=10)
