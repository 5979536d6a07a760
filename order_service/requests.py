"""Turning a JSON body into a PlaceOrder command, with every broken rule reported per field."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import msgspec

from order_service.domain import (
    DEFAULT_CURRENCY,
    MAX_PRICE,
    MAX_QUANTITY,
    NEW_ORDER_STATUSES,
    PRODUCT_NAME_MAX,
    Status,
    rule_violations,
)
from order_service.problems import order_refused
from order_service.usecases import PlaceOrder
from servicekit.http import NON_BLANK_TEXT, parse_whole
from servicekit.problems import FieldError, validation_failed

MAX_ID = 2**63 - 1
STATUSES = frozenset(status.value for status in Status)
PRICE_TEXT = r"^[0-9]+(\.[0-9]+)?$"
IDEMPOTENCY_KEY_MAX = 200


class OrderBody(msgspec.Struct, kw_only=True):
    """What POST /api/v1/orders accepts (documentation: the parser below is the authority)."""

    customer_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    product_name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=PRODUCT_NAME_MAX, pattern=NON_BLANK_TEXT)
    ]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]
    price: Annotated[
        Annotated[float, msgspec.Meta(ge=0, le=float(MAX_PRICE))]
        | Annotated[str, msgspec.Meta(pattern=PRICE_TEXT)],
        msgspec.Meta(
            description=f"0 to {MAX_PRICE}, at most 2 decimal places; a string keeps it exact"
        ),
    ]
    status: Literal["pending", "confirmed"] = "pending"
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] = DEFAULT_CURRENCY


# Beyond every bound a field checks. A JSON number such as 1e999999999 is clamped to it
# before int() reads it: int() of that Decimal would build a billion-digit integer.
_BEYOND_ANY_BOUND = Decimal(2**64)


def _whole(value: Any) -> int | None:
    """An integer from JSON: no booleans, no fractions (JSON Schema counts 3.0 as an integer)."""
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(min(max(value, -_BEYOND_ANY_BOUND), _BEYOND_ANY_BOUND))
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return None
    if isinstance(value, str) and not re.fullmatch(PRICE_TEXT, value):
        return None  # plain decimal notation only: no exponents, signs, spaces or NaN
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def parse_place_order(body: Any) -> PlaceOrder:
    """A PlaceOrder from a flat body or one wrapped as {"order": {...}}; 422 lists every error."""
    if isinstance(body, dict) and isinstance(body.get("order"), dict):
        body = body["order"]
    if not isinstance(body, dict):
        raise validation_failed([FieldError(field="", message="must be a JSON object")])
    errors: list[FieldError] = []

    def fail(field: str, message: str) -> None:
        errors.append(FieldError(field=field, message=message))

    customer_id = _whole(body.get("customer_id"))
    if customer_id is None or not 1 <= customer_id <= MAX_ID:
        fail("customer_id", "is required and must be a positive whole number")
    product_name = body.get("product_name")
    if not isinstance(product_name, str):
        fail("product_name", "is required and must be a string")
    quantity = _whole(body.get("quantity"))
    if quantity is None:
        fail("quantity", "is required and must be a whole number")
    price = _decimal(body.get("price"))
    if price is None:
        fail("price", "is required and must be a decimal number (as a number or a string)")
    status = body.get("status", Status.PENDING.value)
    known_status = Status(status) if isinstance(status, str) and status in STATUSES else None
    if known_status is None:
        fail("status", f"must be one of {', '.join(sorted(NEW_ORDER_STATUSES))}")
    currency = body.get("currency", DEFAULT_CURRENCY)
    if not isinstance(currency, str):
        fail("currency", "must be a string")
    name = product_name if isinstance(product_name, str) else None
    code = currency if isinstance(currency, str) else None
    broken = rule_violations(
        product_name=name, quantity=quantity, price=price, currency=code, status=known_status
    )
    if errors or broken:
        raise order_refused(errors, broken)
    assert customer_id is not None
    assert isinstance(product_name, str)
    assert quantity is not None
    assert price is not None
    assert known_status is not None
    return PlaceOrder(
        customer_id=customer_id,
        product_name=product_name,
        quantity=quantity,
        price=price,
        status=known_status,
        currency=currency,
    )


def order_body_schema() -> dict[str, Any]:
    """JSON Schema of the body: the order itself, or the order wrapped in {"order": ...}."""
    (_,), components = msgspec.json.schema_components([OrderBody])
    order = components["OrderBody"]
    wrapped = {"type": "object", "properties": {"order": order}, "required": ["order"]}
    return {"anyOf": [order, wrapped]}


REASON_MAX = 200


class CancelBody(msgspec.Struct, kw_only=True):
    """What POST /api/v1/orders/{id}/cancel accepts (the body is optional)."""

    reason: Annotated[
        str, msgspec.Meta(min_length=1, max_length=REASON_MAX, pattern=NON_BLANK_TEXT)
    ] = "requested"


def parse_cancel_reason(body: Any) -> str:
    """The reason from a {"reason": "..."} body (the API passes no body as {})."""
    if not isinstance(body, dict):
        raise validation_failed([FieldError(field="", message="must be a JSON object")])
    reason = body.get("reason", "requested")
    if (
        not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > REASON_MAX
        or "\x00" in reason
    ):
        message = f"must be a non-blank string of at most {REASON_MAX} characters, no NUL"
        raise validation_failed([FieldError(field="reason", message=message)])
    return reason


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header asks for; None when absent or `*`; -1 never matches."""
    if if_match is None or if_match.strip() == "*":
        return None
    version = parse_whole(if_match.strip().removeprefix("W/").strip('"'))
    return -1 if version is None else version
