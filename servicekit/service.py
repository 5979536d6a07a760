"""A service's processes and checks, wired once: its relay, its consumers' subscriptions,
and the readiness checks of its API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from eventsourcing.application import Application
from prometheus_client import REGISTRY

from servicekit.consumer import ConsumerSettings
from servicekit.eventlog import EventLog, PartitionKey, Translate
from servicekit.health import Check
from servicekit.messaging import Subscription
from servicekit.metrics import Endpoint, serve_metrics
from servicekit.postgres import PostgresSettings
from servicekit.relay import Relay, RelayLag, RelaySettings, relay_lag
from servicekit.schema import Step, migrated
from servicekit.signals import stop_on_signals

log = logging.getLogger(__name__)
App = TypeVar("App", bound=Application[Any])


class ServiceSettings(Protocol):
    """What every event-sourced service's settings hold (order_service.settings, ...)."""

    @property
    def postgres(self) -> PostgresSettings: ...
    @property
    def amqp_url(self) -> str: ...
    @property
    def exchange(self) -> str: ...  # where its relay publishes
    @property
    def relay_page_size(self) -> int: ...
    @property
    def partitions(self) -> int: ...  # its log's (contracts.partitions); 1: not partitioned
    @property
    def relay_interval(self) -> float: ...
    @property
    def batch_interval(self) -> float: ...
    @property
    def metrics_host(self) -> str: ...
    @property
    def relay_metrics_port(self) -> int: ...

    def eventsourcing_env(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class ServiceRelay(Generic[App]):
    """A service's relay: its name (state row and lock), its application, which of its
    events leave the service, as what, and its database's migrations (the service's one
    list, which every process of it runs as it starts)."""

    name: str
    application: Callable[..., App]  # called with env=
    translate: Translate
    topics: tuple[str, ...]
    migrations: Sequence[Step]
    partition_key: PartitionKey | None = None  # a log that may be partitioned says how

    def event_log(self, app: App) -> EventLog:
        return EventLog(app.recorder, app.mapper, self.translate, self.topics, self.partition_key)

    def settings(self, settings: ServiceSettings, app: App) -> RelaySettings:
        return RelaySettings(
            name=self.name,
            exchange=settings.exchange,
            amqp_url=settings.amqp_url,
            conninfo=settings.postgres.conninfo(),
            channel=app.recorder.channel_name,  # type: ignore[attr-defined]
            page_size=settings.relay_page_size,
            interval=settings.relay_interval,
            partitions=settings.partitions,
        )

    def relay(self, settings: ServiceSettings, app: App) -> Relay:
        return Relay(self.event_log(app), self.settings(settings, app))

    async def run(self, settings: ServiceSettings) -> None:
        """The relay process: the database migrated, the application built, relaying until
        SIGINT or SIGTERM."""
        stopping = stop_on_signals()
        make = partial(self.application, env=settings.eventsourcing_env())
        app = await asyncio.to_thread(migrated, make, settings.postgres, self.migrations)
        relay = self.relay(settings, app)
        REGISTRY.register(RelayLag(relay))
        serve_metrics(Endpoint(settings.metrics_host, settings.relay_metrics_port))
        try:
            await relay.run(stopping)
        finally:
            app.close()
        log.info("relay %s stopped after publishing %d", self.name, relay.published)

    def lag_report(self, settings: ServiceSettings, event_log: Callable[[], EventLog]) -> Check:
        """A readiness report of how far the relay trails the log: shown, never required
        (the API serves while the relay catches up; health_handlers shows a report that
        fails as its error, and stays ready)."""

        async def lag() -> dict[str, int]:
            conninfo = settings.postgres.conninfo()
            return await asyncio.to_thread(relay_lag, event_log(), conninfo, self.name)

        return lag


def event_store_check(app: Callable[[], Application[Any]]) -> Check:
    """A readiness check: the application's event store answers."""

    async def event_store() -> None:
        await asyncio.to_thread(app().recorder.max_notification_id)

    return event_store


def consumer_settings(
    name: str,
    settings: ServiceSettings,
    *,
    exchange: str,
    queue: str,
    bindings: tuple[str, ...],
    prefetch: int = 500,
) -> ConsumerSettings:
    """A consumer of `exchange` on its own `queue`, batched as the service's settings say."""
    subscription = Subscription(
        amqp_url=settings.amqp_url,
        exchange=exchange,
        queue=queue,
        bindings=bindings,
        prefetch=prefetch,
    )
    return ConsumerSettings(name=name, subscription=subscription, interval=settings.batch_interval)
