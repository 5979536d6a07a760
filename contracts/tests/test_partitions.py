"""Partitions: the hash is stable and spreads customers evenly; names read back."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.partitions import (
    MAX_PARTITIONS,
    Partition,
    PartitionError,
    layout,
    partition_of,
)

MAX_ID = 2**63 - 1


@given(st.integers(min_value=1, max_value=MAX_ID), st.integers(1, MAX_PARTITIONS))
def test_every_customer_has_one_partition_in_range(customer_id: int, partitions: int) -> None:
    assert 0 <= partition_of(customer_id, partitions) < partitions


def test_the_hash_is_the_documented_arithmetic() -> None:
    # h = 7 * 2654435761 mod 2**32 = 1401181143; 1401181143 * 4 // 2**32 = 1
    assert partition_of(7, 4) == 1
    assert [partition_of(c, 4) for c in range(1, 9)] == [2, 0, 3, 1, 0, 2, 1, 3]
    assert all(partition_of(c, 1) == 0 for c in range(1, 100))


@pytest.mark.parametrize("partitions", [2, 3, 4, 8])
@pytest.mark.parametrize(
    "ids", [range(1, 10_001), range(4, 40_004, 4), range(1_000_001, 1_010_001)]
)
def test_sequential_and_strided_ids_spread_within_five_percent(partitions: int, ids: range) -> None:
    spread = Counter(partition_of(c, partitions) for c in ids)
    fair = len(ids) / partitions

    assert set(spread) == set(range(partitions))
    assert all(abs(n - fair) <= 0.05 * fair for n in spread.values()), spread


@given(
    st.integers(1, MAX_PARTITIONS).flatmap(lambda p: st.tuples(st.integers(0, p - 1), st.just(p)))
)
def test_a_partition_reads_back_from_its_name(index_count: tuple[int, int]) -> None:
    partition = Partition(*index_count)

    assert Partition.parse(str(partition)) == partition


def test_a_name_is_the_index_and_the_count() -> None:
    assert str(Partition(2, 4)) == "2of4"
    assert layout(3) == [Partition(0, 3), Partition(1, 3), Partition(2, 3)]
    assert Partition.of(7, 4) == Partition(1, 4)


@pytest.mark.parametrize(
    "name", ["", "2", "of4", "4of4", "-1of4", "1of0", "1of257", "2 of 4", "2OF4"]
)
def test_what_is_not_a_partition_is_refused(name: str) -> None:
    with pytest.raises(PartitionError):
        Partition.parse(name)


@pytest.mark.parametrize(("customer_id", "partitions"), [(0, 4), (-3, 4), (5, 0), (5, 257)])
def test_out_of_range_arguments_are_refused(customer_id: int, partitions: int) -> None:
    with pytest.raises(PartitionError):
        partition_of(customer_id, partitions)
