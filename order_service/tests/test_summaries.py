"""The order summaries and their pages, the same tests on both recorders: the in-memory one
the unit tests use must answer as the Postgres one the services use."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import msgspec
import pytest
from eventsourcing.persistence import IntegrityError

from order_service.application import MIGRATIONS, Orders
from order_service.domain import Order, Status
from order_service.usecases import PlaceOrder
from tests.support import Databases


@pytest.fixture(
    scope="module",
    params=["in memory", pytest.param("postgres", marks=pytest.mark.integration)],
)
def orders(request: pytest.FixtureRequest) -> Iterator[Orders]:
    """One application per recorder for the module; tests keep apart by fresh customer ids."""
    if request.param == "postgres":
        databases: Databases = request.getfixturevalue("databases")
        env = databases.fresh("summaries", MIGRATIONS).eventsourcing_env()
    else:
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    app = Orders(env=env)
    yield app
    app.close()


@pytest.fixture
def customer() -> int:
    return uuid.uuid4().int % 10**12


def widget(customer_id: int, quantity: int = 1, status: Status = Status.PENDING) -> PlaceOrder:
    return PlaceOrder(
        customer_id=customer_id,
        product_name="Widget",
        quantity=quantity,
        price=Decimal("9.99"),
        status=status,
    )


def unsaved(customer_id: int) -> Order:
    return Order.place(
        order_id=uuid.uuid4(),
        customer_id=customer_id,
        product_name="Widget",
        quantity=1,
        price=Decimal("1.00"),
    )


def listed(orders: Orders, customer_id: int | None, limit: int = 50) -> list[object]:
    return list(orders.list_orders(customer_id=customer_id, limit=limit).orders)


def test_an_order_is_listed_as_placed_the_moment_its_save_returns(
    orders: Orders, customer: int
) -> None:
    placed = orders.place(widget(customer, quantity=3)).order

    found = orders.list_orders(customer_id=customer, limit=5).orders

    assert found == [placed]
    assert msgspec.json.encode(found) == msgspec.json.encode([placed])  # to the byte, as served


def test_pages_list_every_order_once_newest_first(orders: Orders, customer: int) -> None:
    placed = [orders.place(widget(customer, quantity=n)).order.id for n in range(1, 8)]

    pages, before = [], None
    while True:
        page = orders.list_orders(customer_id=customer, limit=3, before=before)
        pages.append([o.id for o in page.orders])
        if page.next_position is None:
            break
        before = page.next_position

    assert pages == [placed[:3:-1], placed[3:0:-1], placed[:1]]


def test_a_page_that_holds_the_last_order_says_it_is_the_last(
    orders: Orders, customer: int
) -> None:
    for _ in range(4):
        orders.place(widget(customer))

    assert orders.list_orders(customer_id=customer, limit=4).next_position is None
    assert orders.list_orders(customer_id=customer, limit=3).next_position is not None


def test_a_customer_sees_only_their_orders_and_no_customer_means_everyone(
    orders: Orders, customer: int
) -> None:
    mine = orders.place(widget(customer)).order
    theirs = orders.place(widget(customer + 1)).order

    assert listed(orders, customer) == [mine]
    assert listed(orders, None, limit=2) == [theirs, mine]


def test_an_order_placed_confirmed_is_listed_confirmed(orders: Orders, customer: int) -> None:
    orders.place(widget(customer, status=Status.CONFIRMED))

    assert orders.list_orders(customer_id=customer, limit=1).orders[0].status == "confirmed"


def test_a_transition_updates_the_summary_and_keeps_the_order_in_its_place(
    orders: Orders, customer: int
) -> None:
    first = orders.place(widget(customer)).order
    second = orders.place(widget(customer)).order

    confirmed = orders.transition(first.id, "confirm").order

    assert listed(orders, customer) == [second, confirmed]


def test_a_failed_payment_reaches_the_summary_with_the_cancellation_it_caused(
    orders: Orders, customer: int
) -> None:
    order = orders.place(widget(customer)).order

    orders.record_payment(order.id, payment_id=uuid.uuid4(), succeeded=False, reason="declined")

    summary = orders.list_orders(customer_id=customer, limit=1).orders[0]
    assert (summary.status, summary.payment_status, summary.cancellation_reason) == (
        "cancelled",
        "failed",
        "payment_failed",
    )
    assert summary == orders.get_order(order.id)  # every column as the events say


def test_orders_saved_together_are_listed_in_the_order_they_were_given(
    orders: Orders, customer: int
) -> None:
    batch = [unsaved(customer) for _ in range(3)]

    orders.save_orders(*batch)  # one transaction, as a group commit makes

    assert [o.id for o in orders.list_orders(customer_id=customer, limit=5).orders] == [
        o.id for o in reversed(batch)
    ]


def test_each_save_learns_the_log_position_of_its_last_event(orders: Orders, customer: int) -> None:
    placed = orders.place(widget(customer))
    confirmed = orders.transition(placed.order.id, "confirm")
    units = [Orders._unit(unsaved(customer)) for _ in range(3)]
    orders.commit_units(units)  # one transaction, as a group commit makes

    assert orders.summaries.position_of(placed.order.id, version=1) == placed.position
    assert orders.summaries.position_of(placed.order.id, version=2) == confirmed.position
    assert orders.summaries.position_of(placed.order.id, version=3) is None
    positions = [unit.position for unit in units]
    assert positions == [
        orders.summaries.position_of(unit.views[0].id, version=1) for unit in units
    ]
    chain = [p for p in (placed.position, confirmed.position, *positions) if p is not None]
    assert len(chain) == 5
    assert chain == sorted(set(chain))  # in commit order, none shared


def test_a_refused_save_lists_none_of_the_orders_in_it(orders: Orders, customer: int) -> None:
    existing = orders.place(widget(customer)).order
    stale: Order = orders.repository.get(existing.id)
    confirmed = orders.transition(existing.id, "confirm").order  # version 2 is taken
    stale.cancel("too late")  # version 2 again
    newcomer = unsaved(customer)

    with pytest.raises(IntegrityError):
        orders.save_orders(newcomer, stale)

    assert listed(orders, customer) == [confirmed]


def test_an_older_summary_arriving_late_never_replaces_a_newer_one(
    orders: Orders, customer: int
) -> None:
    placed = orders.place(widget(customer)).order
    confirmed = orders.transition(placed.id, "confirm").order

    orders.recorder.insert_events([], order_views=[placed])

    assert listed(orders, customer) == [confirmed]


def test_a_newer_summary_changes_only_what_an_orders_later_events_can_change(
    orders: Orders, customer: int
) -> None:
    placed = orders.place(widget(customer)).order
    changed = {"status": "confirmed", "version": 2, "cancellation_reason": "x"}
    fixed = {"customer_id": customer + 1, "product_name": "Other", "quantity": 9, "total": 0}
    newer = msgspec.structs.replace(placed, **changed, **fixed)

    orders.recorder.insert_events([], order_views=[newer])

    assert listed(orders, customer) == [msgspec.structs.replace(placed, **changed)]
