"""Position tokens: a position names its log, and a token for another log is told apart."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.positions import (
    MAX_POSITION,
    ORDER_LOG,
    PAYMENT_LOG,
    LogPosition,
    OtherLogError,
    PositionTokenError,
)


@given(st.integers(min_value=0, max_value=MAX_POSITION), st.sampled_from([ORDER_LOG, PAYMENT_LOG]))
def test_a_token_reads_back_as_the_position_it_was_made_from(position: int, log: str) -> None:
    token = str(LogPosition(log, position))

    assert LogPosition.parse(token, log=log) == LogPosition(log, position)


def test_a_token_is_the_log_and_the_position() -> None:
    assert str(LogPosition(ORDER_LOG, 1042)) == "orders:1042"
    assert LogPosition.parse(" orders:7 ", log=ORDER_LOG).position == 7


def test_a_token_of_the_other_log_is_told_apart_from_a_bad_one() -> None:
    with pytest.raises(OtherLogError, match="payments log"):
        LogPosition.parse("payments:5", log=ORDER_LOG)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "5",  # a bare number names no log
        "orders:",
        ":5",
        "orders:-1",
        "orders:1.5",
        "orders:0x10",
        "orders:5:6",
        "Orders:5",
        "shipments:5",  # no such log
        "orders:٣",  # a digit, but not an ASCII one
        f"orders:{MAX_POSITION + 1}",
        "orders:" + "9" * 40,
        "orders :5",
        "orders/:5",
        "orders/2:5",  # a partition names its layout
        "orders/4of4:5",  # no such partition
        "orders/2of0:5",
        "orders/2of4",
        "orders/2of4:5:6",
    ],
)
def test_anything_else_is_not_a_token(token: str) -> None:
    with pytest.raises(PositionTokenError) as refused:
        LogPosition.parse(token, log=ORDER_LOG)
    assert not isinstance(refused.value, OtherLogError)


@given(st.text(max_size=40))
def test_no_text_breaks_the_parser(token: str) -> None:
    try:
        parsed = LogPosition.parse(token, log=ORDER_LOG)
    except PositionTokenError:
        return
    assert parsed.log == ORDER_LOG
    assert 0 <= parsed.position <= MAX_POSITION


@given(
    st.integers(min_value=0, max_value=MAX_POSITION),
    st.integers(1, 256).flatmap(lambda p: st.tuples(st.integers(0, p - 1), st.just(p))),
)
def test_a_partitions_token_reads_back_with_its_partition(
    position: int, index_count: tuple[int, int]
) -> None:
    partition = f"{index_count[0]}of{index_count[1]}"
    token = str(LogPosition(ORDER_LOG, position, partition))

    assert token == f"orders/{partition}:{position}"
    assert LogPosition.parse(token, log=ORDER_LOG) == LogPosition(ORDER_LOG, position, partition)
