"""How messages travel: the queue every consumer declares, and where poison goes.

Every consumer owns a durable quorum queue bound to the stream it follows, with a
dead-letter exchange `<queue>.dlx` and queue `<queue>.dlq`. A message that cannot be read is
copied there with the reason in the `x-poison-reason` header (and its routing key in
`x-original-routing-key`), then acknowledged, so it never blocks the messages behind it.

A partitioned read model (contracts.partitions) has one such queue per partition,
`<queue>.<index>of<count>`, with a single active consumer, bound by the message's
`partition` header to the headers exchange `<exchange>.partitioned`, which takes the whole
stream from the topic exchange `<exchange>`.

These are the rules; `servicekit.messaging` is the runtime that follows them.
"""

from __future__ import annotations

POISON_REASON_HEADER = "x-poison-reason"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"


def dead_letter_names(queue: str) -> tuple[str, str]:
    """The dead-letter exchange and queue of a consumer's queue."""
    return f"{queue}.dlx", f"{queue}.dlq"


def partitioned_exchange(exchange: str) -> str:
    """The headers exchange that routes a stream's messages to its partitions' queues."""
    return f"{exchange}.partitioned"


def partition_queue(queue: str, partition: str) -> str:
    """One partition's queue of a partitioned consumer whose queues are named `queue`."""
    return f"{queue}.{partition}"
