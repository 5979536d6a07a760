"""A small OTLP/HTTP receiver: the spans a system's processes export, decoded, to inspect.

It accepts what an OpenTelemetry SDK's OTLP/HTTP exporter sends (POST /v1/traces, an
`ExportTraceServiceRequest` in protobuf, maybe gzipped) and keeps every span with the
service name of the process that sent it.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str  # "server", "producer", "consumer", ...
    trace_id: str  # hex, as in a traceparent
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                kind = SpanProto.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_").lower()
                found.append(
                    Span(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        kind=kind,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return found


class Receiver:
    """Every span received so far (thread-safe), and the environment that sends them here."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._spans: list[Span] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process needs to export its spans here within a tenth of a second."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}

    def received(self, body: bytes) -> None:
        spans = spans_of(ExportTraceServiceRequest.FromString(body))
        with self._lock:
            self._spans.extend(spans)

    def spans(self, trace_id: str | None = None) -> list[Span]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], name: str) -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on a free port of the loopback, in a thread of its own, until the
    block ends (this receiver, and the bench's sink that keeps nothing)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """A receiver on a free port, in a thread of its own, until the block ends."""
    with serving(_Handler, "otlp-receiver") as server:
        receiver = Receiver(server.server_address[1])
        server.receiver = receiver  # type: ignore[attr-defined]
        yield receiver


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        receiver.received(body)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a line per export would bury the test's output."""
