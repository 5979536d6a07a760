"""Log positions as tokens: what a write answers with, and what a read may wait for.

A position is a notification id of one event log. The order log and the payment log are
separate sequences, so a token names its log: `orders:1042`. The order service answers every
request that records an event with the position of the last one (`X-Event-Position`); a read
of a read model kept from that log may ask for at least that position (`X-Min-Position`, or
`?min_position=`), and learns the position it was served at (`X-Projection-Position`).
docs/decisions/0014-read-your-writes.md says why, and what a token means when partitioned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts.partitions import Partition, PartitionError

ORDER_LOG = "orders"
PAYMENT_LOG = "payments"
LOGS = (ORDER_LOG, PAYMENT_LOG)

EVENT_POSITION_HEADER = "X-Event-Position"
MIN_POSITION_HEADER = "X-Min-Position"
MIN_POSITION_QUERY = "min_position"
PROJECTION_POSITION_HEADER = "X-Projection-Position"

MAX_POSITION = 2**63 - 1  # a bigint notification id
# A token's form, as an OpenAPI document states it: `orders:42`, or, for a log published in
# partitions (contracts.partitions), `orders/2of4:42`, a position of that partition.
PATTERN = r"^[a-z]+(/[0-9]{1,3}of[0-9]{1,3})?:[0-9]{1,19}$"
_TOKEN = re.compile(r"([a-z]+)(?:/([0-9]{1,3}of[0-9]{1,3}))?:([0-9]{1,19})")


class PositionTokenError(ValueError):
    """A token that is not `<log>:<position>`, or names no log there is."""


class OtherLogError(PositionTokenError):
    """A well-formed token for a log other than the one asked about."""


@dataclass(frozen=True)
class LogPosition:
    log: str
    position: int
    partition: str | None = None  # the partition it is a position of; None: the whole log

    def __str__(self) -> str:
        where = self.log if self.partition is None else f"{self.log}/{self.partition}"
        return f"{where}:{self.position}"

    @classmethod
    def parse(cls, token: str, *, log: str) -> LogPosition:
        """The position a token names in `log`; raises OtherLogError for a token of another
        log, PositionTokenError for anything else that is not a token."""
        found = _TOKEN.fullmatch(token.strip())
        if found is None:
            raise PositionTokenError(
                f"a position is <log>:<number>, such as {log}:42, or <log>/<partition>:<number>"
            )
        named, partition, digits = found.group(1), found.group(2), found.group(3)
        if named not in LOGS:
            raise PositionTokenError(f"no log is called {named!r}; the logs are {', '.join(LOGS)}")
        if named != log:
            raise OtherLogError(f"a position in the {named} log, and this is kept from {log}")
        position = int(digits)
        if position > MAX_POSITION:
            raise PositionTokenError(f"a position is at most {MAX_POSITION}")
        if partition is not None:
            try:
                Partition.parse(partition)
            except PartitionError as exc:
                raise PositionTokenError(str(exc)) from None
        return cls(named, position, partition)
