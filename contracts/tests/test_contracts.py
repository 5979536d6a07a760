"""The wire format: golden fixtures, typed decoding, additive evolution, the catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from contracts.catalogue import render
from contracts.codec import ContractError, decode, decode_feed, encode, envelope
from contracts.events import OrderCreatedV1

GOLDEN = Path(__file__).parent / "golden"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"

ORDER_CREATED = envelope(
    OrderCreatedV1(
        order_id=UUID("3f2b8c1e-7a4d-4e0f-9c55-1d2e3f4a5b6c"),
        customer_id=1,
        product_name="Widget",
        quantity=3,
        price=Decimal("19.99"),
        status="pending",
    ),
    id=UUID("9d7c6b5a-4e3f-5a2b-8c1d-0e9f8a7b6c5d"),
    position=42,
    previous_position=41,
    occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    correlation_id="req-1",
)


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes().strip()


def test_order_created_v1_encodes_to_its_golden_bytes() -> None:
    assert encode(ORDER_CREATED) == golden("order.created.v1.json")


def test_order_created_v1_decodes_from_its_golden_bytes_with_typed_data() -> None:
    decoded = decode(golden("order.created.v1.json"))

    assert decoded == ORDER_CREATED
    assert isinstance(decoded.data, OrderCreatedV1)
    assert decoded.data.price == Decimal("19.99")


def test_a_field_added_later_is_ignored_by_todays_consumer() -> None:
    newer = golden("order.created.v1.json").replace(
        b'"status":"pending"', b'"status":"pending","gift_wrap":true'
    )

    assert decode(newer) == ORDER_CREATED


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"type": "order.created"}',
        b"[]",
    ],
)
def test_a_body_that_is_no_envelope_is_a_contract_error(body: bytes) -> None:
    with pytest.raises(ContractError):
        decode(body)


def test_an_unknown_type_or_version_is_a_contract_error() -> None:
    body = golden("order.created.v1.json")

    with pytest.raises(ContractError, match=r"order\.vanished v1"):
        decode(body.replace(b"order.created", b"order.vanished"))
    with pytest.raises(ContractError, match="v9"):
        decode(body.replace(b'"schema_version":1', b'"schema_version":9'))


def test_data_that_breaks_its_schema_is_a_contract_error() -> None:
    body = golden("order.created.v1.json").replace(b'"quantity":3', b'"quantity":"three"')

    with pytest.raises(ContractError, match="quantity"):
        decode(body)


def test_a_feed_page_decodes_to_typed_envelopes() -> None:
    page = b"[" + golden("order.created.v1.json") + b"]"

    assert decode_feed(page) == [ORDER_CREATED]


def test_the_event_catalogue_in_docs_is_up_to_date() -> None:
    assert DOCS.read_text() == render(), "run `ordersystem catalogue` and commit docs/events.md"
