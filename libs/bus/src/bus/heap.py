"""Keep full garbage collections short in a long-running service.

A service's heap after start-up is mostly immortal: modules, pydantic and SQLAlchemy metadata,
OpenTelemetry and FastAPI machinery. CPython's full (generation 2) collection walks all of it
anyway, which here took ~100 ms and stalled every request and consumer in flight: it was the
whole p99 tail of the mid-call tools (bench/webhook_overhead.py). Freezing that heap once,
after start-up, moves it out of the collector's sight; later collections only walk what
requests allocate.
"""

from __future__ import annotations

import gc

from prometheus_client import Gauge

FROZEN_OBJECTS = Gauge(
    "switchboard_gc_frozen_objects", "Objects moved out of the collector's sight at start-up."
)


def freeze_startup_heap() -> None:
    """Call once, after start-up finished (the bus and its consumers are running)."""
    # Collect first so start-up garbage is freed rather than frozen forever.
    gc.collect()
    gc.freeze()
    FROZEN_OBJECTS.set(gc.get_freeze_count())
