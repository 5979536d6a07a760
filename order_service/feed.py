"""The order service's integration-event feed over HTTP: the envelopes the relay publishes,
in position order, for the read side's rebuilds, gap healing and replays."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.datastructures import State

from contracts.events import OrderEventEnvelope
from servicekit.http import tagged_items_operation, whole_number_query, whole_param
from servicekit.problems import MALFORMED, problem_spec

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
        422: problem_spec("A bad after or limit"),
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
) -> Response[list[OrderEventEnvelope]]:
    """The integration-event feed: the envelopes the relay publishes, in position order."""
    start = whole_param("after", after, default=0, low=0, high=2**63 - 1)
    size = whole_param("limit", limit, default=FEED_DEFAULT, low=1, high=FEED_MAX)
    page = await asyncio.to_thread(state.event_log.read, after=start, limit=size)
    last = await asyncio.to_thread(state.event_log.last_position)
    headers = {"X-Last-Position": str(last or 0)}
    if len(page) == size:  # there may be more: link the page after this one
        query = urlencode({"after": page[-1].position, "limit": size})
        headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return Response(page, headers=headers)
