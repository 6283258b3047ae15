"""What the callee said, as rules: opt-outs, callbacks they asked for, and retries decided by the
post-call analysis (`AnalysisRule`). Pure functions, no I/O; clocks are passed in.

Which rule wins after an attempt (`after_call`), first match:
1. the callee opted out during the call: `opted_out`, final;
2. a callback is owed: `scheduled` at the asked time (an extra attempt, not a retry);
3. an analysis rule matches: `finish` ends the recipient with the call's status; `retry` calls
   again after its delay while `retry_count` allows (it counts as a retry);
4. otherwise the telephony outcome's rule (`domain.decide_outcome`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contracts.campaigns import AnalysisRule

_FOLLOW_UP_NAMESPACE = uuid.UUID("0c5f0a63-7d3e-4f55-9a0e-3a9b7b2d51c4")

OPTED_OUT_REASON = "Opted out during the call"


@dataclass(frozen=True)
class CalleeDecision:
    """What to do with a recipient after its attempt, when the callee or the analysis decides.

    `status` is a final status, or `scheduled` with `next_attempt_at`; `counts_as_retry` says
    whether it uses one of the campaign's `retry_count` retries."""

    status: str
    reason: str | None
    next_attempt_at: datetime | None = None
    counts_as_retry: bool = False


def matching_rule(rules: Sequence[AnalysisRule], data_collection: Mapping[str, Any]) -> AnalysisRule | None:
    """The first rule whose field's collected value equals its value (as text, case-insensitively;
    a data-collection result given as `{"value": ...}` is read through)."""
    for rule in rules:
        if rule.field not in data_collection:
            continue
        value = data_collection[rule.field]
        if isinstance(value, Mapping):
            value = value.get("value")
        if value is None:
            continue
        if str(value).strip().lower() == rule.value.strip().lower():
            return rule
    return None


def after_call(
    *,
    call_status: str,
    opted_out: bool,
    callback_pending: bool,
    callback_at: datetime | None,
    rules: Sequence[AnalysisRule],
    data_collection: Mapping[str, Any],
    retries_used: int,
    retry_count: int,
    may_retry: bool,
    now: datetime,
    delay_scale: float = 1.0,
) -> CalleeDecision | None:
    """The decision the callee's words or the analysis make (see the module docstring); None when
    the telephony outcome's own retry rule applies."""
    if opted_out:
        return CalleeDecision("opted_out", OPTED_OUT_REASON)
    if callback_pending and callback_at is not None and may_retry:
        return CalleeDecision(
            "scheduled", f"Callback requested for {callback_at.isoformat()}", max(callback_at, now)
        )
    rule = matching_rule(rules, data_collection)
    if rule is None:
        return None
    said = f"{rule.field} = {rule.value}"
    final = call_status if call_status in ("completed", "voicemail") else "completed"
    if rule.action == "finish":
        return CalleeDecision(final, f"Ended by the analysis: {said}")
    if may_retry and retries_used < retry_count:
        at = now + timedelta(seconds=rule.delay_s * delay_scale)
        return CalleeDecision("scheduled", f"Retry asked by the analysis: {said}", at, counts_as_retry=True)
    return CalleeDecision(final, f"Analysis asked for a retry ({said}), none left")


def callback_time(callback_at_unix: int, now: datetime) -> datetime:
    """When a callback is dialled at the earliest: the time asked, or now when that has passed."""
    asked = datetime.fromtimestamp(callback_at_unix, now.tzinfo)
    return max(asked, now)


def follow_up_message_id(conversation_id: str) -> str:
    """The PlaceCall `message_id` of a single call's follow-up: one per conversation, so telephony
    dials it at most once however often the callback is asked for or the tick runs."""
    return uuid.uuid5(_FOLLOW_UP_NAMESPACE, conversation_id).hex
