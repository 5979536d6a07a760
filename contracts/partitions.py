"""The order log's partitions: which partition an order's events go to, and their names.

The order log may be published in a fixed number of partitions P, by customer id, like a
topic's partitions. Every event of an order goes to the partition of the order's customer,
so one customer's events stay in order within one partition, and a read model keyed by
customer never has two partitions write one of its rows. P = 1 is the unpartitioned log:
no partition is named anywhere and everything is as it was before partitions existed.
docs/decisions/0015-partitioned-read-models.md says why it is built this way.

The hash is Knuth's multiplicative hash of the customer id's low 32 bits, scaled to P by
its high bits (multiply-shift, not a remainder, whose low bits would follow the id's):

    h = (customer_id mod 2**32) * 2654435761 mod 2**32
    partition = h * P // 2**32

It is stable: the same id and P give the same partition in every process, release and
language. Postgres computes it with the same arithmetic (`PARTITION_FUNCTION`, created by
the order service's schema step), so the event feed can filter by partition; a test holds
the two equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MULTIPLIER = 2654435761  # Knuth: about 2**32 / the golden ratio, odd
WORD = 2**32
MAX_PARTITIONS = 256
PARTITION_HEADER = "partition"  # a partitioned message's header: its Partition, as text

# order_partition(customer_id, partitions): the same as `partition_of`, in SQL. numeric,
# because the product does not fit a bigint.
FUNCTION_NAME = "order_partition"
PARTITION_FUNCTION = f"""CREATE OR REPLACE FUNCTION
{FUNCTION_NAME}(customer_id bigint, partitions integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT (div(mod(mod(customer_id::numeric, 4294967296) * 2654435761, 4294967296) * partitions,
            4294967296))::integer $$"""

PARTITION_PATTERN = r"^[0-9]{1,3}of[0-9]{1,3}$"  # a name's form, as an OpenAPI document says
_NAME = re.compile(r"([0-9]{1,3})of([0-9]{1,3})")


class PartitionError(ValueError):
    """Not a partition: a malformed name, or an index or count out of range."""


def partition_count(raw: str) -> int:
    """A number of partitions, as a setting or an argument gives it: 1 to MAX_PARTITIONS."""
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_PARTITIONS:
        raise PartitionError(f"a whole number from 1 to {MAX_PARTITIONS}, not {raw!r}")
    return count


def partition_of(customer_id: int, partitions: int) -> int:
    """The partition, in 0 .. partitions - 1, of every event of this customer's orders."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise PartitionError(f"the partitions are 1 to {MAX_PARTITIONS}, not {partitions}")
    if customer_id < 1:
        raise PartitionError(f"a customer id is at least 1, not {customer_id}")
    hashed = (customer_id % WORD) * MULTIPLIER % WORD
    return hashed * partitions // WORD


@dataclass(frozen=True, order=True)
class Partition:
    """One partition of a layout of `count` partitions, named `<index>of<count>` (`2of4`):
    the layout is in the name, so the partitions of two layouts never share a queue, a
    tracking row or a lock while P is being changed."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_PARTITIONS or not 0 <= self.index < self.count:
            raise PartitionError(
                f"partition {self.index} of {self.count}: the index is 0 to count - 1,"
                f" the count 1 to {MAX_PARTITIONS}"
            )

    def __str__(self) -> str:
        return f"{self.index}of{self.count}"

    @classmethod
    def parse(cls, name: str) -> Partition:
        found = _NAME.fullmatch(name)
        if found is None:
            raise PartitionError(f"a partition is <index>of<count>, such as 2of4, not {name!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, customer_id: int, partitions: int) -> Partition:
        return cls(partition_of(customer_id, partitions), partitions)


def layout(partitions: int) -> list[Partition]:
    """Every partition of a layout of `partitions`, in index order."""
    return [Partition(index, partitions) for index in range(partitions)]
