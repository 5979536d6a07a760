"""The msgspec transcoder writes and reads the library's own stored bytes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import Transcoder, TranscodingNotRegisteredError
from hypothesis import given
from hypothesis import strategies as st

from servicekit.transcoder import TRANSCODER_ENV, MsgspecTranscoder


class Colour(StrEnum):
    RED = "red"


def library() -> Transcoder:
    """The library's own transcoder, as an application of its own registers it."""
    return Application().mapper.transcoder


def msgspec_transcoder() -> Transcoder:
    """Ours, as the applications get it: through their environment."""
    transcoder = Application(env=TRANSCODER_ENV).mapper.transcoder
    assert isinstance(transcoder, MsgspecTranscoder)  # else these would compare the library
    return transcoder


STATES: list[dict[str, Any]] = [
    {},
    {"originator_topic": "order_service.domain:Order", "quantity": 3, "price": Decimal("9.99")},
    {"id": uuid.uuid4(), "at": datetime(2026, 12, 1, 11, 30, tzinfo=UTC), "none": None},
    {"at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))},
    {"status": Colour.RED, "flag": True, "ratio": 0.5, "big": 10**30},
    {"nested": {"list": [1, "two", Decimal("3.0"), [uuid.UUID(int=7)]], "tuple": (1, 2)}},
    {"text": 'ünïcödé ✓ \u2028 \x00 \x1f \\ " /', "empty": ""},
    {"_type_": "looks tagged", "other": 1},  # three keys: a plain dict, as the library reads it
]


@pytest.mark.parametrize("state", STATES)
def test_it_writes_the_librarys_bytes_and_reads_them_back(state: dict[str, Any]) -> None:
    ours, theirs = msgspec_transcoder(), library()

    written = ours.encode(state)

    assert written == theirs.encode(state)
    assert ours.decode(written) == theirs.decode(written)


@given(
    st.dictionaries(
        st.text(),
        st.one_of(
            st.text(), st.integers(), st.none(), st.booleans(), st.uuids(),
            st.decimals(allow_nan=False, allow_infinity=False),
            st.datetimes(timezones=st.just(UTC)),
        ),
    )
)  # fmt: skip
def test_any_flat_state_reads_the_same_through_either(state: dict[str, Any]) -> None:
    ours, theirs = msgspec_transcoder(), library()

    assert ours.encode(state) == theirs.encode(state)
    assert ours.decode(theirs.encode(state)) == theirs.decode(theirs.encode(state))


def test_an_unregistered_type_is_refused_as_the_library_refuses_it() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        msgspec_transcoder().encode({"what": object()})
