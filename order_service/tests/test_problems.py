"""Every order-domain error reaches a client as a problem document of its own, never a 500."""

from __future__ import annotations

import uuid

import pytest

from order_service import routes
from order_service.domain import (
    NEW_ORDER_RULE,
    InvalidOrderError,
    InvalidTransitionError,
    OrderError,
    PaymentRequiredError,
    PaymentStatus,
    Status,
)
from order_service.problems import PROBLEMS, problem_for
from order_service.requests import parse_place_order
from order_service.tests.conftest import ORDER, Client, stored_events
from order_service.usecases import (
    ConcurrentModificationError,
    IdempotencyKeyReusedError,
    OrderNotFoundError,
    PlaceOrder,
    VersionMismatchError,
)
from servicekit.postgres import PostgresSettings


def every_subclass(kind: type[OrderError]) -> set[type[OrderError]]:
    found = set(kind.__subclasses__())
    return found.union(*(every_subclass(sub) for sub in found))


def test_every_order_error_has_a_problem_of_its_own() -> None:
    assert every_subclass(OrderError) <= set(PROBLEMS)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (OrderNotFoundError(uuid.uuid4()), 404, "order_not_found"),
        (InvalidOrderError([("status", NEW_ORDER_RULE)]), 422, "invalid_status"),
        (InvalidOrderError([("quantity", "is 0")]), 422, "validation_failed"),
        (InvalidTransitionError(Status.DELIVERED, Status.CANCELLED), 409, "invalid_transition"),
        (PaymentRequiredError(PaymentStatus.PENDING), 409, "payment_required"),
        (ConcurrentModificationError(uuid.uuid4()), 409, "concurrent_modification"),
        (VersionMismatchError(3), 412, "precondition_failed"),
        (IdempotencyKeyReusedError(uuid.uuid4()), 422, "idempotency_key_reused"),
    ],
)
def test_each_order_error_is_its_own_client_error(
    error: OrderError, status: int, code: str
) -> None:
    problem = problem_for(error)

    assert (problem.status, problem.code) == (status, code)


def test_a_refused_order_names_every_broken_field() -> None:
    problem = problem_for(InvalidOrderError([("status", "no"), ("quantity", "no")]))

    assert [e.field for e in problem.errors] == ["status", "quantity"]


@pytest.mark.integration
async def test_when_the_parser_lets_a_delivered_order_through_the_domain_refuses_it_with_a_422(
    client: Client, database: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A parser that forgot the status rule: the domain still holds it, and says why.
    def forgetful(body: object) -> PlaceOrder:
        command = parse_place_order({**ORDER})
        return PlaceOrder(**{**vars(command), "status": Status.DELIVERED})

    monkeypatch.setattr(routes, "parse_place_order", forgetful)
    events = stored_events(database)

    response = await client.post("/api/v1/orders", json={**ORDER, "status": "delivered"})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_status"
    assert [e["field"] for e in response.json()["errors"]] == ["status"]
    assert stored_events(database) == events
