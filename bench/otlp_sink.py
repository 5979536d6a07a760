"""A local OTLP/HTTP endpoint that accepts every export and keeps nothing.

`make bench-tracing` points the traced variant's processes at it: their exporters do all
their work (batching, encoding, sending), while the receiving end costs as little as an
endpoint can (it reads the body and answers 200), so what the comparison shows is the cost
of tracing to the traced system.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.otlp import serving


@dataclass
class Sink:
    """Where it listens, and what it took (to show that spans did flow)."""

    port: int
    exports: int = 0
    received_bytes: int = 0

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def otlp_sink() -> Iterator[Sink]:
    """The sink on a free port of the loopback, in a thread, until the block ends."""
    lock = threading.Lock()

    class Discarding(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the exporter keeps its connection open

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(size)
            with lock:
                sink.exports += 1
                sink.received_bytes += size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")  # an empty ExportTraceServiceResponse
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the bench prints its own lines."""

    with serving(Discarding, "otlp-sink") as server:
        sink = Sink(server.server_address[1])
        yield sink
