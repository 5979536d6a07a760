"""The customer representation the customer service serves and the order service reads."""

from __future__ import annotations

import msgspec


class CustomerV1(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    customer_name: str
    address: str
    orders_count: int = 0
