"""Metrics in the Prometheus format: the ones every process shares, and their exposition.

Each metric is made once per process, at import, in prometheus-client's default registry;
a test reads a metric's change, never its absolute value, since one test process builds
many apps. The HTTP side (`/metrics`, the request metrics) is servicekit.api's. An API
served by several granian workers keeps its figures in the directory that
PROMETHEUS_MULTIPROC_DIR names (`servicekit.serve` sets one up), so that a scrape sums the
workers instead of answering for whichever one took it.

Names follow the Prometheus conventions: `_total` for counters, base units (`_seconds`),
the process's role in labels rather than in names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, from its arrival to the end of its body",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
EVENTS_APPENDED = Counter(
    "ordersystem_event_store_appended_events_total",
    "Events appended to an event store, by its events table",
    ["store"],
)
GROUP_COMMIT_BATCH = Histogram(
    "ordersystem_group_commit_batch_size",
    "Saves committed together in one transaction by a group committer",
    ["application"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)

# The relays (servicekit.relay). Their lag behind the log is read at each scrape
# (servicekit.relay.RelayLag), from the database, so a scrape sees the log as it is.
RELAY_POSITION = Gauge(
    "ordersystem_relay_published_position",
    "The last log position the broker confirmed to this relay",
    ["relay"],
)
RELAY_LEADING = Gauge(
    "ordersystem_relay_leading",
    "1 while this relay holds the lead and publishes, 0 while it stands by",
    ["relay"],
)
RELAY_PUBLISHED = Counter(
    "ordersystem_relay_published_messages_total",
    "Messages the broker confirmed to this relay",
    ["relay"],
)
RELAY_CONFIRM = Histogram(
    "ordersystem_relay_confirm_seconds",
    "From a page's publishing to the broker's confirm of its every message",
    ["relay"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# Every consumer of a queue (servicekit.messaging), the projector's included.
CONSUMER_POSITION = Gauge(
    "ordersystem_consumer_position",
    "The log position of the last message this consumer acknowledged",
    ["queue"],
)
CONSUMER_LAG_EVENTS = Gauge(
    "ordersystem_consumer_lag_events",
    "Messages not yet applied: delivered and unacknowledged, plus those ready in the queue "
    "(as the broker last said, at most `depth_interval` ago)",
    ["queue"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "ordersystem_consumer_lag_seconds",
    "Age of the oldest delivered message not yet applied (its event's time, to the second; "
    "0 when none waits)",
    ["queue"],
)
DEAD_LETTERED = Counter(
    "ordersystem_consumer_dead_lettered_messages_total",
    "Poison messages set aside in the queue's dead-letter queue",
    ["queue"],
)
CONSUMER_HANDLED = Counter(
    "ordersystem_consumer_handled_events_total",
    "Events a consumer without position tracking handled (servicekit.consumer)",
    ["consumer"],
)

# Each read model a projector keeps (projections.projector).
READ_MODEL_POSITION = Gauge(
    "ordersystem_read_model_position",
    "The log position a read model has applied, as committed with it",
    ["read_model"],
)
READ_MODEL_APPLIED = Counter(
    "ordersystem_read_model_applied_events_total", "Events applied to a read model", ["read_model"]
)
READ_MODEL_DUPLICATES = Counter(
    "ordersystem_read_model_duplicates_total",
    "Messages at or below a read model's position, dropped",
    ["read_model"],
)
READ_MODEL_HEALED = Counter(
    "ordersystem_read_model_healed_events_total",
    "Events fetched from the feed to fill a gap in what the broker delivered",
    ["read_model"],
)
COMMIT_TO_VISIBLE = Histogram(
    "ordersystem_read_model_commit_to_visible_seconds",
    "From an event's commit to the event store to the commit of the read model that applies it",
    ["read_model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# The guards in front of a dependency (servicekit.breaker, servicekit.failfast). Set as they
# change, at a call; "livemax": an API's worst worker, when several serve it.
BREAKER_STATE = Gauge(
    "ordersystem_circuit_breaker_state",
    "A circuit breaker as of its last call: 0 closed, 1 half-open (a trial call passes), "
    "2 open (calls fail fast)",
    ["breaker"],
    multiprocess_mode="livemax",
)
GATE_CLOSED = Gauge(
    "ordersystem_database_gate_closed",
    "1 while calls to a database fail fast (its connections failed), 0 while they go through",
    ["database", "pool"],
    multiprocess_mode="livemax",
)
GATE_CLOSINGS = Counter(
    "ordersystem_database_gate_closings_total",
    "Times a database's gate closed: the database was found unreachable",
    ["database", "pool"],
)


@dataclass(frozen=True)
class Endpoint:
    """Where a worker process serves its metrics; port 0: it serves none."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"


def serve_metrics(endpoint: Endpoint) -> None:
    """Serve this process's metrics at `endpoint`, from a thread of their own (a relay,
    consumer or projector process; the APIs serve theirs on their own port)."""
    if endpoint.port == 0:
        return
    try:
        start_http_server(endpoint.port, addr=endpoint.host)
    except OSError as exc:  # the port is taken: say which, rather than a traceback
        raise SystemExit(f"cannot serve metrics on {endpoint.host}:{endpoint.port}: {exc}") from exc
    log.info("metrics on %s", endpoint.url)


def exposition() -> bytes:
    """Every metric of this process (of all its server workers, in multiprocess mode)."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
