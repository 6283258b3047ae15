"""Prometheus metrics of the campaigns service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CAMPAIGNS_RUNNING = Gauge("switchboard_campaigns_running", "Campaigns in status running.")
CALLS_PLACED = Counter(
    "switchboard_calls_placed_total", "Campaign call attempts dispatched (PlaceCall commands committed)."
)
RATE_LIMITED = Counter(
    "switchboard_campaign_dials_rate_limited_total", "Campaign dials refused upstream with 429 (re-queued)."
)
