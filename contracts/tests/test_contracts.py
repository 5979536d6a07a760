"""The wire format: golden fixtures, typed decoding, additive evolution, the catalogue."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from contracts.catalogue import example, render
from contracts.codec import ContractError, decode, decode_feed, encode
from contracts.events import EVENT_TYPES, IntegrationEvent, OrderCreatedV1

GOLDEN = Path(__file__).parent / "golden"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes().strip()


@pytest.mark.parametrize("event", EVENT_TYPES, ids=lambda e: e.TYPE)
def test_every_event_encodes_to_its_golden_bytes(event: type[IntegrationEvent]) -> None:
    assert encode(example(event)) == golden(f"{event.TYPE}.v{event.VERSION}.json")


@pytest.mark.parametrize("event", EVENT_TYPES, ids=lambda e: e.TYPE)
def test_every_event_decodes_from_its_golden_bytes_with_typed_data(
    event: type[IntegrationEvent],
) -> None:
    decoded = decode(golden(f"{event.TYPE}.v{event.VERSION}.json"))

    assert decoded == example(event)
    assert type(decoded.data) is event


def test_an_order_created_from_before_currency_existed_decodes_with_the_default() -> None:
    decoded = decode(golden("order.created.v1.before-currency.json"))

    assert isinstance(decoded.data, OrderCreatedV1)
    assert decoded.data.currency == "EUR"
    assert decoded.data.price == Decimal("19.99")


def test_an_order_created_carries_its_total_and_an_older_one_works_it_out() -> None:
    today = decode(golden("order.created.v1.json"))
    older = decode(golden("order.created.v1.before-currency.json"))  # before total, too

    assert isinstance(today.data, OrderCreatedV1)
    assert isinstance(older.data, OrderCreatedV1)
    assert (today.data.total, today.data.amount_due()) == (Decimal("59.97"), Decimal("59.97"))
    assert older.data.total is None
    assert older.data.amount_due() == older.data.price * older.data.quantity


def test_a_traced_event_carries_its_trace_context_beside_its_correlation_id() -> None:
    traced = msgspec.structs.replace(example(OrderCreatedV1), traceparent=TRACEPARENT)

    assert encode(traced) == golden("order.created.v1.traced.json")
    assert decode(golden("order.created.v1.traced.json")) == traced


def test_an_untraced_event_is_the_same_bytes_as_before_traces_existed() -> None:
    # The golden fixtures were written before the field existed; omit_defaults keeps them.
    assert b"traceparent" not in encode(example(OrderCreatedV1))
    assert decode(golden("order.created.v1.json")).traceparent is None
    assert decode(golden("order.created.v1.before-currency.json")).traceparent is None


def test_a_consumer_from_before_traces_reads_a_traced_event() -> None:
    class OlderEnvelope(msgspec.Struct, kw_only=True):  # the envelope as it was
        id: str
        type: str
        correlation_id: str
        data: dict[str, object]

    older = msgspec.json.decode(golden("order.created.v1.traced.json"), type=OlderEnvelope)

    assert older.correlation_id == "7b1e2c3d-example"
    assert older.data["product_name"] == "Widget"


def test_a_field_added_later_is_ignored_by_todays_consumer() -> None:
    newer = golden("order.created.v1.json").replace(
        b'"currency":"EUR"', b'"currency":"EUR","gift_wrap":true'
    )

    assert decode(newer) == example(OrderCreatedV1)


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

    assert decode_feed(page) == [example(OrderCreatedV1)]


def test_the_event_catalogue_in_docs_is_up_to_date() -> None:
    assert DOCS.read_text() == render(), "run `ordersystem catalogue` and commit docs/events.md"
