"""Events and commands of the tool-webhooks service (what ElevenLabs tells us during and after calls)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from contracts.base import Command, CommandFailed, Event

# The widest conversation id the services store (ElevenLabs' are ~37 characters, `conv_` + 32), and
# the widest `analysis.call_successful` (ElevenLabs' values: success, failure, unknown).
CONVERSATION_ID_MAX_CHARS = 200
CALL_SUCCESSFUL_MAX_CHARS = 20


class PostCallWebhookReceived(Event):
    """A verified ElevenLabs post-call webhook (`post_call_transcription` or `call_initiation_failure`).

    `message_id` is derived from the webhook (type + conversation id), so replays deduplicate.
    """

    type: Literal["post_call_webhook.received"] = "post_call_webhook.received"
    webhook_type: Literal["post_call_transcription", "call_initiation_failure"] = Field(
        description="ElevenLabs webhook type."
    )
    conversation_id: str = Field(description="ElevenLabs conversation id.")
    agent_id: str | None = Field(default=None, description="Agent.")
    event_timestamp: int = Field(
        description="ElevenLabs event time, unix seconds (the time of receipt when the delivery had none)."
    )
    conversation_status: str | None = Field(
        default=None, description="Conversation status (done, failed...)."
    )
    call_duration_secs: int | None = Field(default=None, description="Call duration.")
    termination_reason: str | None = Field(default=None, description="metadata.termination_reason.")
    failure_reason: str | None = Field(
        default=None, description="call_initiation_failure: busy, no-answer or unknown."
    )
    carrier: Literal["sip", "twilio"] | None = Field(
        default=None, description="call_initiation_failure: metadata.type, whose carrier answered."
    )
    sip_status_code: int | None = Field(
        default=None,
        description="call_initiation_failure: the SIP final response (SIP `sip_status_code`, Twilio `SipResponseCode`).",
    )
    carrier_call_status: str | None = Field(
        default=None,
        description="call_initiation_failure: Twilio `CallStatus` (busy, no-answer, failed, canceled).",
    )
    call_successful: str | None = Field(default=None, description="analysis.call_successful.")
    transcript_summary: str | None = Field(default=None, description="analysis.transcript_summary.")
    data_collection: dict[str, Any] = Field(
        default_factory=dict, description="analysis.data_collection_results as id -> value."
    )
    evaluation_criteria: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "analysis.evaluation_criteria_results as id -> {result (success, failure or unknown), rationale}."
        ),
    )


class PostCallTranscriptPart(Event):
    """One slice of a `post_call_transcription`'s transcript, published with its `PostCallWebhookReceived`.

    A transcript can be megabytes, more than one Kafka message may hold, so it travels in parts:
    `transcript_json` of parts 0..`part_count`-1 concatenated in order is the compact JSON array of
    turns `[{"role": "user"|"agent", "message": str|null, "time_in_call_secs": number|null}]`.
    Each part is at most 256 KiB of JSON (less when BUS_MAX_MESSAGE_BYTES is lower). `message_id` is derived from (conversation, part), so a
    replayed delivery deduplicates.
    """

    type: Literal["post_call_webhook.transcript_part"] = "post_call_webhook.transcript_part"
    conversation_id: str = Field(description="ElevenLabs conversation id.")
    part_index: int = Field(ge=0, description="0-based position of this part.")
    part_count: int = Field(ge=1, description="How many parts the transcript has.")
    turn_count: int = Field(ge=0, description="Turns in the whole transcript.")
    transcript_json: str = Field(description="This part's slice of the transcript's JSON text.")


class RegisterPostCallWebhook(Command):
    """Register the workspace post-call webhook at `public_url` and keep its signing secret."""

    type: Literal["post_call_webhook.register"] = "post_call_webhook.register"
    public_url: str = Field(description="Public base URL ending in /api/v1 that reaches tool-webhooks.")


class PostCallWebhookRegistered(Event):
    """The workspace webhook was registered; its secret is stored encrypted by tool-webhooks only."""

    type: Literal["post_call_webhook.registered"] = "post_call_webhook.registered"
    webhook_id: str = Field(description="ElevenLabs workspace webhook id.")
    webhook_url: str = Field(description="URL ElevenLabs posts to.")
    retries_enabled: bool | None = Field(
        default=None,
        description="Whether ElevenLabs accepted turning on its delivery retries for the webhook "
        "(PATCH /v1/workspace/webhooks/{id} with retry_enabled). False: a transcription delivery we "
        "miss is not sent again, and the call's outcome waits for telephony's reconciliation, "
        "without its analysis and transcript; register again to retry. None: from a producer that "
        "predates the field.",
    )


WebhookEvent = Annotated[
    PostCallWebhookReceived | PostCallTranscriptPart | PostCallWebhookRegistered | CommandFailed,
    Field(discriminator="type"),
]
WebhookCommand = Annotated[RegisterPostCallWebhook, Field(discriminator="type")]
