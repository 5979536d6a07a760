"""The plumbing of `make bench-tracing`, without running a benchmark: its two variants and
the sink that takes the traced variant's spans."""

from __future__ import annotations

import subprocess
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from bench.ab import ROOT, tracing_variants
from bench.otlp_sink import otlp_sink


def test_the_variants_are_this_checkout_untraced_and_traced_to_the_sink() -> None:
    variants = tracing_variants("http://127.0.0.1:4318")

    assert variants == {
        "tracing off": (ROOT, {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}),  # even if the shell set it
        "tracing on": (ROOT, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}),
    }


def test_the_sink_takes_what_the_sdks_exporter_sends() -> None:
    tracer = TracerProvider().get_tracer("bench")
    spans: list[ReadableSpan] = []
    for n in range(3):
        span = tracer.start_span(f"publish {n}")
        span.end()
        assert isinstance(span, ReadableSpan)  # the SDK's spans are, once ended
        spans.append(span)

    with otlp_sink() as sink:
        exporter = OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")
        results = [exporter.export([span]) for span in spans]
        exporter.shutdown()  # type: ignore[no-untyped-call]

    assert results == [SpanExportResult.SUCCESS] * 3
    assert sink.exports == 3
    assert sink.received_bytes > 0


def test_the_ab_bench_tells_how_to_measure_tracing() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "bench.ab", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert shown.returncode == 0, shown.stderr
    assert "--tracing" in shown.stdout
