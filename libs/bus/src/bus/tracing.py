"""OpenTelemetry tracing across HTTP and Kafka hops; off unless OTEL_TRACES_EXPORTER says otherwise.

The outbox would break a trace (the relay publishes later, from another task), so the trace
context is written into each outbox row's headers and re-attached when the relay publishes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

TRACE_HEADERS = ("traceparent", "tracestate")


def setup_tracing(service: str, exporter: str) -> None:
    """Install the global tracer provider: `none` (default), `otlp` (OTEL_EXPORTER_OTLP_* env) or `console`."""
    if exporter == "none":
        return
    span_exporter: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    elif exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        raise ValueError(f"unknown OTEL_TRACES_EXPORTER {exporter!r}: use none, otlp or console")
    provider = TracerProvider(resource=Resource.create({"service.name": f"switchboard-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)


def current_trace_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in TRACE_HEADERS}


@contextmanager
def attached(headers: Mapping[str, str]) -> Iterator[None]:
    """Make the trace context stored in `headers` current for the block."""
    token = context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def consuming(headers: Mapping[str, str], topic: str) -> Iterator[None]:
    """A consumer span for one message of a batch, in the trace its producer started (from `headers`).

    FastStream's telemetry middleware gives a batch one consumer span in a trace of its own; without
    this a request's trace would stop at a batch subscriber. Attribute names as FastStream's own
    (OpenTelemetry messaging semantic conventions).
    """
    parent = propagate.extract(dict(headers)) if "traceparent" in headers else None
    with trace.get_tracer("bus").start_as_current_span(
        f"{topic} process",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation": "process",
            "messaging.destination_publish.name": topic,
        },
    ):
        yield
