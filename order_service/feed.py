"""The order service's integration-event feed over HTTP: the envelopes the relay publishes,
in position order, for the read side's rebuilds, gap healing and replays."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import Parameter

from contracts.events import OrderEventEnvelope
from contracts.partitions import MAX_PARTITIONS, PARTITION_PATTERN, Partition, PartitionError
from servicekit.http import tagged_items_operation, whole_number_query, whole_param
from servicekit.problems import MALFORMED, FieldError, problem_spec, validation_failed

FEED_DEFAULT, FEED_MAX = 500, 5000


@get(
    "/api/v1/events",
    operation_id="listEvents",
    tags=["events"],
    operation_class=tagged_items_operation(
        [get_args(envelope)[0].TYPE for envelope in get_args(OrderEventEnvelope)]
    ),
    responses={
        400: problem_spec(MALFORMED),
        422: problem_spec("A bad after, limit, partitions or partition"),
    },
)
async def list_events(
    request: Request[Any, Any, Any],
    state: State,
    after: Annotated[
        str | None, whole_number_query("a position; 0 = from the start", 0, 2**63 - 1)
    ] = None,
    limit: Annotated[
        str | None, whole_number_query(f"page size (default {FEED_DEFAULT})", 1, FEED_MAX)
    ] = None,
    partitions: Annotated[
        str | None,
        whole_number_query(
            "serve as published in this many partitions: each envelope names its partition,"
            " and its previous_position is the one before it in that partition",
            1,
            MAX_PARTITIONS,
        ),
    ] = None,
    partition: Annotated[
        str | None,
        Parameter(
            description="only this partition's envelopes, chained within it: <index>of<count>",
            schema_extra={"pattern": PARTITION_PATTERN},
        ),
    ] = None,
) -> Response[list[OrderEventEnvelope]]:
    """The integration-event feed: the envelopes the relay publishes, in position order;
    with `partitions` or `partition`, as a partitioned relay publishes them."""
    start = whole_param("after", after, default=0, low=0, high=2**63 - 1)
    size = whole_param("limit", limit, default=FEED_DEFAULT, low=1, high=FEED_MAX)
    layout = _layout(partitions, partition)
    log = state.event_log
    if layout is None or layout == Partition(0, 1):
        page = await asyncio.to_thread(log.read, after=start, limit=size)
    elif isinstance(layout, Partition):
        page = await asyncio.to_thread(
            log.read_partitioned,
            after=start,
            limit=size,
            partitions=layout.count,
            only=layout.index,
        )
    else:
        page = await asyncio.to_thread(
            log.read_partitioned, after=start, limit=size, partitions=layout
        )
    last = await asyncio.to_thread(log.last_position)
    headers = {"X-Last-Position": str(last or 0)}
    if len(page) == size:  # there may be more: link the page after this one
        query = {"after": page[-1].position, "limit": size}
        if partitions is not None:
            query["partitions"] = layout
        query_text = urlencode(query if partition is None else {**query, "partition": partition})
        headers["Link"] = f'<{request.url.path}?{query_text}>; rel="next"'
    return Response(page, headers=headers)


def _layout(partitions: str | None, partition: str | None) -> int | Partition | None:
    """What the page is asked to be: a partition count, one partition, or unpartitioned."""
    if partitions is not None and partition is not None:
        message = "give partitions (every partition) or partition (one of them), not both"
        raise validation_failed([FieldError(field="partition", message=message)])
    if partition is not None:
        try:
            return Partition.parse(partition)
        except PartitionError as exc:
            raise validation_failed([FieldError(field="partition", message=str(exc))]) from None
    if partitions is not None:
        count = whole_param("partitions", partitions, default=1, low=1, high=MAX_PARTITIONS)
        return None if count == 1 else count
    return None
