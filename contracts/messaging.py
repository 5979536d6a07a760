"""How messages travel: the queue every consumer declares, and where poison goes.

Every consumer owns a durable quorum queue bound to the stream it follows, with a
dead-letter exchange `<queue>.dlx` and queue `<queue>.dlq`. A message that cannot be read is
copied there with the reason in the `x-poison-reason` header (and its routing key in
`x-original-routing-key`), then acknowledged, so it never blocks the messages behind it.

These are the rules; `servicekit.messaging` is the runtime that follows them.
"""

from __future__ import annotations

POISON_REASON_HEADER = "x-poison-reason"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"


def dead_letter_names(queue: str) -> tuple[str, str]:
    """The dead-letter exchange and queue of a consumer's queue."""
    return f"{queue}.dlx", f"{queue}.dlq"
