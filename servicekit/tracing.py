"""Traces across HTTP and the broker (OpenTelemetry), and nothing at all when not asked for.

An order's trace starts at its HTTP request and follows it through the event store, the
relay, RabbitMQ and every consumer. What crosses a boundary is a W3C `traceparent`:
- the events a request or a message handler stores carry the context of the span that
  caused them, as an attribute `traceparent` beside their `correlation_id` (`stamp`; the
  library stores every attribute of an event and hands replay only those its methods name);
- the relay publishes each event inside a PRODUCER span whose parent is that context, and
  the message carries the span's own `traceparent` header (`ProducerSpans`);
- a consumer handles each message inside a CONSUMER span whose parent is that header
  (`consuming`), and what it stores carries that span's context in turn.

`configure` is called once where a process starts. Unless OTEL_EXPORTER_OTLP_ENDPOINT is
set it does nothing, and every helper returns at once on the module flag `ENABLED`: the
SDK and the exporter are not even imported. When it is set, spans are batched
(BatchSpanProcessor, its OTEL_BSP_* settings) and exported over OTLP/HTTP (protobuf) to
`<endpoint>/v1/traces`, under the process's service name (OTEL_SERVICE_NAME, or the role's
default, e.g. `orders-relay`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from contracts.events import Envelope

log = logging.getLogger(__name__)

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
# The W3C header, the envelope's field and the stored event's attribute: one name for all.
TRACEPARENT = "traceparent"

ENABLED = False  # set by `configure`; every helper checks it before anything else
_provider: TracerProvider | None = None
_tracer: Tracer | None = None

# The spans a consumer is handling its current batch in, by message (`consuming`).
_handling: ContextVar[Mapping[int, str] | None] = ContextVar("handling", default=None)


def configure(
    default_name: str,
    env: Mapping[str, str] = os.environ,
    *,
    exporter: SpanExporter | None = None,
) -> bool:
    """Trace this process, once, when OTEL_EXPORTER_OTLP_ENDPOINT is set (or an exporter is
    given: the tests'); whether it is traced."""
    global ENABLED, _provider, _tracer
    if ENABLED:
        return True
    if exporter is None and not env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""):
        return False
    # Imported here: a process that is not traced never loads the SDK.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # the endpoint, headers and timeout: OTEL_EXPORTER_OTLP_*
    name = env.get("OTEL_SERVICE_NAME", "") or default_name
    _provider = TracerProvider(resource=Resource.create({"service.name": name}))
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = _provider.get_tracer("ordersystem")
    ENABLED = True
    log.info("tracing as %s", name)
    return True


@contextlib.contextmanager
def process(default_name: str) -> Iterator[None]:
    """A worker process traced as `default_name` (when configured), its spans exported
    before it ends."""
    configure(default_name)
    try:
        yield
    finally:
        shutdown()


def flush() -> None:
    """Export every span ended so far (an API's shutdown: its process may not get to exit)."""
    if ENABLED and _provider is not None:
        _provider.force_flush()


def shutdown() -> None:
    """Export what is left and stop tracing this process (also at exit, by the SDK)."""
    global ENABLED, _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    ENABLED, _provider, _tracer = False, None, None


def traceparent_of(span: Span) -> str:
    """A span's context as a W3C traceparent (version 00)."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def current_traceparent() -> str:
    """The traceparent of the span this code runs in; "" outside any (or untraced)."""
    if not ENABLED:
        return ""
    from opentelemetry import trace

    span = trace.get_current_span()
    return traceparent_of(span) if span.get_span_context().is_valid else ""


def stamp(events: Iterable[object], cause: str | None = None) -> None:
    """Give each event without one the context that caused it: `cause`, or else the span
    this code runs in. An event stamped already keeps its own."""
    if not ENABLED:
        return
    traceparent = cause or current_traceparent()
    if not traceparent:
        return
    for event in events:
        if TRACEPARENT not in vars(event):
            object.__setattr__(event, TRACEPARENT, traceparent)  # events are frozen


def _parent(traceparent: object) -> Any:
    """The context a W3C traceparent names; an empty one (a new trace) for anything else."""
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not isinstance(traceparent, str) or not traceparent:
        return Context()
    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})


@contextlib.contextmanager
def server_span(method: str, route: str, path: str, traceparent: str | None) -> Iterator[Span]:
    """The SERVER span of one HTTP request (`METHOD /route/{template}`), current while it is
    handled, continuing the client's trace when it sent a traceparent."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    assert _tracer is not None
    attributes = {"http.request.method": method, "http.route": route, "url.path": path}
    span = _tracer.start_span(
        f"{method} {route}" if route else method,
        context=_parent(traceparent),
        kind=SpanKind.SERVER,
        attributes=attributes,
    )
    with trace.use_span(span, end_on_exit=True, record_exception=True):
        yield span


def answered(span: Span, status: int) -> None:
    """Record an HTTP status on a server span; a 5xx marks it failed."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _messaging(operation: str, destination: str, routing_key: str, message_id: object) -> Any:
    """A message span's attributes, by the OpenTelemetry messaging conventions."""
    return {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": str(message_id),
    }


class ProducerSpans:
    """One PRODUCER span per envelope a relay publishes, each a child of the context stored
    with its event; ended together, when the broker has confirmed the batch (or failed)."""

    def __init__(
        self, destination: str, routing_key: str | None, batch: Sequence[Envelope[Any]]
    ) -> None:
        from opentelemetry.trace import SpanKind

        assert _tracer is not None
        tracer, started = _tracer, time.time_ns()  # one start for the batch, as it goes out
        self._spans: dict[int, Span] = {}
        for envelope in batch:
            self._spans[id(envelope)] = tracer.start_span(
                f"publish {destination}",
                context=_parent(envelope.traceparent),
                kind=SpanKind.PRODUCER,
                start_time=started,
                attributes={
                    **_messaging("send", destination, routing_key or envelope.type, envelope.id),
                    "ordersystem.position": envelope.position,
                },
            )

    def traceparent(self, envelope: Envelope[Any]) -> str:
        """The header a message carries: its PRODUCER span's context."""
        return traceparent_of(self._spans[id(envelope)])

    def __enter__(self) -> ProducerSpans:
        return self

    def __exit__(self, kind: object, error: BaseException | None, _: object) -> None:
        _end_all(self._spans.values(), error)


def _end_all(spans: Iterable[Span], error: BaseException | None) -> None:
    from opentelemetry.trace import Status, StatusCode

    ended = time.time_ns()
    for span in spans:
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end(end_time=ended)


class ConsumerSpans:
    """One CONSUMER span per message of a batch, each a child of its message's traceparent
    header. The batch is handled together, so its spans share their start and end."""

    def __init__(self, queue: str, messages: Sequence[AbstractIncomingMessage]) -> None:
        from opentelemetry.trace import SpanKind

        assert _tracer is not None
        tracer, started = _tracer, time.time_ns()
        self._spans: dict[int, Span] = {}
        for message in messages:
            self._spans[id(message)] = tracer.start_span(
                f"process {queue}",
                context=_parent((message.headers or {}).get(TRACEPARENT)),
                kind=SpanKind.CONSUMER,
                start_time=started,
                attributes=_messaging(
                    "process", queue, message.routing_key or "", message.message_id or ""
                ),
            )

    def poisoned(self, message: AbstractIncomingMessage, reason: str) -> None:
        """The message could not be handled: its span says so, and why."""
        from opentelemetry.trace import Status, StatusCode

        self._spans[id(message)].set_status(Status(StatusCode.ERROR, reason[:500]))

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """While the batch is handled, `cause_of(message)` names the message's span."""
        token = _handling.set({key: traceparent_of(span) for key, span in self._spans.items()})
        try:
            yield
        finally:
            _handling.reset(token)

    def end(self, error: BaseException | None = None) -> None:
        _end_all(self._spans.values(), error)


def cause_of(message: object) -> str | None:
    """The traceparent of the CONSUMER span a message is being handled in; None untraced."""
    if not ENABLED:
        return None
    spans = _handling.get()
    return None if spans is None else spans.get(id(message))
