"""Prometheus metrics of the campaigns service.

They live in their own registry (served next to the default one by `/metrics`): telephony also
exports `switchboard_calls_placed_total` (calls ElevenLabs accepted), and both services must be
importable into one process (the integration tests) without a duplicate-timeseries error.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

CAMPAIGNS_RUNNING = Gauge("switchboard_campaigns_running", "Campaigns in status running.", registry=REGISTRY)
CALLS_PLACED = Counter(
    "switchboard_calls_placed_total",
    "Campaign call attempts dispatched (PlaceCall commands committed).",
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "switchboard_campaign_dials_rate_limited_total",
    "Campaign dials refused upstream with 429 (re-queued, not failed).",
    registry=REGISTRY,
)
