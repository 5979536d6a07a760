"""`ordersystem status`: every process `ordersystem run` starts, as its metrics show it.

Each process is found where the settings say it serves its metrics (the same addresses
`ordersystem run` prints), scraped twice a second apart, and shown as a row: its health, the
log position it has reached, its lag in events and in seconds, and its rate over the last
second. An API's health is its readiness endpoint; a worker is up when it answers a scrape
(a relay also says whether it leads or stands by).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

Samples = dict[str, list[tuple[dict[str, str], float]]]  # name: (labels, value) of each series


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "api", "relay", "consumer" or "projector"
    metrics_url: str
    ready_url: str | None = None  # an API's readiness endpoint


@dataclass(frozen=True)
class Row:
    process: str
    health: str
    position: str
    lag_events: str
    lag_seconds: str
    rate: str

    @property
    def healthy(self) -> bool:
        return self.health in ("ready", "up", "leading", "standby")


# What each kind counts for its rate, and which series give its position and lags.
RATE = {
    "api": "http_requests_total",
    "relay": "ordersystem_relay_published_messages_total",
    "consumer": "ordersystem_consumer_handled_events_total",
    "projector": "ordersystem_read_model_applied_events_total",
}
POSITION = {"relay": "ordersystem_relay_published_position"}
LAG = {
    "relay": ("ordersystem_relay_lag_events", "ordersystem_relay_lag_seconds"),
    "consumer": ("ordersystem_consumer_lag_events", "ordersystem_consumer_lag_seconds"),
    "projector": ("ordersystem_consumer_lag_events", "ordersystem_consumer_lag_seconds"),
}
UNCOUNTED_ROUTES = ("/metrics", "/health", "/health/ready")  # not the traffic an API serves


def scrape(url: str, timeout: float = 2.0) -> Samples | None:
    """Every series a process serves; None when it does not answer."""
    try:
        text = httpx.get(url, timeout=timeout).text
    except httpx.HTTPError:
        return None
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _largest(samples: Samples, name: str) -> float | None:
    values = [value for _, value in samples.get(name, [])]
    return max(values) if values else None


def _counted(samples: Samples, kind: str) -> float:
    series = samples.get(RATE[kind], [])
    if kind == "api":
        return sum(v for labels, v in series if labels.get("route") not in UNCOUNTED_ROUTES)
    if kind == "projector":  # every read model applies the same events: one of them
        return max((v for _, v in series), default=0.0)
    return sum(v for _, v in series)


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def row(target: Target, before: Samples | None, after: Samples | None, seconds: float) -> Row:
    """A process's row from two scrapes `seconds` apart (None: it did not answer)."""
    if after is None:
        return Row(target.name, "down", "-", "-", "-", "-")
    rate = (
        None if before is None else (_counted(after, target.kind) - _counted(before, target.kind))
    )
    per_second = None if rate is None else max(0.0, rate) / seconds
    health = "up"
    if target.kind == "relay":
        health = "leading" if _largest(after, "ordersystem_relay_leading") else "standby"
    if target.ready_url is not None:
        health = _readiness(target.ready_url)
    position = _largest(after, POSITION.get(target.kind, "ordersystem_consumer_position"))
    events, lag_seconds = LAG.get(target.kind, ("", ""))
    return Row(
        target.name,
        health,
        "-" if target.kind == "api" else _number(position),
        _number(_largest(after, events)) if events else "-",
        _number(_largest(after, lag_seconds), 1) if lag_seconds else "-",
        _number(per_second, 1),
    )


def _readiness(url: str) -> str:
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return "down"
    return "ready" if response.status_code == 200 else f"not ready ({response.status_code})"


def rows(targets: list[Target], interval: float = 1.0) -> list[Row]:
    """Every target scraped, then again after `interval`: their rows."""
    before = {t.name: scrape(t.metrics_url) for t in targets}
    started = time.monotonic()
    time.sleep(interval)  # the span a rate is measured over
    after = {t.name: scrape(t.metrics_url) for t in targets}
    seconds = max(time.monotonic() - started, 1e-3)
    return [row(t, before[t.name], after[t.name], seconds) for t in targets]


def table(found: list[Row]) -> Table:
    shown = Table(title="ordersystem status")
    for column in ("process", "health", "position", "lag (events)", "lag (s)", "rate (/s)"):
        left = column in ("process", "health")
        shown.add_column(column, justify="left" if left else "right", no_wrap=left)
    for r in found:
        health = r.health if r.healthy else f"[bold red]{r.health}[/]"
        shown.add_row(r.process, health, r.position, r.lag_events, r.lag_seconds, r.rate)
    return shown
