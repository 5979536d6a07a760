"""The fixed corpus of known-bad inputs, each with the client error it must get."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import System
from tests.e2e.fuzz.conftest import answer
from tests.e2e.hostile import Request, cursor_of, deep

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


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
