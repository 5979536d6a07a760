"""Parsing an order body: every broken rule is reported per field, values are kept exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from order_service.domain import Status
from order_service.requests import parse_cancel_reason, parse_place_order
from servicekit.http import decode_json
from servicekit.problems import ProblemError

VALID: dict[str, Any] = {
    "customer_id": 1,
    "product_name": "Widget",
    "quantity": 2,
    "price": "19.99",
}


def refused_fields(body: Any) -> list[str]:
    with pytest.raises(ProblemError) as refused:
        parse_place_order(body)
    assert refused.value.status == 422
    return [e.field for e in refused.value.errors]


def test_a_flat_body_is_accepted_and_status_defaults_to_pending() -> None:
    command = parse_place_order(VALID)

    assert command.price == Decimal("19.99")
    assert command.status is Status.PENDING


def test_a_body_wrapped_in_order_is_accepted() -> None:
    assert parse_place_order({"order": VALID}) == parse_place_order(VALID)


def test_a_json_number_price_has_no_float_drift() -> None:
    body = decode_json(b'{"customer_id":1,"product_name":"x","quantity":3,"price":0.1}')

    assert parse_place_order(body).price == Decimal("0.1")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_id": None}, "customer_id"),
        ({"customer_id": 0}, "customer_id"),
        ({"customer_id": "1"}, "customer_id"),
        ({"customer_id": True}, "customer_id"),
        ({"customer_id": 2**63}, "customer_id"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": "2"}, "quantity"),
        ({"quantity": False}, "quantity"),
        ({"price": -1}, "price"),
        ({"price": "1.001"}, "price"),
        ({"price": "abc"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": "Infinity"}, "price"),
        ({"price": None}, "price"),
        ({"price": [1]}, "price"),
        ({"product_name": ""}, "product_name"),
        ({"product_name": "x" * 201}, "product_name"),
        ({"product_name": 5}, "product_name"),
        ({"status": "lost"}, "status"),
        ({"status": 1}, "status"),
        ({"status": {}}, "status"),  # unhashable: it was a 500, found by schemathesis
        ({"status": ["pending"]}, "status"),
        ({"price": "1e3"}, "price"),  # a string price is plain decimal notation
        ({"price": " 19.99"}, "price"),
        ({"price": "+5"}, "price"),
        ({"price": "-0"}, "price"),
    ],
)
def test_a_field_that_breaks_a_rule_is_named(change: dict[str, Any], field: str) -> None:
    assert refused_fields({**VALID, **change}) == [field]


def test_every_broken_field_is_reported_at_once() -> None:
    body = {"customer_id": "x", "product_name": "", "quantity": 0, "price": "1.001"}

    assert sorted(refused_fields(body)) == ["customer_id", "price", "product_name", "quantity"]


@pytest.mark.parametrize("body", [[], "order", 5, None])
def test_a_body_that_is_not_an_object_is_refused(body: Any) -> None:
    assert refused_fields(body) == [""]


def test_an_order_wrapper_that_is_not_an_object_leaves_every_field_missing() -> None:
    assert refused_fields({"order": "x"}) == ["customer_id", "product_name", "quantity", "price"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"customer_id": 1,',
        b'{"product_name": "\xff\xfe"}',  # not UTF-8: it was a 500
        b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # nested 5,000 deep: it was a 500
        b'{"x": ' + b'{"y": ' * 5000 + b"1" + b"}" * 5001,
        "{}".encode("utf-16"),
        b"\xef\xbb\xbf{}",  # a byte order mark is not JSON
        b"",
    ],
)
def test_a_body_that_is_not_json_is_a_400_whatever_its_bytes(body: bytes) -> None:
    with pytest.raises(ProblemError) as refused:
        decode_json(body)

    assert (refused.value.status, refused.value.code) == (400, "malformed_json")


@pytest.mark.parametrize("status", ["shipped", "delivered", "cancelled"])
def test_a_status_a_new_order_cannot_have_is_an_invalid_status_naming_the_field(
    status: str,
) -> None:
    with pytest.raises(ProblemError) as refused:
        parse_place_order({**VALID, "status": status})

    assert (refused.value.status, refused.value.code) == (422, "invalid_status")
    assert [e.field for e in refused.value.errors] == ["status"]


def test_a_new_order_may_be_pending_or_confirmed() -> None:
    assert parse_place_order({**VALID, "status": "confirmed"}).status is Status.CONFIRMED
    assert parse_place_order({**VALID, "status": "pending"}).status is Status.PENDING


@pytest.mark.parametrize(
    ("field", "number"),
    [
        ("quantity", b"1e999999999"),  # int() of it would build a billion digits: a hang
        ("quantity", b"-1e999999999"),
        ("customer_id", b"1e999999999"),
        ("customer_id", b"9" * 4000),
        ("price", b"1e999999999"),
        ("price", b"1e-999999999"),
    ],
)
def test_a_huge_number_is_refused_at_once(field: str, number: bytes) -> None:
    body = decode_json(
        b'{"customer_id": 1, "product_name": "x", "quantity": 1, "price": 1, "%s": %s}'
        % (field.encode(), number)
    )

    assert refused_fields(body) == [field]


def test_a_whole_number_written_with_a_zero_fraction_is_a_whole_number() -> None:
    body = decode_json(b'{"customer_id": 1.0, "product_name": "x", "quantity": 3.0, "price": 1}')

    command = parse_place_order(body)

    assert (command.customer_id, command.quantity) == (1, 3)


def test_a_cancel_reason_comes_from_an_object_and_defaults_to_requested() -> None:
    assert parse_cancel_reason({}) == "requested"
    assert parse_cancel_reason({"reason": "changed my mind"}) == "changed my mind"


@pytest.mark.parametrize(
    "body", [None, [], "late", {"reason": ""}, {"reason": " \x1c"}, {"reason": "a\x00"}]
)
def test_a_cancel_body_that_is_not_an_object_with_a_reason_is_refused(body: Any) -> None:
    with pytest.raises(ProblemError) as refused:
        parse_cancel_reason(body)  # a JSON null body included: no body at all is {} instead

    assert refused.value.status == 422
