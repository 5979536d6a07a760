"""Cursors, page limits and problem documents, as every API uses them."""

from __future__ import annotations

import re

import pytest

from servicekit.http import (
    MAX_BIGINT,
    MAX_LIMIT,
    NON_BLANK_TEXT,
    WHITESPACE,
    cursor_param,
    encode_cursor,
    page_limit,
    parse_whole,
    whole_param,
)
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


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("0", 0),
        ("7", 7),
        ("007", 7),
        ("0000000000000000000000001", 1),
        (str(MAX_BIGINT), MAX_BIGINT),
    ],
)
def test_a_whole_number_in_ascii_digits_is_read(text: str, number: int) -> None:
    assert parse_whole(text) == number


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "-1", "+1", "1.0", "1e3", "١٢٣", "²", str(MAX_BIGINT + 1), "9" * 5000],
)
def test_anything_else_is_no_whole_number_and_costs_nothing(text: str) -> None:
    assert parse_whole(text) is None


def test_an_empty_parameter_is_a_422_even_where_zero_is_allowed() -> None:
    # ?after= once read as 0 and answered 200, found by schemathesis
    with pytest.raises(ProblemError) as refused:
        whole_param("after", "", default=0, low=0, high=MAX_BIGINT)

    assert refused.value.errors[0].field == "after"


def test_the_pattern_knows_whitespace_as_str_strip_does() -> None:
    spelled = {chr(c) for c in range(0x110000) if re.fullmatch(f"[{WHITESPACE}]", chr(c))}

    assert spelled == {chr(c) for c in range(0x110000) if chr(c).isspace()}


@pytest.mark.parametrize("text", ["\u0085", " \x1c", "\u3000\t", "a\x00"])
def test_text_the_server_refuses_as_blank_the_pattern_refuses_too(text: str) -> None:
    assert re.fullmatch(NON_BLANK_TEXT, text) is None


def test_text_with_one_visible_character_matches() -> None:
    assert re.fullmatch(NON_BLANK_TEXT, " \u0085x\u3000")
