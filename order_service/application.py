"""The Orders application: the order service's use cases, each load, act, save."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.popo import POPOFactory
from eventsourcing.utils import get_topic

from order_service.domain import Order, OrderError, Status
from order_service.recorders import (
    InMemoryOrderRecorder,
    OrderSummaries,
    PostgresOrderRecorder,
)
from order_service.views import OrderPage, OrderView

# Order ids derived from an Idempotency-Key live in their own namespace.
IDEMPOTENCY_NAMESPACE = UUID("6f1d0c1e-9c7a-4d5e-8a43-2b8f0f7d5e10")


@dataclass(frozen=True, kw_only=True)
class PlaceOrder:
    customer_id: int
    product_name: str
    quantity: int
    price: Decimal
    status: Status = Status.PENDING


@dataclass(frozen=True)
class Placement:
    order: OrderView
    created: bool  # False when an Idempotency-Key replay returned the existing order


class OrderNotFoundError(OrderError):
    pass


class IdempotencyKeyReusedError(OrderError):
    pass


def order_id_for(idempotency_key: str | None) -> UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key)


class Orders(Application[UUID]):
    name = "orders"
    env = {"APPLICATION_RECORDER_TOPIC": get_topic(PostgresOrderRecorder)}

    def construct_recorder(self) -> Any:
        if isinstance(self.factory, POPOFactory):
            return InMemoryOrderRecorder()
        return super().construct_recorder()

    def save_orders(self, *orders: Order) -> None:
        """Save the orders' new events and their summaries in one transaction."""
        self.save(*orders, order_views=[OrderView.of(order) for order in orders])

    def place(
        self, command: PlaceOrder, *, idempotency_key: str | None = None, correlation_id: str = ""
    ) -> Placement:
        order_id = order_id_for(idempotency_key)
        order = Order.place(order_id=order_id, correlation_id=correlation_id, **vars(command))
        try:
            self.save_orders(order)
        except IntegrityError:
            if idempotency_key is None:
                raise
            return Placement(self._replay(order_id, command), created=False)
        return Placement(OrderView.of(order), created=True)

    def existing_placement(self, idempotency_key: str, command: PlaceOrder) -> OrderView | None:
        """The order an earlier request with this key created, if there was one."""
        order_id = order_id_for(idempotency_key)
        try:
            return self._replay(order_id, command)
        except OrderNotFoundError:
            return None

    def _replay(self, order_id: UUID, command: PlaceOrder) -> OrderView:
        placed = self._order(order_id, version=1)
        if not placed.same_request(**vars(command)):
            raise IdempotencyKeyReusedError(order_id)
        return self.get_order(order_id)

    def get_order(self, order_id: UUID, version: int | None = None) -> OrderView:
        return OrderView.of(self._order(order_id, version))

    def list_orders(
        self, *, customer_id: int | None, limit: int, before: int | None = None
    ) -> OrderPage:
        """A page of orders, newest first; `before` is a position from an earlier page."""
        summaries = cast(OrderSummaries, self.recorder)
        return summaries.select_order_page(customer_id=customer_id, limit=limit, before=before)

    def _order(self, order_id: UUID, version: int | None = None) -> Order:
        try:
            order: Order = self.repository.get(order_id, version=version)
        except AggregateNotFoundError:
            raise OrderNotFoundError(order_id) from None
        if version is not None and order.version != version:
            raise OrderNotFoundError(order_id)  # asked for a version the order never reached
        return order
