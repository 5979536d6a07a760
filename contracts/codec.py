"""One codec for envelopes: JSON out, and JSON in with the data typed by (type, schema_version)."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.events import EVENT_TYPES, Envelope, IntegrationEvent

_BY_KEY: dict[tuple[str, int], type[IntegrationEvent]] = {
    (event.TYPE, event.VERSION): event for event in EVENT_TYPES
}
_encoder = msgspec.json.Encoder()


class ContractError(ValueError):
    """A body that is not a known, well-formed envelope."""


class _Head(msgspec.Struct, frozen=True, kw_only=True):
    id: msgspec.Raw
    type: str
    schema_version: int
    position: msgspec.Raw
    previous_position: msgspec.Raw
    occurred_at: msgspec.Raw
    correlation_id: msgspec.Raw
    data: msgspec.Raw


def envelope(data: IntegrationEvent, **fields: Any) -> Envelope[IntegrationEvent]:
    """An envelope around `data`, with its type and schema version filled in from it."""
    return Envelope(type=data.TYPE, schema_version=data.VERSION, data=data, **fields)


def encode(item: Envelope[Any] | list[Envelope[Any]]) -> bytes:
    return _encoder.encode(item)


def event_type(type_: str, schema_version: int) -> type[IntegrationEvent]:
    try:
        return _BY_KEY[(type_, schema_version)]
    except KeyError:
        raise ContractError(f"unknown event {type_} v{schema_version}") from None


def decode(body: bytes) -> Envelope[IntegrationEvent]:
    """An envelope with typed data; ContractError for anything else."""
    try:
        head = msgspec.json.decode(body, type=_Head)
        data_type = event_type(head.type, head.schema_version)
        return msgspec.json.decode(body, type=Envelope[data_type])  # type: ignore[valid-type]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ContractError(str(exc)) from None


def decode_feed(body: bytes) -> list[Envelope[IntegrationEvent]]:
    """A page of the event feed (a JSON array of envelopes)."""
    try:
        items = msgspec.json.decode(body, type=list[msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ContractError(str(exc)) from None
    return [decode(bytes(item)) for item in items]
