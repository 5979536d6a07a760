"""The Orders application: the order service's use cases, each load, act, save."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.popo import POPOFactory
from eventsourcing.utils import get_topic

from contracts.partitions import PARTITION_FUNCTION
from order_service.domain import Order
from order_service.recorders import (
    InMemoryOrderRecorder,
    OrderSummaries,
    PostgresOrderRecorder,
)
from order_service.usecases import (
    ConcurrentModificationError,
    HistoryEntry,
    IdempotencyKeyReusedError,
    OrderNotFoundError,
    PaymentResult,
    Placement,
    PlaceOrder,
    Recorded,
    VersionMismatchError,
)
from order_service.views import OrderPage, OrderView
from servicekit.application import GroupCommitApplication
from servicekit.groupcommit import commit_splitting_async
from servicekit.schema import event_store_migrations
from servicekit.tracing import TRACEPARENT, stamp
from servicekit.transcoder import TRANSCODER_ENV

# Order ids derived from an Idempotency-Key live in their own namespace.
IDEMPOTENCY_NAMESPACE = UUID("6f1d0c1e-9c7a-4d5e-8a43-2b8f0f7d5e10")


TRANSITION_ATTEMPTS = 3  # without If-Match, a lost race is retried on the fresh state


@dataclass
class _Unit:
    """What one save commits: collected events (safe to retry) and their summary rows;
    once committed, the log position of its last event."""

    events: list[Any]
    views: list[OrderView]
    position: int | None = None


def _positioned(units: list[_Unit], positions: list[int]) -> None:
    """Give each committed unit the position of its last event: `positions` are the
    transaction's events' positions, in the order the units' events were saved."""
    taken = 0
    for unit in units:
        if unit.events:
            taken += len(unit.events)
            unit.position = positions[taken - 1]


_ENVELOPE_FIELDS = {
    "originator_id",
    "originator_version",
    "timestamp",
    "originator_topic",
    TRACEPARENT,  # the trace that caused it (servicekit.tracing): not the order's data
}


def order_id_for(idempotency_key: str | None) -> UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key)


class Orders(GroupCommitApplication[_Unit]):
    name = "orders"
    env = {"APPLICATION_RECORDER_TOPIC": get_topic(PostgresOrderRecorder), **TRANSCODER_ENV}

    def construct_recorder(self) -> Any:
        """The order recorder, which keeps the summaries beside the events; `summaries` is
        the same object, typed for the queries it answers."""
        if isinstance(self.factory, POPOFactory):
            recorder: InMemoryOrderRecorder | PostgresOrderRecorder = InMemoryOrderRecorder()
        else:
            constructed = super().construct_recorder()
            if not isinstance(constructed, PostgresOrderRecorder):  # APPLICATION_RECORDER_TOPIC
                raise TypeError(f"Orders needs PostgresOrderRecorder, not {type(constructed)}")
            recorder = constructed
        self.summaries: OrderSummaries = recorder
        return recorder

    def save_orders(self, *orders: Order) -> Recorded:
        """Save the orders' new events and their summaries, atomically; the first order's
        summary, and the position of the last event saved."""
        unit = self._unit(*orders)
        self.save_unit(unit)
        return Recorded(unit.views[0], unit.position)

    @staticmethod
    def _unit(*orders: Order) -> _Unit:
        events = [event for order in orders for event in order.collect_events()]
        stamp(events)  # with the request's span when traced: what caused them
        return _Unit(events=events, views=[OrderView.of(order) for order in orders])

    def commit_units(self, units: list[_Unit]) -> None:
        """One transaction for all the units' events and summary rows."""
        events = [event for unit in units for event in unit.events]
        views = [view for unit in units for view in unit.views]
        recordings = self.save(*events, order_views=views)
        _positioned(units, [recording.notification.id for recording in recordings])

    async def commit_units_on_loop(self, units: list[_Unit]) -> None:
        events = [event for unit in units for event in unit.events]
        views = [view for unit in units for view in unit.views]
        _positioned(units, await self.on_loop.save(events, order_views=views))

    def place(
        self, command: PlaceOrder, *, idempotency_key: str | None = None, correlation_id: str = ""
    ) -> Placement:
        order = self._placed(command, idempotency_key, correlation_id)
        try:
            saved = self.save_orders(order)
        except IntegrityError:
            if idempotency_key is None:
                raise
            return self._replay(order.id, command)
        return Placement(saved.order, saved.position, created=True)

    async def place_from_loop(
        self, command: PlaceOrder, *, idempotency_key: str | None = None, correlation_id: str = ""
    ) -> Placement:
        """`place`, awaited on the event loop; with group commit, without threads. The
        Idempotency-Key is the order's id: a replay finds it taken, and is answered with
        the order it placed (or refused, if the body differs)."""
        order = self._placed(command, idempotency_key, correlation_id)
        unit = self._unit(order)
        try:
            await self.save_unit_on_loop(unit)
        except IntegrityError:
            if idempotency_key is None:
                raise
            return await asyncio.to_thread(self._replay, order.id, command)
        return Placement(unit.views[0], unit.position, created=True)  # the row just saved

    @staticmethod
    def _placed(command: PlaceOrder, idempotency_key: str | None, correlation_id: str) -> Order:
        order_id = order_id_for(idempotency_key)
        return Order.place(order_id=order_id, correlation_id=correlation_id, **vars(command))

    def _replay(self, order_id: UUID, command: PlaceOrder) -> Placement:
        """The order an Idempotency-Key placed before, with the position of its placing: the
        replay records nothing, but its caller may still wait to read what was placed."""
        placed = self._order(order_id, version=1)
        if not placed.same_request(**vars(command)):
            raise IdempotencyKeyReusedError(order_id)
        position = self.summaries.position_of(order_id, version=1)
        return Placement(self.get_order(order_id), position, created=False)

    def transition(
        self,
        order_id: UUID,
        action: str,
        *,
        expected_version: int | None = None,
        reason: str = "",
        correlation_id: str = "",
    ) -> Recorded:
        """Confirm, ship, deliver or cancel; never loses an update to a concurrent one."""

        def act(order: Order) -> bool:
            if action == "cancel":
                order.cancel(reason or "requested", correlation_id)
            else:
                getattr(order, action)(correlation_id)
            return True

        return self._update(order_id, act, expected_version)

    def record_payment(
        self,
        order_id: UUID,
        *,
        payment_id: UUID,
        succeeded: bool,
        reason: str = "",
        correlation_id: str = "",
    ) -> OrderView:
        """Take a payment result exactly once: a repeated or late one changes nothing."""
        result = PaymentResult(
            order_id=order_id,
            payment_id=payment_id,
            succeeded=succeeded,
            reason=reason,
            correlation_id=correlation_id,
        )
        return self._update(order_id, result.record_on).order

    async def record_payments(self, results: list[PaymentResult]) -> list[str | None]:
        """Take a batch of payment results: its orders read in one query, the changes saved
        in one transaction when nothing races them, both on the event loop.

        For each result: None, or why it can never be recorded (no such order). A result
        that lost a race (to a change through the API, or to a repeat within the batch) is
        recorded again on its own, on the fresh state.
        """
        verdicts: list[str | None] = [None] * len(results)
        changed: list[tuple[PaymentResult, Order]] = []
        orders = await self.on_loop.aggregates([result.order_id for result in results])
        for index, result in enumerate(results):
            order = orders.get(result.order_id)
            if not isinstance(order, Order):
                verdicts[index] = f"no order {result.order_id}"
                continue
            if result.record_on(order):  # a repeat within the batch finds it recorded
                changed.append((result, order))
        units = [self._unit(order) for _, order in changed]
        outcomes = await commit_splitting_async(self.commit_units_on_loop, units)
        for (result, _), error in zip(changed, outcomes, strict=True):
            if error is not None:
                await asyncio.to_thread(self._update, result.order_id, result.record_on)
        return verdicts

    def _update(
        self, order_id: UUID, change: Callable[[Order], bool], expected_version: int | None = None
    ) -> Recorded:
        """Load, change, save. A lost race is retried on the fresh state, or reported when
        the caller named the version it expected."""
        for _ in range(TRANSITION_ATTEMPTS):
            order = self._order(order_id)
            if expected_version is not None and order.version != expected_version:
                raise VersionMismatchError(order.version)
            if not change(order):
                return Recorded(OrderView.of(order), None)  # nothing to record
            try:
                saved = self.save_orders(order)
            except IntegrityError:  # another change took this version first
                if expected_version is not None:
                    raise VersionMismatchError(expected_version + 1) from None
                continue
            return saved
        raise ConcurrentModificationError(order_id)

    def history(self, order_id: UUID) -> list[HistoryEntry]:
        """Every event of the order, in version order, with the status after each."""
        entries: list[HistoryEntry] = []
        state: Any = None
        stored: Any
        for stored in self.events.get(order_id):
            state = stored.mutate(state)
            fields = {k: v for k, v in vars(stored).items() if k not in _ENVELOPE_FIELDS}
            entries.append(
                HistoryEntry(
                    version=stored.originator_version,
                    type=type(stored).__name__,
                    occurred_at=stored.timestamp,
                    correlation_id=fields.pop("correlation_id", ""),
                    data=fields,
                    status=str(state.status),
                )
            )
        if not entries:
            raise OrderNotFoundError(order_id)
        return entries

    def order_at(self, order_id: UUID, moment: datetime) -> OrderView:
        """The order as it was at a moment (after its last event at or before it)."""
        versions = [e.version for e in self.history(order_id) if e.occurred_at <= moment]
        if not versions:
            raise OrderNotFoundError(order_id)  # it did not exist yet
        return self.get_order(order_id, versions[-1])

    def get_order(self, order_id: UUID, version: int | None = None) -> OrderView:
        return OrderView.of(self._order(order_id, version))

    def list_orders(
        self, *, customer_id: int | None, limit: int, before: int | None = None
    ) -> OrderPage:
        """A page of orders, newest first; `before` is a position from an earlier page."""
        return self.summaries.select_order_page(customer_id=customer_id, limit=limit, before=before)

    def _order(self, order_id: UUID, version: int | None = None) -> Order:
        try:
            order: Order = self.repository.get(order_id, version=version)
        except AggregateNotFoundError:
            raise OrderNotFoundError(order_id) from None
        if version is not None and order.version != version:
            raise OrderNotFoundError(order_id)  # asked for a version the order never reached
        return order


# The orders database (servicekit.schema): the events, the summaries beside them, the relay's
# position, the partition function the event feed filters by. Each process runs it before
# it opens the database; `ordersystem migrate` too.
MIGRATIONS = (*event_store_migrations(Orders), PARTITION_FUNCTION)
