"""REST response bodies (api-v1.md): what every route answers, as the OpenAPI document describes it.

Reads are validated against these models on the way out (a field the model lacks never leaves);
writes answer with their command's outcome (`gateway.domain.outcome_of`) or a pending operation,
so for them the model documents the body and the schemathesis run (tests/e2e/test_api_fuzz.py)
checks that every answer conforms. Every 4xx and 5xx is `ErrorBody`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Cursor = str | None


class Out(BaseModel):
    """A response body. Fields beyond the model are kept, not dropped: a route that gains a field
    must never lose it on the way out because its model was not told."""

    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """The contract's error format (api-v1.md 12): exactly these fields."""

    model_config = ConfigDict(extra="forbid")

    success: Literal[False]
    error: str = Field(description="What went wrong, in a few words.")
    detail: Any = Field(
        description="More about it, never empty: a sentence, or for a batch submission the list of bad "
        "recipients.",
    )


class Pending(Out):
    """A write whose outcome took longer than GATEWAY_REPLY_TIMEOUT_S: poll `status_url`."""

    success: Literal[True]
    message: str
    operation_id: str
    status: Literal["pending"]
    status_url: str = Field(description="`/api/v1/operations/{operation_id}`.")


class Done(Out):
    """A delete, cancel, pause or resume that succeeded."""

    success: Literal[True]
    message: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: Every route's error answers; a 429 also carries `Retry-After` (seconds).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Bad request: an invalid cursor, nothing to update"),
    401: _error("No valid API key"),
    404: _error("Not found"),
    413: _error("Body over its route's cap, or a write too large for the message bus"),
    422: _error("Validation error"),
    429: _error("Rate limited (ElevenLabs' concurrency or system limit); see Retry-After"),
    "4XX": _error("Any other client error"),
    "5XX": _error("Server or upstream (ElevenLabs) error"),
}
#: A write may answer 202 with its pending operation.
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": Pending, "description": "Accepted; the outcome is not there yet"},
}


class Health(Out):
    status: Literal["healthy"]
    api_accessible: bool = Field(description="Whether ElevenLabs (or the simulator) answers.")
    version: str


# ---- tools (api-v1.md 3) -----------------------------------------------------------------------


class EcommerceToolsOut(Out):
    products_tool_id: str
    orders_tool_id: str


class ToolCreatedOut(Out):
    tool_id: str
    name: str
    description: str
    type: str


class ToolSummary(Out):
    tool_id: str
    name: str
    type: str


class ToolList(Out):
    tools: list[ToolSummary]
    cursor: Cursor


class ToolOut(Out):
    tool_id: str
    name: str
    description: str
    type: str
    tool_config: dict[str, Any] = Field(description="The tool's config as ElevenLabs returns it.")
    created_at_unix: int


class ToolTokenRotatedOut(Out):
    success: Literal[True]
    message: str
    tool_id: str
    previous_token_valid_until_unix: int | None = Field(
        description="Until when the previous token still works (PROVISIONING_TOOL_TOKEN_GRACE_S)."
    )


# ---- knowledge base (api-v1.md 4) ------------------------------------------------------------


class DocumentCreatedOut(Out):
    document_id: str
    id: str
    name: str
    folder_path: list[Any] | None
    source_type: Literal["text", "url", "file"]
    status: str = Field(description="`processing`: ElevenLabs indexes new documents asynchronously.")


class DocumentSummary(Out):
    id: str
    name: str
    type: str
    status: str
    created_at_unix: int


class DocumentList(Out):
    documents: list[DocumentSummary]
    cursor: Cursor


class DocumentOut(DocumentSummary):
    document_id: str


# ---- agents (api-v1.md 6, 7) -------------------------------------------------------------------


class AgentCreatedOut(Out):
    agent_id: str


class AgentSummaryConfig(Out):
    agent: dict[str, Any] = Field(description="`language` and `first_message`, when set.")


class AgentSummary(Out):
    agent_id: str
    name: str
    conversation_config: AgentSummaryConfig


class AgentList(Out):
    agents: list[AgentSummary]
    cursor: Cursor


class AgentOut(Out):
    agent_id: str
    name: str
    conversation_config: dict[str, Any] = Field(description="As ElevenLabs returns it.")


# ---- e-mail templates and sessions (api-v1.md 5) ---------------------------------------------


class TemplateParameterOut(Out):
    name: str
    description: str
    required: bool


class TemplateOut(Out):
    template_id: str
    name: str
    description: str
    subject_template: str
    body_template: str
    parameters: list[TemplateParameterOut]
    tool_id: str
    created_at: str = Field(description="ISO 8601.")


class TemplateSummary(Out):
    template_id: str
    name: str
    tool_id: str
    created_at: str


class TemplateList(Out):
    templates: list[TemplateSummary]
    count: int
    cursor: Cursor


class CustomerInfoOut(Out):
    name: str | None = None
    email: str | None = None
    phone: str | None = None


class SessionStoredOut(Out):
    success: Literal[True]
    message: str
    conversation_id: str
    customer_info: CustomerInfoOut


class SessionOut(Out):
    conversation_id: str
    customer_info: CustomerInfoOut
    created_at_unix: int


class SessionList(Out):
    sessions: list[SessionOut]
    count: int
    cursor: Cursor


class EmailOut(Out):
    email_id: str
    conversation_id: str
    template_id: str
    to_email: str
    from_email: str | None
    subject: str
    status: Literal["sent", "failed"]
    transport: str | None
    error: str | None
    permanent: bool | None
    at_unix: int


class EmailList(Out):
    emails: list[EmailOut]
    cursor: Cursor


# ---- phone numbers (api-v1.md 8) --------------------------------------------------------------


class PhoneNumberCreatedOut(Out):
    phone_number_id: str


class PhoneNumberSummary(Out):
    phone_number_id: str
    phone_number: str
    label: str
    agent_id: str | None
    provider: Literal["twilio", "sip_trunk"]


class PhoneNumberList(Out):
    phone_numbers: list[PhoneNumberSummary]
    cursor: Cursor


class PhoneNumberOut(PhoneNumberSummary):
    supports_inbound: bool
    supports_outbound: bool


class PhoneNumberUpdatedOut(Out):
    phone_number_id: str
    phone_number: str
    label: str
    agent_id: str | None


# ---- calls (api-v1.md 9) -------------------------------------------------------------------------


class CallPlacedOut(Out):
    success: Literal[True]
    message: str
    conversation_id: str
    call_sid: str | None = Field(default=None, description="Twilio calls.")
    sip_call_id: str | None = Field(default=None, description="SIP trunk calls.")
    ecommerce_enabled: bool | None = None


class CallOut(Out):
    conversation_id: str
    status: str
    provider: Literal["twilio", "sip_trunk"]
    agent_id: str
    phone_number_id: str
    to_number: str
    call_sid: str | None
    sip_call_id: str | None
    duration_seconds: int | None
    outcome: str | None
    summary: str | None
    reason: str | None
    ecommerce_enabled: bool
    campaign_id: str | None
    recipient_id: str | None
    attempt: int | None
    placed_at_unix: int
    ended_at_unix: int | None
    quiet_hours_overridden: bool = Field(
        default=False,
        description="Placed outside the platform's quiet hours because the request said override_quiet_hours.",
    )


class CallList(Out):
    calls: list[CallOut]
    cursor: Cursor


class TranscriptTurn(Out):
    role: str = Field(description="`user` or `agent`.")
    message: str | None
    time_in_call_secs: float | None


class CallWithTranscript(CallOut):
    transcript: list[TranscriptTurn] | None = Field(
        description="Null until the post-call webhook's transcript has arrived whole."
    )
    analysis: dict[str, Any] | None = Field(
        default=None,
        description="The post-call analysis (call_successful, transcript_summary, "
        "data_collection_results, evaluation_criteria_results); null until it came.",
    )


# ---- batch calling (api-v1.md 10) ----------------------------------------------------------------


class JobOut(Out):
    id: str
    name: str
    agent_id: str
    status: str
    phone_number_id: str
    phone_provider: Literal["twilio", "sip_trunk"] | None
    created_at_unix: int
    scheduled_time_unix: int | None
    timezone: str | None
    total_calls_dispatched: int
    total_calls_scheduled: int
    total_calls_finished: int
    retry_count: int
    last_updated_at_unix: int | None = None
    phone_numbers: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The caller-ID pool (phone_number_id first, then phone_number_ids), each with "
        "phone_number_id, dials, answered, answer_rate (answered / dials; null before the first dial) "
        "and daily_cap: a number whose answer rate falls behind may be flagged as spam.",
    )
    max_total_minutes: float | None = Field(default=None, description="Budget of call minutes, if set.")
    call_minutes_used: float = Field(default=0.0, description="Minutes of the campaign's finished calls.")
    report: dict[str, Any] | None = Field(
        default=None,
        description="A submission's answer: counts, each recipient's number as read and its zones, "
        "do-not-call matches.",
    )


class SubmissionCheck(Out):
    """`POST /batch-calling/validate`: what submit would make of a submission; nothing is created."""

    valid: bool
    counts: dict[str, Any]
    problems: Any = Field(description="Each problem by recipient index or spreadsheet row and column.")
    estimate: dict[str, Any] | None = Field(description="The campaign's estimated duration.")


class JobDetail(JobOut):
    agent_name: str | None
    status_reason: str | None


class JobSummary(Out):
    id: str
    name: str
    status: str
    status_reason: str | None = Field(
        default=None,
        description="Why it failed or was paused, or that it completed without reaching anybody.",
    )
    total_calls_scheduled: int
    total_calls_dispatched: int
    total_calls_finished: int


class JobList(Out):
    jobs: list[JobSummary]
    cursor: Cursor


class JobCall(Out):
    recipient_id: str
    to_number: str
    status: str
    conversation_id: str | None
    duration_seconds: int | None
    outcome: str | None
    retry_count: int
    time_zones: list[str]
    reason: str | None
    waiting_reason: str | None = Field(
        default=None,
        description="Why a `scheduled` recipient waits: quiet_hours (the platform's local hours), "
        "calling_window (the campaign's), frequency_cap (attempts per number per rolling 24 h across "
        "campaigns), campaign_daily_cap (the campaign's max_daily_attempts_per_number).",
    )
    next_attempt_at_unix: int | None = Field(
        default=None, description="When a waiting recipient is dialled next."
    )
    position: int | None = None
    name: str | None = None
    email: str | None = None
    dynamic_variables: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] | None = Field(
        default=None,
        description="Every attempt: attempt, to_number, status, conversation_id, started_at_unix, "
        "ended_at_unix, duration_seconds, termination_reason.",
    )
    analysis: dict[str, Any] | None = Field(default=None, description="The last answered call's analysis.")
    callback_at_unix: int | None = Field(
        default=None,
        description="The time the callee asked to be called back at (the callback tool), if they did.",
    )
    callback_requested: str | None = Field(default=None, description="That time as the agent passed it on.")


class JobCallList(Out):
    calls: list[JobCall]
    cursor: Cursor


class DoNotCallOut(Out):
    phone_number: str
    reason: str | None = Field(
        description="The last reason given: adding a listed number again without one keeps it."
    )
    added_at_unix: int = Field(
        description="When the number joined the list: adding it again keeps this date (and `source`)."
    )
    source: Literal["api", "voice"] | None = Field(
        default=None, description="`voice`: the callee opted out during a call (the opt-out tool)."
    )
    conversation_id: str | None = Field(default=None, description="That call, for a `voice` opt-out.")


class DoNotCallList(Out):
    numbers: list[DoNotCallOut]
    cursor: Cursor


# ---- webhooks to the customer's systems (beyond the spec) -------------------------------------------


class WebhookOut(Out):
    webhook_id: str
    url: str
    event_types: list[str]
    description: str | None
    status: str
    disabled_reason: str | None
    consecutive_failures: int | None = None
    failing_since_unix: int | None = None
    created_at_unix: int | None = None


class WebhookCreatedOut(WebhookOut):
    signing_secret: str = Field(description="Shown this once: verifies `Switchboard-Signature`.")


class WebhookList(Out):
    webhooks: list[WebhookOut]
    cursor: Cursor


class DeliveryOut(Out):
    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at_unix: int | None = None
    created_at_unix: int | None = None
    attempt_log: list[dict[str, Any]] | None = Field(
        default=None,
        description="Every attempt: attempt, started_at_ms, duration_ms, status_code, "
        "response_excerpt, error, manual.",
    )


class DeliveryList(Out):
    deliveries: list[DeliveryOut]
    cursor: Cursor


#: A stream of server-sent events (`text/event-stream`), never a JSON body.
EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


# ---- operations and administration ----------------------------------------------------------------


class OperationOut(Out):
    operation_id: str
    type: str = Field(description="The command's type, e.g. `agent.create`.")
    status: Literal["pending", "succeeded", "failed"]
    status_code: int | None = Field(description="The status the write answers with, once done.")
    result: dict[str, Any] | None = Field(description="The body the write answers with, once done.")


class WebhookRegisteredOut(Out):
    success: Literal[True]
    webhook_id: str
    webhook_url: str
    retries_enabled: bool | None = Field(
        default=None,
        description="ElevenLabs accepted turning on its delivery retries (false: a missed transcription "
        "waits for reconciliation and loses its analysis and transcript; register again).",
    )
