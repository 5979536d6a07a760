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

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

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


def exposition() -> bytes:
    """Every metric of this process (of all its server workers, in multiprocess mode)."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
