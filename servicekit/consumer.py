"""A consumer of integration events whose handler is idempotent by itself.

For handlers that need no position tracking because the state they change refuses a repeat
(a payment keyed by its order, an order that is already paid). Messages come in coalesced
batches (servicekit.messaging), and the handler takes a whole batch at once, so it can
read what it needs in one query and commit it in one transaction, on the event loop (the
process opens a small pool for it: servicekit.application). It answers, for each event, None
or why that event can never be handled; those, and messages that cannot be read, go to the
dead-letter queue. Then the batch is acknowledged with one frame. Any failure leaves the
batch unacknowledged and ends the session, so it is delivered again after the consumer
reconnects, and the handler's own idempotency drops what it had already done.

Traced (servicekit.tracing), each envelope reaches the handler with `traceparent` naming the
CONSUMER span it is handled in, beside its correlation id: what the handler stores for it
is caused by that span.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from contracts.codec import ContractError, decode
from contracts.events import Envelope, IntegrationEvent
from servicekit import metrics, tracing
from servicekit.application import LoopApplication, open_loop_pool
from servicekit.messaging import (
    Batching,
    Message,
    Poison,
    Subscription,
    consume,
    keep_running,
)
from servicekit.metrics import Endpoint, serve_metrics
from servicekit.postgres import PostgresSettings
from servicekit.schema import Step, migrated
from servicekit.signals import stop_on_signals

App = TypeVar("App", bound=LoopApplication)

# Decide a batch; for each envelope, in order: None, or why it can never be handled.
Handler = Callable[[list[Envelope[IntegrationEvent]]], Awaitable[list[str | None]]]


@dataclass(frozen=True, kw_only=True)
class ConsumerSettings:
    name: str
    subscription: Subscription
    batch_size: int = 500
    interval: float = 0.0  # the shortest time between two batches (servicekit.messaging)


class Consumer:
    def __init__(self, settings: ConsumerSettings, handle: Handler) -> None:
        self.settings = settings
        self.handle = handle
        self.handled = 0
        self.poisoned = 0
        self.failures = 0
        self._handled_metric = metrics.CONSUMER_HANDLED.labels(settings.name)

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set; reconnect with backoff after any failure."""
        settings = self.settings
        batching = Batching(size=settings.batch_size, interval=settings.interval)
        await keep_running(
            settings.name,
            lambda: consume(settings.subscription, batching, stopping, self._batch),
            stopping,
            on_failure=self._failed,
        )

    def _failed(self, _: Exception) -> None:
        self.failures += 1

    async def _batch(self, batch: list[Message]) -> list[Poison]:
        readable: list[tuple[Message, Envelope[IntegrationEvent]]] = []
        poison: list[Poison] = []
        for message in batch:
            try:
                envelope = decode(message.body)
            except ContractError as exc:
                poison.append(Poison(message, f"ContractError: {exc}"))
                continue
            if tracing.ENABLED:
                envelope = msgspec.structs.replace(envelope, traceparent=tracing.cause_of(message))
            readable.append((message, envelope))
        verdicts = await self.handle([envelope for _, envelope in readable]) if readable else []
        for (message, _), reason in zip(readable, verdicts, strict=True):
            if reason is None:
                self.handled += 1
                self._handled_metric.inc()
            else:
                poison.append(Poison(message, f"UnprocessableError: {reason}"))
        self.poisoned += len(poison)
        return poison


async def run_consumer_process(
    make_app: Callable[[], App],
    postgres: PostgresSettings,
    migrations: Sequence[Step],
    settings: ConsumerSettings,
    handler_for: Callable[[App], Handler],
    metrics_at: Endpoint,
) -> None:
    """A consumer process: the database migrated, its metrics served, then each batch
    decided against the application, until a signal."""
    stopping = stop_on_signals()
    app = await asyncio.to_thread(migrated, make_app, postgres, migrations)
    serve_metrics(metrics_at)
    saves = await open_loop_pool(postgres.conninfo())
    app.saves_from(saves)  # the handler saves on the event loop, with no thread
    try:
        await Consumer(settings, handler_for(app)).run(stopping)
    finally:
        await saves.close()
        app.close()
