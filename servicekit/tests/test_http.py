"""Cursors, page limits and problem documents, as every API uses them."""

from __future__ import annotations

import pytest

from servicekit.http import MAX_LIMIT, cursor_param, encode_cursor, page_limit
from servicekit.problems import ProblemError


def test_a_cursor_round_trips_to_its_position() -> None:
    assert cursor_param(encode_cursor(12345)) == 12345


@pytest.mark.parametrize("raw", ["nope", "cDEy!", "===", encode_cursor(7)[:-1] + "~"])
def test_a_cursor_we_did_not_hand_out_is_a_422(raw: str) -> None:
    with pytest.raises(ProblemError) as refused:
        cursor_param(raw)

    assert refused.value.status == 422
    assert refused.value.errors[0].field == "cursor"


def test_no_cursor_means_the_first_page() -> None:
    assert cursor_param(None) is None
    assert cursor_param("") is None


@pytest.mark.parametrize(("raw", "limit"), [(None, 50), ("1", 1), ("500", 500)])
def test_a_page_limit_within_bounds_is_taken(raw: str | None, limit: int) -> None:
    assert page_limit(raw) == limit


@pytest.mark.parametrize("raw", ["0", "-1", str(MAX_LIMIT + 1), "ten", "1.5", ""])  # "": ?limit=
def test_a_page_limit_out_of_bounds_is_a_422(raw: str) -> None:
    with pytest.raises(ProblemError) as refused:
        page_limit(raw)

    assert refused.value.errors[0].field == "limit"
