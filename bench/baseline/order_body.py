"""What the baseline's POST /api/v1/orders accepts (benchmark fixture): the project's rules,
roughly, checked by one msgspec decode and a few comparisons."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from bench.baseline.http import ProblemError, invalid

MAX_ID = 2**63 - 1
MAX_QUANTITY = 1_000_000
MAX_PRICE = Decimal("1000000000")
CENT = Decimal("0.01")


class OrderBody(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    product_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]
    price: Decimal  # a JSON number or string, read exactly (no float drift)
    status: Literal["pending", "confirmed"] = "pending"  # a new order is not paid yet


class Wrapped(msgspec.Struct, frozen=True):
    order: OrderBody


_flat = msgspec.json.Decoder(OrderBody).decode
_wrapped = msgspec.json.Decoder(Wrapped).decode
_FIELD = re.compile(r"at `\$(?:\.order)?\.(\w+)`")


def parse_order(body: bytes) -> OrderBody:
    """The order in a flat body or one wrapped as {"order": {...}}; 400 or 422 otherwise."""
    try:
        order = _flat(body)
    except msgspec.ValidationError as flat:
        try:
            order = _wrapped(body).order
        except msgspec.ValidationError as wrapped:
            raise _refused(wrapped if "$.order." in str(wrapped) else flat) from None
    except msgspec.DecodeError:
        raise ProblemError(400, "malformed_json", "The body is not valid JSON") from None
    _check(order)
    return order


def _refused(error: msgspec.ValidationError) -> ProblemError:
    found = _FIELD.search(str(error))
    field = found.group(1) if found else ""
    code = "invalid_status" if field == "status" else "validation_failed"
    return invalid(field, str(error), code)


def _check(order: OrderBody) -> None:
    price = order.price
    if not price.is_finite() or not 0 <= price <= MAX_PRICE:
        raise invalid("price", f"must be a number from 0 to {MAX_PRICE}")
    if price != price.quantize(CENT):
        raise invalid("price", "must have at most 2 decimal places")
    if not order.product_name.strip() or "\x00" in order.product_name:
        raise invalid("product_name", "must not be blank or contain NUL characters")
