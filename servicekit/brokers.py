"""RabbitMQ at several addresses: `RABBITMQ_URL` may list the nodes of a cluster.

`amqp://guest:guest@rabbit1:5672/,amqp://guest:guest@rabbit2:5672/` names two nodes. A
connection goes to the first that answers, each attempt of a process starting one node
further along the list, so after a node is lost the next attempt (every session runs
again after a failure, servicekit.messaging.keep_running) goes to another. Quorum queues
live on every node of the cluster, so a consumer or a relay carries on from any of them.

Every connection asks for a heartbeat every HEARTBEAT seconds (unless its URL names one),
so both ends find a lost peer within two of them: a node closes a cut-off host's
connections, hands its single-active-consumer queues to another consumer and requeues
what it had not acknowledged, in seconds rather than after the 60 s RabbitMQ proposes.
"""

from __future__ import annotations

import itertools

import aio_pika
from aio_pika.abc import AbstractConnection
from yarl import URL

HEARTBEAT = 5  # seconds
_attempts = itertools.count()


def with_heartbeat(node: str) -> str:
    """The node's URL, asking for HEARTBEAT unless it names a heartbeat of its own."""
    url = URL(node)
    return node if "heartbeat" in url.query else str(url.update_query(heartbeat=HEARTBEAT))


def nodes(url: str) -> list[str]:
    """The node URLs a setting lists (one, or several comma-separated)."""
    found = [part.strip() for part in url.split(",") if part.strip()]
    if not found:
        raise ValueError("RABBITMQ_URL names no node")
    return found


def where(url: str) -> str:
    """A node's address, without the credentials, for messages and logs."""
    return url.rsplit("@", 1)[-1]


async def connect(url: str, *, timeout: float = 5) -> AbstractConnection:  # noqa: ASYNC109
    """A connection to the first node that answers, starting one further along the list
    than this process's previous attempt; ConnectionError naming each node when none does.
    The timeout is each node's, as aio-pika's own connect takes it."""
    listed = nodes(url)
    start = next(_attempts) % len(listed)
    failures = []
    for node in listed[start:] + listed[:start]:
        try:
            return await aio_pika.connect(with_heartbeat(node), timeout=timeout)
        except (aio_pika.exceptions.AMQPError, OSError, TimeoutError) as exc:
            failures.append(f"{where(node)}: {type(exc).__name__}: {exc}")
    raise ConnectionError("no RabbitMQ node answered: " + "; ".join(failures))
