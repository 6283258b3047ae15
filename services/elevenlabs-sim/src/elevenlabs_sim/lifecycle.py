"""Simulated outbound calls: the conversation record, its lifecycle task and post-call webhooks.

The outcome of a call is decided by the LAST DIGIT of ``to_number`` (see ``OUTCOMES``). Each call
runs as an asyncio task in the app's event loop (``CallTracker.tasks``), cancelled on shutdown and
on ``POST /_sim/reset``. Timings come from ``SimState.config`` at each step, so ``POST /_sim/config``
affects calls already in flight.

Timeline: dial → ``initiated`` (ringing for ``ring_ms``) → either ``failed`` (busy / no answer /
failed: a ``call_initiation_failure`` webhook) or ``in-progress`` for ``call_duration_ms`` →
``processing`` for ``processing_ms`` → ``done`` (a ``post_call_transcription`` webhook, plus
``post_call_audio`` when "audio" is among the configured events). A call counts as in progress
(for ``max_concurrent_calls``) from the dial until it ends (failure, or the end of the talk time).

At the start of the talk time the agent's webhook tools are called one after the other
(``tool_invocation.py``; runtime config ``invoke_tools``); the talk time ends ``call_duration_ms``
after the answer, or when the last tool call returns if that is later.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from elevenlabs_sim import openapi, tool_invocation
from elevenlabs_sim.signing import SIGNATURE_HEADER, signature_header
from elevenlabs_sim.state import JSON, CallTracker, Delivery, Record, SimState, now_unix


@dataclass(frozen=True)
class Outcome:
    name: str
    answered: bool
    failure_reason: str | None = None  # call_initiation_failure ``failure_reason``
    deliver_webhook: bool = True


_COMPLETED = Outcome("completed", answered=True)
OUTCOMES: dict[str, Outcome] = {
    **{d: _COMPLETED for d in "01234"},
    "5": Outcome("busy", answered=False, failure_reason="busy"),
    "6": Outcome("no_answer", answered=False, failure_reason="no-answer"),
    "7": Outcome("voicemail", answered=True),
    "8": Outcome("failed", answered=False, failure_reason="unknown"),
    "9": Outcome("lost_webhook", answered=True, deliver_webhook=False),
}

# Failure details per reason: (Twilio CallStatus, SIP status code, SIP reason phrase).
_FAILURES: dict[str, tuple[str, int, str]] = {
    "busy": ("busy", 486, "Busy Here"),
    "no-answer": ("no-answer", 480, "Temporarily Unavailable"),
    "unknown": ("failed", 500, "Server Internal Error"),
}
DEFAULT_EVENTS = ["transcript", "call_initiation_failure"]
_DEFAULT_FIRST_MESSAGE = "Hello! How can I help you today?"
_FAKE_AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00simulated-audio"


_CARRIER_FAILURE = Outcome("failed", answered=False, failure_reason="unknown")


def outcome_for(to_number: str) -> Outcome:
    return OUTCOMES.get(to_number[-1:], _COMPLETED)


def _substitute(text: str, variables: dict[str, Any]) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(variables[name]) if name in variables else match.group(0)

    return re.sub(r"\{\{\s*([\w.]+)\s*\}\}", repl, text)


_PLACEHOLDER = re.compile(r"\{\{\s*([\w.\-]+)\s*\}\}")


def missing_variables(agent: Record, client_data: JSON) -> str | None:
    """ElevenLabs' reason for failing a conversation whose agent needs variables nobody supplied,
    e.g. "Missing required dynamic variables in first message: {'order_id'}"; None when all are there.
    Supplied = the call's dynamic variables plus the agent's placeholder defaults; system__ ones are
    always there. Tools' variables are checked last ("in tools")."""
    config = (agent.data.get("conversation_config") or {}).get("agent") or {}
    defaults = (config.get("dynamic_variables") or {}).get("dynamic_variable_placeholders") or {}
    supplied = set(client_data.get("dynamic_variables") or {}) | set(defaults)
    override = ((client_data.get("conversation_config_override") or {}).get("agent") or {}).get(
        "first_message"
    )
    places = [
        ("first message", str(override or config.get("first_message") or "")),
        ("prompt", str((config.get("prompt") or {}).get("prompt") or "")),
    ]
    for where, text in places:
        names = {n for n in _PLACEHOLDER.findall(text) if not n.startswith("system__")} - supplied
        if names:
            listed = ", ".join(repr(name) for name in sorted(names))  # Python's set repr, as upstream
            return f"Missing required dynamic variables in {where}: {{{listed}}}"
    return None


def _first_message(agent: Record, client_data: JSON) -> str:
    override = ((client_data.get("conversation_config_override") or {}).get("agent") or {}).get(
        "first_message"
    )
    configured = ((agent.data.get("conversation_config") or {}).get("agent") or {}).get("first_message")
    text = override or configured or _DEFAULT_FIRST_MESSAGE
    return _substitute(str(text), client_data.get("dynamic_variables") or {})


# --- conversation shapes -------------------------------------------------------------------


def conversation_response(record: Record) -> JSON:
    """``GetConversationResponseModel`` (also the ``data`` of ``post_call_transcription``)."""
    data = {k: copy.deepcopy(v) for k, v in record.data.items() if k != "sim"}
    data["conversation_id"] = record.id
    return openapi.with_defaults("GetConversationResponseModel", data)


def conversation_summary(record: Record) -> JSON:
    data = record.data
    analysis = data.get("analysis") or {}
    return {
        "agent_id": data["agent_id"],
        "agent_name": data.get("agent_name"),
        "branch_id": data.get("branch_id"),
        "version_id": None,
        "conversation_id": record.id,
        "start_time_unix_secs": data["metadata"]["start_time_unix_secs"],
        "call_duration_secs": data["metadata"]["call_duration_secs"],
        "message_count": len(data["transcript"]),
        "status": data["status"],
        "termination_reason": data["metadata"].get("termination_reason", ""),
        "call_successful": analysis.get("call_successful", "unknown"),
        "transcript_summary": analysis.get("transcript_summary"),
        "call_summary_title": analysis.get("call_summary_title"),
        "main_language": data["metadata"].get("main_language"),
        "conversation_initiation_source": "unknown",
        "direction": "outbound",
        "rating": None,
        "tag_ids": [],
    }


def _phone_call(provider: str, phone: Record, to_number: str, call_id: str) -> JSON:
    common = {
        "direction": "outbound",
        "phone_number_id": phone.id,
        "agent_number": phone.data["phone_number"],
        "external_number": to_number,
    }
    if provider == "twilio":
        return {**common, "type": "twilio", "stream_sid": "MZ" + call_id[2:], "call_sid": call_id}
    return {
        **common,
        "type": "sip_trunking",
        "call_id": call_id,
        "call_sid": call_id,
        "sip_header_dynamic_variables": {},
    }


# --- starting a call -----------------------------------------------------------------------


def start_call(
    state: SimState, *, provider: str, agent: Record, phone: Record, body: JSON
) -> tuple[str, str]:
    """Create the conversation, log the dial and spawn the lifecycle; returns (conversation_id, call id)."""
    to_number: str = body["to_number"]
    carrier = state.config.carrier_answers.get(to_number)
    outcome = _CARRIER_FAILURE if carrier is not None else outcome_for(to_number)
    conversation_id = state.new_id("conv")
    call_id = state.new_call_sid() if provider == "twilio" else state.new_sip_call_id()
    client_data: JSON = copy.deepcopy(body.get("conversation_initiation_client_data") or {})
    started = time.time()
    metadata: JSON = {
        "start_time_unix_secs": int(started),
        "accepted_time_unix_secs": None,
        "call_duration_secs": 0,
        "cost": 0,
        "cost_fiat": None,
        "termination_reason": "",
        "error": None,
        "main_language": "en",
        "phone_call": _phone_call(provider, phone, to_number, call_id),
        "conversation_initiation_source": "unknown",
    }
    data: JSON = {
        "agent_id": agent.id,
        "agent_name": agent.data.get("name", ""),
        "status": "initiated",
        "user_id": client_data.get("user_id"),
        "branch_id": client_data.get("branch_id"),
        "version_id": None,
        "metadata": metadata,
        "analysis": None,
        "conversation_initiation_client_data": client_data,
        "has_audio": False,
        "has_user_audio": False,
        "has_response_audio": False,
        "has_auxiliary_audio": False,
        "transcript": [],
        "sim": {
            "provider": provider,
            "phone_number_id": phone.id,
            "to_number": to_number,
            "outcome": outcome.name,
            "carrier": carrier,
        },
    }
    record = state.add(state.conversations, conversation_id, data)
    agent.data["last_call_time_unix_secs"] = int(started)

    tracker = state.calls
    tracker.dials_by_number[to_number] = tracker.dials_by_number.get(to_number, 0) + 1
    tracker.in_progress += 1
    tracker.max_concurrent_observed = max(tracker.max_concurrent_observed, tracker.in_progress)
    entry: JSON = {
        "conversation_id": conversation_id,
        "call_id": call_id,
        "to_number": to_number,
        "agent_id": agent.id,
        "phone_number_id": phone.id,
        "provider": provider,
        "outcome": outcome.name,
        "status": "initiated",
        "started_at": started,
        "answered_at": None,
        "ended_at": None,
        "request": copy.deepcopy(body),
        "webhooks": [],
        "settled": False,  # True once the call ended and its webhooks (retries included) are sent
    }
    tracker.calls[conversation_id] = entry
    task = asyncio.get_running_loop().create_task(
        _run(state, tracker, record, entry, outcome), name=f"call:{conversation_id}"
    )
    tracker.tasks.add(task)
    task.add_done_callback(tracker.tasks.discard)
    return conversation_id, call_id


def _set_status(record: Record, entry: JSON, status: str) -> None:
    record.data["status"] = status
    entry["status"] = status
    record.updated_at = now_unix()


def _end_call(tracker: CallTracker, entry: JSON) -> None:
    if entry["ended_at"] is None:
        entry["ended_at"] = time.time()
        tracker.in_progress -= 1


async def _run(state: SimState, tracker: CallTracker, record: Record, entry: JSON, outcome: Outcome) -> None:
    try:
        await asyncio.sleep(state.config.ring_ms / 1000)
        if not outcome.answered:
            _end_call(tracker, entry)
            _fail(record, entry, outcome)
            await _deliver_event(
                state, tracker, record, "call_initiation_failure", _failure_data(record, outcome)
            )
            return
        agent = state.agents.get(record.data["agent_id"])
        client_data = record.data["conversation_initiation_client_data"]
        missing = missing_variables(agent, client_data) if agent else None
        if missing is not None:
            # The phone rang and was answered; the conversation cannot start.
            _end_call(tracker, entry)
            record.data["metadata"]["termination_reason"] = missing
            record.data["metadata"]["error"] = {"code": 1008, "reason": missing}
            _set_status(record, entry, "failed")
            await _deliver_event(
                state, tracker, record, "post_call_transcription", conversation_response(record)
            )
            return
        first = _first_message(agent, client_data) if agent else ""
        entry["answered_at"] = time.time()
        record.data["metadata"]["accepted_time_unix_secs"] = int(entry["answered_at"])
        record.data["transcript"] = [{"role": "agent", "message": first, "time_in_call_secs": 0}]
        _set_status(record, entry, "in-progress")
        tool_turns: list[JSON] = []
        if agent is not None and state.config.invoke_tools:
            tool_turns = await tool_invocation.invoke_tools(state, record, agent, entry["answered_at"])
        # Talk time counts from the answer; slow tools may make the call longer than configured.
        talked = time.time() - entry["answered_at"]
        await asyncio.sleep(max(state.config.call_duration_ms / 1000 - talked, 0))
        _end_call(tracker, entry)
        record.data["metadata"]["call_duration_secs"] = round(entry["ended_at"] - entry["answered_at"])
        _set_status(record, entry, "processing")
        await asyncio.sleep(state.config.processing_ms / 1000)
        _complete(state, record, outcome, first, tool_turns)
        _set_status(record, entry, "done")
        if not outcome.deliver_webhook:
            entry["webhooks"].append("suppressed")
            return
        await _deliver_event(state, tracker, record, "post_call_transcription", conversation_response(record))
        await _deliver_event(
            state,
            tracker,
            record,
            "post_call_audio",
            {
                "agent_id": record.data["agent_id"],
                "conversation_id": record.id,
                "full_audio": base64.b64encode(_fake_audio(state.config.audio_bytes)).decode(),
            },
        )
    finally:
        _end_call(tracker, entry)
        entry["settled"] = True


def _fake_audio(size: int) -> bytes:
    if size <= len(_FAKE_AUDIO):
        return _FAKE_AUDIO
    frames = bytes(range(256)) * (size // 256 + 1)
    return (_FAKE_AUDIO + frames)[:size]


def _padding_turns(count: int, duration: int) -> list[JSON]:
    """A long conversation's middle: `count` turns of about 2 KB each, user and agent in turn."""
    line = "Could you go over the details once more, please? I want to be sure I have them right. "
    return [
        {
            "role": "user" if i % 2 == 0 else "agent",
            "message": f"[{i}] " + line * 23,
            "time_in_call_secs": min(i, duration),
        }
        for i in range(count)
    ]


_SIP_PHRASES = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    480: "Temporarily Unavailable",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    500: "Server Internal Error",
    503: "Service Unavailable",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
}


def _failure_details(record: Record, outcome: Outcome) -> tuple[str, str, int, str]:
    """(failure_reason, Twilio CallStatus, SIP status code, SIP reason phrase) of a failed call."""
    reason = outcome.failure_reason or "unknown"
    carrier = record.data["sim"].get("carrier")
    if carrier is None:
        return (reason, *_FAILURES[reason])
    code = int(carrier["sip_status_code"])
    call_status = carrier.get("call_status") or "failed"
    return reason, call_status, code, _SIP_PHRASES.get(code, "Unknown")


def _fail(record: Record, entry: JSON, outcome: Outcome) -> None:
    reason, _, sip_code, sip_reason = _failure_details(record, outcome)
    record.data["metadata"]["termination_reason"] = f"Call initiation failed: {reason}"
    record.data["metadata"]["error"] = {"code": sip_code, "reason": sip_reason}
    _set_status(record, entry, "failed")


def _failure_data(record: Record, outcome: Outcome) -> JSON:
    reason, call_status, sip_code, sip_reason = _failure_details(record, outcome)
    sim = record.data["sim"]
    phone_call = record.data["metadata"]["phone_call"]
    metadata: JSON
    if sim["provider"] == "twilio":
        metadata = {
            "type": "twilio",
            "body": {
                "CallSid": phone_call["call_sid"],
                "AccountSid": "AC" + "0" * 32,
                "CallStatus": call_status,
                "Direction": "outbound-api",
                "From": phone_call["agent_number"],
                "To": sim["to_number"],
                "SipResponseCode": str(sip_code),
                "ApiVersion": "2010-04-01",
            },
        }
    else:
        metadata = {
            "type": "sip",
            "body": {
                "from_number": phone_call["agent_number"],
                "to_number": sim["to_number"],
                "sip_status_code": sip_code,
                "sip_status": sip_reason,
                "error_reason": sip_reason,
                "call_sid": phone_call["call_sid"],
            },
        }
    return {
        "agent_id": record.data["agent_id"],
        "conversation_id": record.id,
        "failure_reason": reason,
        "metadata": metadata,
    }


def _complete(state: SimState, record: Record, outcome: Outcome, first: str, tool_turns: list[JSON]) -> None:
    data = record.data
    duration = data["metadata"]["call_duration_secs"]
    if outcome.name == "voicemail":
        data["transcript"] = [
            {
                "role": "user",
                "message": "The person you are calling is not available. Please leave a message after the tone.",
                "time_in_call_secs": 0,
            },
            {"role": "agent", "message": first, "time_in_call_secs": max(duration - 1, 0)},
            *tool_turns,
        ]
        data["metadata"]["termination_reason"] = "voicemail_detected"
        value, successful = "voicemail", "failure"
        summary = "The call reached voicemail; the agent left a message."
        title = "Voicemail"
    else:
        data["transcript"] = [
            {"role": "agent", "message": first, "time_in_call_secs": 0},
            *tool_turns,
            *_padding_turns(state.config.transcript_padding_turns, duration),
            {
                "role": "user",
                "message": "Yes, that works for me.",
                "time_in_call_secs": max(duration // 2, 0),
            },
            {"role": "agent", "message": "Great, thank you. Goodbye!", "time_in_call_secs": duration},
        ]
        data["metadata"]["termination_reason"] = "end_call tool was called."
        value, successful = state.config.answered_outcome, "success"
        summary = f"The agent called the customer; outcome: {value}."
        title = "Outbound call"
    # Like ElevenLabs: a result per evaluation criterion and per data collection item the agent
    # defines (platform_settings.evaluation.criteria, platform_settings.data_collection).
    agent = state.agents.get(data.get("agent_id") or "")
    platform = (agent.data.get("platform_settings") or {}) if agent is not None else {}
    criteria = (platform.get("evaluation") or {}).get("criteria") or []
    collected = {
        item_id: {
            "data_collection_id": item_id,
            "value": f"{item_id} of {data['sim']['to_number']}",
            "json_schema": schema,
            "rationale": "Simulated value named after the item and the dialled number.",
        }
        for item_id, schema in (platform.get("data_collection") or {}).items()
    }
    forced = {
        **state.config.data_collection_values.get("*", {}),
        **state.config.data_collection_values.get(data["sim"]["to_number"], {}),
    }
    for item_id, forced_value in forced.items():
        collected[item_id] = {
            "data_collection_id": item_id,
            "value": forced_value,
            "json_schema": {"type": "string"},
            "rationale": "Set by the test (data_collection_values).",
        }
    if "outcome" in forced:
        value = forced["outcome"]
    data["analysis"] = {
        "call_successful": successful,
        "transcript_summary": summary,
        "call_summary_title": title,
        "evaluation_criteria_results": {
            c["id"]: {
                "criteria_id": c["id"],
                "result": successful,
                "rationale": "Simulated as the call went.",
            }
            for c in criteria
            if isinstance(c, dict) and c.get("id")
        },
        "data_collection_results": {
            "outcome": {
                "data_collection_id": "outcome",
                "value": value,
                "json_schema": {"type": "string", "description": "Outcome of the call"},
                "rationale": "Simulated outcome chosen by the last digit of the dialled number.",
            },
            **{k: v for k, v in collected.items() if k != "outcome"},
        },
    }
    data["has_audio"] = data["has_user_audio"] = data["has_response_audio"] = True


# --- webhooks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str
    events: list[str]
    headers: dict[str, str]
    retry_enabled: bool = False


# What ElevenLabs retries when a webhook has `retry_enabled` (its Webhooks docs, "Retries"): only
# post_call_transcription deliveries, and only after a 5xx, 429, 408 or no answer at all.
RETRIED_TYPES = frozenset({"post_call_transcription"})


def _retryable(status: int | None) -> bool:
    return status is None or status >= 500 or status in (408, 429)


_EVENT_FOR_TYPE = {
    "post_call_transcription": "transcript",
    "post_call_audio": "audio",
    "call_initiation_failure": "call_initiation_failure",
}


def webhook_target(state: SimState, agent_id: str) -> WebhookTarget | None:
    """``/_sim/config`` webhook_url > the agent's workspace override > the workspace settings."""
    config = state.config
    if config.webhook_url:
        events = config.webhook_events if config.webhook_events is not None else DEFAULT_EVENTS
        return WebhookTarget(config.webhook_url, config.webhook_secret or "", list(events), {})
    settings = state.convai_settings.get("webhooks") or {}
    agent = state.agents.get(agent_id)
    if agent is not None:
        overrides = (agent.data.get("platform_settings") or {}).get("workspace_overrides") or {}
        agent_hooks = overrides.get("webhooks") or {}
        if agent_hooks.get("post_call_webhook_id"):
            settings = agent_hooks
    webhook = state.workspace_webhooks.get(settings.get("post_call_webhook_id") or "")
    if webhook is None or webhook.data.get("is_disabled"):
        return None
    headers = {k: v for k, v in (webhook.data.get("request_headers") or {}).items() if isinstance(v, str)}
    events = settings.get("events") or DEFAULT_EVENTS
    return WebhookTarget(
        webhook.data["webhook_url"],
        webhook.data["secret"],
        list(events),
        headers,
        retry_enabled=bool(webhook.data.get("retry_enabled")),
    )


async def _deliver_event(
    state: SimState, tracker: CallTracker, record: Record, kind: str, data: JSON
) -> None:
    target = webhook_target(state, record.data["agent_id"])
    entry = tracker.calls.get(record.id)
    if target is None or _EVENT_FOR_TYPE[kind] not in target.events:
        return
    timestamp = now_unix()
    body = json.dumps({"type": kind, "event_timestamp": timestamp, "data": data}).encode()
    headers = {
        **target.headers,
        "content-type": "application/json",
        SIGNATURE_HEADER: signature_header(target.secret, body, timestamp),
    }
    delivery = Delivery(conversation_id=record.id, type=kind, url=target.url, headers=headers, body=body)
    tracker.last_delivery.setdefault(record.id, []).append(delivery)
    if entry is not None:
        entry["webhooks"].append(kind)
    if target.retry_enabled and kind in RETRIED_TYPES:
        delays = [ms / 1000 for ms in state.config.webhook_retry_delays_ms]
        await send_delivery(tracker, delivery, retries=len(delays), delays_s=delays)
    else:
        await send_delivery(tracker, delivery, retries=state.config.webhook_retries)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    # post_call_audio arrives with ``transfer-encoding: chunked`` upstream.
    for start in range(0, len(body), 16 * 1024):
        yield body[start : start + 16 * 1024]


async def send_delivery(
    tracker: CallTracker,
    delivery: Delivery,
    *,
    retries: int,
    replay: bool = False,
    delays_s: list[float] | None = None,
) -> JSON:
    """POST one delivery (plus up to ``retries`` retries on failure); returns the last log entry.

    With ``delays_s`` (a webhook's ``retry_enabled`` schedule) retry ``i`` waits ``delays_s[i]`` and
    only retryable failures (``_retryable``) are retried; without, any failure is, after a short
    doubling backoff (the ``webhook_retries`` test knob)."""
    log: JSON = {}
    for attempt in range(retries + 1):
        status: int | None = None
        error: str | None = None
        try:
            content: bytes | AsyncIterator[bytes] = (
                _chunks(delivery.body) if delivery.type == "post_call_audio" else delivery.body
            )
            response = await tracker.http.post(delivery.url, content=content, headers=delivery.headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        log = {
            "id": len(tracker.deliveries) + 1,
            "timestamp": time.time(),
            "conversation_id": delivery.conversation_id,
            "type": delivery.type,
            "url": delivery.url,
            "status_code": status,
            "error": error,
            "attempt": attempt + 1,
            "replay": replay,
            "signature": delivery.headers[SIGNATURE_HEADER],
        }
        tracker.deliveries.append(log)
        if status is not None and 200 <= status < 300:
            break
        if delays_s is not None and not _retryable(status):
            break
        if attempt < retries:
            delay = delays_s[attempt] if delays_s is not None else min(0.05 * 2**attempt, 1.0)
            await asyncio.sleep(delay)  # the retry schedule
    return log


async def shutdown(state: SimState) -> None:
    tasks = state.calls.cancel_tasks()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    await state.calls.close_http()
