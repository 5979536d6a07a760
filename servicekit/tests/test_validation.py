"""The body validator: a Struct's constraints and a service's checks, every field error at once."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec
import pytest

from servicekit.http import NON_BLANK_TEXT, decode_json
from servicekit.problems import FieldError, ProblemError
from servicekit.validation import BodyValidator


class Item(msgspec.Struct, kw_only=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=10)]
    label: Annotated[str, msgspec.Meta(max_length=5, pattern=NON_BLANK_TEXT)]
    weight: Decimal = Decimal("1")


def even(sent: Any) -> str | None:
    return None if sent % 2 == 0 else "must be even"


read_item = BodyValidator(Item, checks={"count": [even]})


def errors(body: Any, validator: BodyValidator[Any] = read_item) -> list[tuple[str, str]]:
    with pytest.raises(ProblemError) as refused:
        validator(body)
    assert (refused.value.status, refused.value.code) == (422, "validation_failed")
    return [(error.field, error.message) for error in refused.value.errors]


def test_a_valid_body_becomes_the_struct_and_a_missing_optional_field_its_default() -> None:
    assert read_item({"count": 2, "label": "ab"}) == Item(count=2, label="ab")


def test_every_broken_field_is_reported_at_once_in_the_structs_order() -> None:
    assert errors({"label": "   ", "count": 11, "weight": "x"}) == [
        ("count", "Expected `int` <= 10"),
        ("label", "must not be blank or contain NUL characters"),
        ("weight", "Invalid decimal string"),
    ]


def test_a_missing_required_field_is_named() -> None:
    assert errors({"label": "ab"}) == [("count", "is required")]


def test_a_check_runs_only_on_a_value_of_the_right_type_and_says_its_rule() -> None:
    assert errors({"count": 3, "label": "ab"}) == [("count", "must be even")]
    assert errors({"count": "3", "label": "ab"}) == [("count", "Expected `int`, got `str`")]


@pytest.mark.parametrize("body", [[], "x", 5, None, True])
def test_a_body_that_is_not_an_object_is_refused_as_a_whole(body: Any) -> None:
    assert errors(body) == [("", "must be a JSON object")]


def test_a_whole_json_number_with_a_fraction_or_exponent_is_an_integer() -> None:
    body = decode_json(b'{"count": 4.0, "label": "ab", "weight": 0.10}')

    assert read_item(body) == Item(count=4, label="ab", weight=Decimal("0.10"))
    assert read_item(decode_json(b'{"count": 2e0, "label": "ab"}')).count == 2


@pytest.mark.parametrize("number", [b"1e999999999", b"-1e999999999", b"9" * 4000])
def test_a_huge_whole_number_is_refused_by_its_bound_without_being_built(number: bytes) -> None:
    body = decode_json(b'{"count": %s, "label": "ab"}' % number)

    assert [field for field, _ in errors(body)] == ["count"]


def test_a_boolean_is_no_number() -> None:
    assert errors({"count": True, "label": "ab"}) == [("count", "Expected `int`, got `bool`")]


def test_a_service_chooses_the_problem_it_answers_with() -> None:
    def conflict(found: list[FieldError]) -> ProblemError:
        return ProblemError(409, "conflict", "Conflict", errors=found)

    with pytest.raises(ProblemError) as refused:
        BodyValidator(Item, refuse=conflict)({"label": 5})

    assert refused.value.status == 409
    assert [error.field for error in refused.value.errors] == ["count", "label"]


def test_a_check_for_a_field_the_struct_lacks_is_refused_when_written() -> None:
    with pytest.raises(ValueError, match="has no field colour"):
        BodyValidator(Item, checks={"colour": [even]})
