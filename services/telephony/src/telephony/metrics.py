"""Business metrics of the telephony service (Prometheus)."""

from prometheus_client import Counter

CALLS_PLACED = Counter("switchboard_calls_placed_total", "Calls ElevenLabs accepted to dial.", ["provider"])
DIALS_FAILED = Counter("switchboard_dials_failed_total", "Dials refused or not placed.", ["status_code"])
CALLS_ENDED = Counter(
    "switchboard_calls_ended_total", "Calls that reached a final status.", ["status", "source"]
)
