"""Hostile bytes over real HTTP: no request of any shape gives a 5xx from any API.

Every endpoint that takes a body or parameters gets FUZZ_EXAMPLES generated requests
(300 in `make test`, replaying one fixed run; `make fuzz` sends more, drawn anew) and the
fixed corpus of known-bad inputs at the end of this file. Each request goes as raw bytes to
the running service processes. Every answer must come within seconds, be below 500 (all
dependencies are up here, so not even a 503 is excused), and refuse as problem details; a
refused create must have stored nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import System, start_system
from tests.e2e.hostile import (
    ANY_HEADERS,
    CURSORS,
    Answer,
    Request,
    Strategy,
    bodies,
    cursor_of,
    deep,
    headers,
    queries,
    send,
    text_part,
)
from tests.support import RUN_ID, Databases

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
def apis(databases: Databases, rabbitmq_up: None) -> Iterator[System]:
    """The three APIs on their own databases, with no rate limit to get in the way."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("API_RATE_LIMIT", "0")
        running = start_system(databases, prefix=f"t{RUN_ID}.fuzz")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def known(apis: System) -> Known:
    order = {"customer_id": 1, "product_name": "Widget", "quantity": 1, "price": "1.00"}
    created = httpx.post(f"{apis.orders.url}/api/v1/orders", json=order)
    assert created.status_code == 201, created.text
    return Known(order=created.json()["id"].encode())


def stored(system: System, service: str) -> int:
    """What a create adds to: order streams, or customers."""
    if service == "orders":
        return system.stored_orders()
    with psycopg.connect(system.customers_db.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM customers").fetchone()
        assert row is not None
        return int(row[0])


def answer(system: System, service: str, request: Request, *, creates: bool) -> Answer:
    """Send it; check what every answer must be: below 500, and problem details if refused."""
    before = stored(system, service) if creates else 0
    got = send(getattr(system, service).port, request)
    assert got.status < 500, (got, request)
    if got.status >= 400:
        assert got.is_problem, (got, request)
        if creates:
            assert stored(system, service) == before, ("refused, yet stored", got, request)
    return got


def still_serving(system: System, service: str) -> None:
    process = getattr(system, service).process
    assert process is not None
    assert process.poll() is None, f"the {service} API died"
    assert httpx.get(f"{getattr(system, service).url}/health", timeout=5).status_code == 200


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


JSON = ((b"Content-Type", b"application/json"),)
ORDER = b'{"customer_id": 1, "product_name": "Widget", "quantity": 1, "price": "1.00"%s}'


def order_with(extra: bytes) -> bytes:
    return ORDER % extra


# Known-bad inputs, each with the answer it must get: every one of them was a 500 (or a
# hang) once, or is the kind of input that gives one elsewhere.
CORPUS: list[tuple[str, str, Request, int]] = [
    (
        "orders",
        "a product name that is not UTF-8",
        Request(
            "POST",
            b"/api/v1/orders",
            JSON,
            b'{"customer_id": 1, "product_name": "\xff\xfe", "quantity": 1, "price": "1"}',
        ),
        400,
    ),
    (
        "orders",
        "a field nested 5,000 deep",
        Request("POST", b"/api/v1/orders", JSON, order_with(b', "x": ' + deep(5000, "array"))),
        400,
    ),
    (
        "orders",
        "an object nested 10,000 deep",
        Request("POST", b"/api/v1/orders", JSON, deep(10_000, "object")),
        400,
    ),
    (
        "orders",
        "a quantity of 1e999999999 (a billion digits as an integer)",
        Request(
            "POST",
            b"/api/v1/orders",
            JSON,
            b'{"customer_id": 1, "product_name": "W", "quantity": 1e999999999, "price": 1}',
        ),
        422,
    ),
    (
        "orders",
        "a customer id of 4,000 digits",
        Request(
            "POST",
            b"/api/v1/orders",
            JSON,
            b'{"customer_id": %s, "product_name": "W", "quantity": 1, "price": 1}' % (b"9" * 4000),
        ),
        422,
    ),
    (
        "orders",
        "a UTF-16 body",
        Request("POST", b"/api/v1/orders", JSON, order_with(b"").decode().encode("utf-16")),
        400,
    ),
    (
        "orders",
        "a delivered new order",
        Request("POST", b"/api/v1/orders", JSON, order_with(b', "status": "delivered"')),
        422,
    ),
    (
        "orders",
        "a limit of 5,000 digits",
        Request("GET", b"/api/v1/orders?limit=" + b"9" * 5000),
        422,
    ),
    (
        "orders",
        "a version of 5,000 digits",
        Request("GET", b"/api/v1/orders/%s?version=%s" % (str(uuid.uuid4()).encode(), b"9" * 5000)),
        422,
    ),
    (
        "orders",
        "a cursor past any bigint",
        Request("GET", b"/api/v1/orders?cursor=" + cursor_of(b"p" + b"9" * 30)),
        422,
    ),
    (
        "orders",
        "a cursor one past the largest bigint",
        Request("GET", b"/api/v1/orders?cursor=" + cursor_of(b"p9223372036854775808")),
        422,
    ),
    (
        "orders",
        "an empty feed position",
        Request("GET", b"/api/v1/events?after="),
        422,
    ),
    (
        "orders",
        "a feed position past any bigint",
        Request("GET", b"/api/v1/events?after=99999999999999999999"),
        422,
    ),
    ("orders", "an order id that is not UTF-8", Request("GET", b"/api/v1/orders/%ff%fe"), 404),
    ("orders", "a query that is not UTF-8", Request("GET", b"/api/v1/orders?customer_id=%ff"), 422),
    ("orders", "a malformed escape in the query", Request("GET", b"/api/v1/orders?limit=%zz"), 422),
    (
        "orders",
        "an If-Match of 5,000 digits",
        Request(
            "POST",
            b"/api/v1/orders/%s/confirm" % str(uuid.uuid4()).encode(),
            ((b"If-Match", b'"' + b"9" * 5000 + b'"'),),
        ),
        404,
    ),
    (
        "orders",
        "a cancel reason nested 5,000 deep",
        Request(
            "POST",
            b"/api/v1/orders/%s/cancel" % str(uuid.uuid4()).encode(),
            JSON,
            b'{"reason": ' + deep(5000, "array") + b"}",
        ),
        400,
    ),
    (
        "orders",
        "an Idempotency-Key of Latin-1 bytes",
        Request(
            "POST", b"/api/v1/orders", (*JSON, (b"Idempotency-Key", b"\xe9\xff")), order_with(b"")
        ),
        201,
    ),
    (
        "orders",
        "a body just over 64 KiB",
        Request("POST", b"/api/v1/orders", JSON, order_with(b', "x": "%s"' % (b"a" * 65536))),
        413,
    ),
    (
        "customers",
        "a customer id of 5,000 digits",
        Request("GET", b"/api/v1/customers/" + b"9" * 5000),
        404,
    ),
    (
        "customers",
        "a customer id one past the largest bigint",
        Request("GET", b"/api/v1/customers/9223372036854775808"),
        404,
    ),
    (
        "customers",
        "Arabic-Indic digits as a customer id",
        Request("GET", b"/api/v1/customers/%d9%a1"),
        404,
    ),
    (
        "customers",
        "a customer name that is not UTF-8",
        Request(
            "POST", b"/api/v1/customers", JSON, b'{"customer_name": "\xc3\x28", "address": "x"}'
        ),
        400,
    ),
    (
        "customers",
        "a new customer nested 5,000 deep",
        Request("POST", b"/api/v1/customers", JSON, b'{"address": ' + deep(5000, "object") + b"}"),
        400,
    ),
    (
        "customers",
        "a cursor that is not UTF-8 beneath its base64",
        Request("GET", b"/api/v1/customers?cursor=" + cursor_of(b"\xff\xfe")),
        422,
    ),
    ("payments", "a payment id that is not UTF-8", Request("GET", b"/api/v1/payments/%c3%28"), 404),
    (
        "payments",
        "an order id of 5,000 digits",
        Request("GET", b"/api/v1/payments?order_id=" + b"9" * 5000),
        422,
    ),
]


@pytest.mark.parametrize(
    ("service", "request_", "status"),
    [(service, request, status) for service, _, request, status in CORPUS],
    ids=[name for _, name, _, _ in CORPUS],
)
def test_each_known_bad_input_gets_its_client_error(
    apis: System, service: str, request_: Request, status: int
) -> None:
    got = answer(apis, service, request_, creates=request_.method == "POST")

    assert got.status == status, got
