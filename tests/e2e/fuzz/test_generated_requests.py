"""Generated requests to every endpoint, FUZZ_EXAMPLES each, as raw bytes: none a 5xx."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import System
from tests.e2e.fuzz.conftest import answer, still_serving
from tests.e2e.hostile import (
    ANY_HEADERS,
    CURSORS,
    Request,
    Strategy,
    bodies,
    headers,
    queries,
    text_part,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
REPLAY = os.environ.get("FUZZ_RANDOM", "") == ""  # make test replays the same run each time


@dataclass(frozen=True)
class Known:
    """Ids that exist, so generated requests also reach the code behind a found record."""

    order: bytes
    customer: bytes = b"1"


@dataclass(frozen=True)
class Endpoint:
    service: str  # orders, customers or payments
    name: str
    requests: Callable[[Known], Strategy[Request]]
    creates: bool = False  # a refused request must leave the store as it was


def get(
    path: Callable[[Known], Strategy[bytes]], params: dict[str, list[bytes]]
) -> Callable[[Known], Strategy[Request]]:
    def requests(known: Known) -> Strategy[Request]:
        return st.builds(
            lambda p, q, h: Request("GET", p + q, h),
            path(known),
            queries(params),
            headers(ANY_HEADERS),
        )

    return requests


def post(
    path: Callable[[Known], Strategy[bytes]],
    fields: dict[str, list[bytes]],
    header_names: list[bytes],
    *,
    optional_body: bool = False,
) -> Callable[[Known], Strategy[Request]]:
    def requests(known: Known) -> Strategy[Request]:
        body = st.one_of(st.just(b""), bodies(fields)) if optional_body else bodies(fields)
        return st.builds(
            lambda p, b, h: Request("POST", p, h, b),
            path(known),
            body,
            headers([*header_names, *ANY_HEADERS]),
        )

    return requests


def fixed(path: bytes) -> Callable[[Known], Strategy[bytes]]:
    return lambda _: st.just(path)


def under(
    prefix: bytes, known: Callable[[Known], list[bytes]], suffix: bytes = b""
) -> Callable[[Known], Strategy[bytes]]:
    return lambda k: text_part(known(k)).map(lambda segment: prefix + segment + suffix)


def an_order(known: Known) -> list[bytes]:
    return [known.order, str(uuid.uuid4()).encode(), known.order.upper()]


ORDER_FIELDS = {
    "customer_id": [b"1", b"2", b"1.0"],
    "product_name": [b'"Widget"', b'"\\u0000"', b'" "'],
    "quantity": [b"1", b"3", b"1e2"],
    "price": [b'"19.99"', b"0.1", b'"1.001"'],
    "status": [b'"pending"', b'"confirmed"', b'"shipped"', b'"delivered"'],
    "currency": [b'"EUR"', b'"eur"'],
}
CUSTOMER_FIELDS = {"customer_name": [b'"Ada"', b'"  "'], "address": [b'"London"', b'""']}
PAGES = {"limit": [b"1", b"500", b"501"], "cursor": CURSORS}

ENDPOINTS = [
    Endpoint(
        "orders",
        "create order",
        post(
            fixed(b"/api/v1/orders"),
            ORDER_FIELDS,
            [b"Idempotency-Key", b"X-Correlation-ID", b"Content-Type"],
        ),
        creates=True,
    ),
    Endpoint(
        "orders",
        "list orders",
        get(fixed(b"/api/v1/orders"), {"customer_id": [b"1"], **PAGES}),
    ),
    Endpoint("orders", "get order", get(under(b"/api/v1/orders/", an_order), {"version": [b"1"]})),
    Endpoint(
        "orders",
        "order history",
        get(under(b"/api/v1/orders/", an_order, b"/events"), {}),
    ),
    *(
        Endpoint(
            "orders",
            f"{action} order",
            post(
                under(b"/api/v1/orders/", an_order, b"/" + action.encode()),
                {"reason": [b'"late"', b'""']},
                [b"If-Match"],
                optional_body=True,
            ),
        )
        for action in ("confirm", "ship", "deliver", "cancel")
    ),
    Endpoint(
        "orders",
        "event feed",
        get(fixed(b"/api/v1/events"), {"after": [b"0", b"1"], "limit": [b"1", b"5000", b"5001"]}),
    ),
    Endpoint(
        "customers",
        "get customer",
        get(under(b"/api/v1/customers/", lambda k: [k.customer, b"9223372036854775807"]), {}),
    ),
    Endpoint("customers", "list customers", get(fixed(b"/api/v1/customers"), PAGES)),
    Endpoint(
        "customers",
        "create customer",
        post(fixed(b"/api/v1/customers"), CUSTOMER_FIELDS, [b"Content-Type"]),
        creates=True,
    ),
    Endpoint("payments", "get payment", get(under(b"/api/v1/payments/", an_order), {})),
    Endpoint(
        "payments",
        "payments of an order",
        get(fixed(b"/api/v1/payments"), {"order_id": [str(uuid.uuid4()).encode()]}),
    ),
]


@pytest.fixture(scope="module")
def known(apis: System) -> Known:
    order = {"customer_id": 1, "product_name": "Widget", "quantity": 1, "price": "1.00"}
    created = httpx.post(f"{apis.orders.url}/api/v1/orders", json=order)
    assert created.status_code == 201, created.text
    return Known(order=created.json()["id"].encode())


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_no_generated_request_gives_a_server_error(
    apis: System, known: Known, endpoint: Endpoint
) -> None:
    sent: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=REPLAY,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(endpoint.requests(known))
    def one(request: Request) -> None:
        sent.append(answer(apis, endpoint.service, request, creates=endpoint.creates).status)

    one()

    assert len(sent) >= EXAMPLES  # each example really went over the wire
    still_serving(apis, endpoint.service)
