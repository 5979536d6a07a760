"""Turning request bodies into Orders commands: one Struct each, read by servicekit's validator."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

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
from servicekit.validation import BodyValidator

MAX_ID = 2**63 - 1
PRICE_TEXT = r"^[0-9]+(\.[0-9]+)?$"
IDEMPOTENCY_KEY_MAX = 200


class OrderBody(msgspec.Struct, kw_only=True):
    """What POST /api/v1/orders accepts; with the checks below, the only statement of it."""

    customer_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    product_name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=PRODUCT_NAME_MAX, pattern=NON_BLANK_TEXT)
    ]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]
    price: Decimal  # a JSON number or a string; its rules are checks: msgspec bounds no Decimal
    status: Status = Status.PENDING
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] = DEFAULT_CURRENCY


def _first_broken(broken: list[tuple[str, str]]) -> str | None:
    return broken[0][1] if broken else None


def _price_rule(sent: Any) -> str | None:
    """Plain notation for a string (the wire's rule), then the domain's own price rules."""
    if isinstance(sent, str) and not re.fullmatch(PRICE_TEXT, sent):
        return "as a string, must be plain decimal notation such as 19.99"
    return _first_broken(rule_violations(price=Decimal(str(sent))))


def _new_order_status(sent: Any) -> str | None:
    return _first_broken(rule_violations(status=Status(sent)))


_read_order = BodyValidator(
    OrderBody,
    checks={"price": [_price_rule], "status": [_new_order_status]},
    refuse=order_refused,
)


def parse_place_order(body: Any) -> PlaceOrder:
    """A PlaceOrder from a flat body or one wrapped as {"order": {...}}; 422 lists every error."""
    if isinstance(body, dict) and isinstance(body.get("order"), dict):
        body = body["order"]
    return PlaceOrder(**msgspec.structs.asdict(_read_order(body)))


# What the Struct cannot say about itself in a schema: a price is a number or a string, and
# a new order is pending or confirmed.
_PRICE_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": int(MAX_PRICE)},
        {"type": "string", "pattern": PRICE_TEXT},
    ],
    "description": f"0 to {MAX_PRICE}, at most 2 decimal places; a string keeps it exact",
}


def order_body_schema() -> dict[str, Any]:
    """JSON Schema of the body: the order itself, or the order wrapped in {"order": ...}."""
    (_,), components = msgspec.json.schema_components([OrderBody])
    order = components["OrderBody"]
    order["properties"]["price"] = _PRICE_SCHEMA
    order["properties"]["status"] = {
        "enum": sorted(NEW_ORDER_STATUSES),
        "default": Status.PENDING.value,
    }
    wrapped = {"type": "object", "properties": {"order": order}, "required": ["order"]}
    return {"anyOf": [order, wrapped]}


REASON_MAX = 200


class CancelBody(msgspec.Struct, kw_only=True):
    """What POST /api/v1/orders/{id}/cancel accepts (the body is optional)."""

    reason: Annotated[
        str, msgspec.Meta(min_length=1, max_length=REASON_MAX, pattern=NON_BLANK_TEXT)
    ] = "requested"


_read_cancel = BodyValidator(CancelBody)


def parse_cancel_reason(body: Any) -> str:
    """The reason from a {"reason": "..."} body (the API passes no body as {})."""
    return _read_cancel(body).reason


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header asks for; None when absent or `*`; -1 never matches."""
    if if_match is None or if_match.strip() == "*":
        return None
    version = parse_whole(if_match.strip().removeprefix("W/").strip('"'))
    return -1 if version is None else version
