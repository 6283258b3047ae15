"""Prometheus metrics of the campaigns service.

They live in their own registry (served next to the default one by `/metrics`), so that every
service can be imported into one process (the integration tests) without a duplicate-timeseries
error. One metric name has one meaning: calls ElevenLabs accepted are telephony's
`switchboard_calls_placed_total`; what campaigns counts is attempts it dispatched.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

CAMPAIGNS_RUNNING = Gauge("switchboard_campaigns_running", "Campaigns in status running.", registry=REGISTRY)
ATTEMPTS_DISPATCHED = Counter(
    "switchboard_campaign_attempts_dispatched_total",
    "Campaign call attempts dispatched (PlaceCall commands committed).",
    registry=REGISTRY,
)
HELD = Counter(
    "switchboard_campaign_recipients_held_total",
    "Due campaign recipients held back (not dialled, not dropped), by the rule that held them: "
    "quiet_hours, calling_window, frequency_cap, campaign_daily_cap, caller_id_cap.",
    ["reason"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "switchboard_campaign_dials_rate_limited_total",
    "Campaign dials refused upstream with 429 (re-queued, not failed).",
    registry=REGISTRY,
)
