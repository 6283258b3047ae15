"""Campaign (batch calling) commands and events. A public interface: other systems may publish the
commands straight onto `switchboard.campaigns.commands` as plain JSON and consume the events.

Large campaigns arrive in chunks: `campaign.submit` carries the definition and the first chunk of
recipients and says how many chunks there are; `campaign.add_recipients` carries the others. The
campaign starts once every chunk has arrived, so no message has to hold 100,000 recipients.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Command, CommandFailed, Event

CampaignStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]
RecipientStatus = Literal[
    "scheduled",
    "dialing",
    "in_progress",
    "completed",
    "no_answer",
    "busy",
    "failed",
    "voicemail",
    "cancelled",
    "skipped_dnc",
    "skipped_duplicate",
    "opted_out",
]
#: Campaign statuses after which a campaign never changes again.
FINAL_CAMPAIGN_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
#: Recipient statuses after which nothing more happens to a recipient. `scheduled` is not among
#: them: it also covers a recipient waiting for a retry. Consumers of `campaign.recipient_updated`
#: and the bulk events use this set rather than a copy of their own.
FINAL_RECIPIENT_STATUSES: frozenset[str] = frozenset(
    {
        "completed",
        "no_answer",
        "busy",
        "failed",
        "voicemail",
        "cancelled",
        "skipped_dnc",
        "skipped_duplicate",
        "opted_out",
    }
)
#: Recipients per `campaign.recipients_staged` / `campaign.recipients_closed` event. An entry is
#: under 1 kB of JSON (a 200-character recipient id, a 64-character number, a conversation id, an
#: outcome, a few zones), so an event stays near 500 kB at worst, below BUS_MAX_MESSAGE_BYTES
#: (1,000,000 by default).
RECIPIENTS_PER_EVENT = 500


# IANA areas whose zones are places (tzdata's regional files). Everything else is refused as a
# campaign `timezone`: abbreviations and POSIX rules (EST, EST5EDT, PST8PDT, GMT, CET), fixed
# offsets (Etc/GMT+5: never any daylight saving) and legacy aliases (US/Eastern, Japan), which never
# equal the region names libphonenumber gives for a number.
REGION_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)
EXPLICIT_UTC = "UTC"


def time_zone_problem(name: str) -> str | None:
    """Why `name` cannot be a campaign `timezone`, or None when it can.

    Accepted: an IANA region ("Area/Location", e.g. America/New_York, Australia/Perth) known to the
    zone database (tzdata), and exactly "UTC": an explicit "no region"; it is never one of a number's
    zones, so it only acts as the zone of numbers whose location is unknown, which is the default.
    """
    # Unknown first: "Mars/Olympus" is no abbreviation, just not a zone at all.
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {name!r}: use an IANA region such as America/New_York"
    area = name.split("/", 1)[0]
    if name != EXPLICIT_UTC and (area not in REGION_AREAS or "/" not in name):
        return (
            f"{name!r} is not an IANA region: abbreviations, fixed offsets and legacy aliases "
            "(EST, GMT, Etc/GMT+5, EST5EDT, US/Eastern) do not follow a place's daylight saving; "
            "use a region such as America/New_York or Australia/Perth"
        )
    return None


class _Value(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CampaignRecipient(_Value):
    """One person to call."""

    recipient_id: str | None = Field(
        default=None, description="Caller-chosen id, unique within the campaign; assigned when absent."
    )
    phone_number: str = Field(description="E.164 number to dial.")
    name: str | None = Field(default=None, description="Customer name (personalisation, e-mails).")
    email: str | None = Field(default=None, description="Customer e-mail (e-mail templates).")
    dynamic_variables: dict[str, Any] = Field(
        default_factory=dict, description="Injected into the conversation."
    )


class CallingWindow(_Value):
    """Hours in the recipient's local time (derived from the number) when calls may be placed."""

    start: str = Field(description="Local start time, HH:MM (24 h).")
    end: str = Field(description="Local end time, HH:MM (24 h); a window may cross midnight.")
    days: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], description="Allowed weekdays, 0 = Monday."
    )


# The outcomes a campaign retries while a recipient has retries left are campaigns' own rule
# (`campaigns.domain.RETRYABLE_OUTCOMES`); each has its delay here.
class RetryDelays(_Value):
    """Seconds to wait before retrying, per outcome."""

    no_answer: int = Field(default=300, ge=0, description="After no answer.")
    busy: int = Field(default=120, ge=0, description="After a busy line.")
    failed: int = Field(default=600, ge=0, description="After a failed call.")
    voicemail: int = Field(default=1800, ge=0, description="After reaching voicemail.")


class CallerIdStats(_Value):
    """One number of a campaign's caller-ID pool and how it is doing: a number whose answer rate
    falls behind the others' may be flagged as spam by carriers."""

    phone_number_id: str = Field(description="The pool's number.")
    dials: int = Field(description="Dials this campaign made from it.")
    answered: int = Field(description="Of those, calls a person answered (outcome `completed`).")
    answer_rate: float | None = Field(description="answered / dials, null before the first dial.")
    daily_cap: int | None = Field(default=None, description="Its cap of dials per rolling 24 h, if any.")


class AnalysisRule(_Value):
    """What to do after an answered call whose post-call analysis has a value: retry after a delay,
    or end the recipient. Rules are read in order; the first whose `field` equals `value` applies
    (compared as text, case-insensitively). Beside the telephony outcomes' retries."""

    field: str = Field(
        default="outcome",
        min_length=1,
        max_length=200,
        description="Data-collection item id of the agent's analysis (`data_collection_results`).",
    )
    value: str = Field(min_length=1, max_length=500, description="Value that triggers the rule.")
    action: Literal["retry", "finish"] = Field(
        description="`retry`: call again after `delay_s` (counts against `retry_count`); `finish`: "
        "end the recipient now, whatever retries remain."
    )
    delay_s: int = Field(default=3600, ge=0, le=30 * 86400, description="Seconds before the retry.")


class CampaignSnapshot(_Value):
    """A campaign and its counters at one moment (counters are consistent with each other)."""

    campaign_id: str = Field(description="Campaign (batch job) id.")
    name: str = Field(description="Campaign name (`call_name`).")
    agent_id: str = Field(description="Agent.")
    phone_number_id: str = Field(description="Calling number.")
    phone_provider: Literal["twilio", "sip_trunk"] | None = Field(default=None, description="Its provider.")
    status: CampaignStatus = Field(description="Campaign status.")
    created_at_unix: int = Field(description="Submission time.")
    scheduled_time_unix: int | None = Field(default=None, description="Start time, if scheduled.")
    timezone: str | None = Field(default=None, description="IANA time zone of `scheduled_time_unix`.")
    retry_count: int = Field(description="Retries per recipient (0-5).")
    total_calls_scheduled: int = Field(description="Recipients in the campaign.")
    total_calls_dispatched: int = Field(description="Recipients dialled at least once.")
    total_calls_finished: int = Field(description="Recipients in a final state.")
    last_updated_at_unix: int = Field(description="When this snapshot was taken.")
    status_reason: str | None = Field(default=None, description="Why it failed or was paused, if so.")
    phone_numbers: list[CallerIdStats] = Field(
        default_factory=list,
        description="The caller-ID pool (`phone_number_id` first, then `phone_number_ids`) with each "
        "number's dials and answer rate; empty for campaigns created before pools existed.",
    )
    max_total_minutes: float | None = Field(default=None, description="Budget of call minutes, if set.")
    call_minutes_used: float = Field(
        default=0.0, description="Minutes of the campaign's finished calls so far (sum of their durations)."
    )


# ---- commands ------------------------------------------------------------------------------


class SubmitCampaign(Command):
    """Create a campaign. Recipients beyond the first chunk follow as `campaign.add_recipients`."""

    type: Literal["campaign.submit"] = "campaign.submit"
    campaign_id: str = Field(description="Id for the campaign, chosen by the submitter (e.g. batch_<uuid>).")
    call_name: str = Field(description="Campaign name.")
    agent_id: str = Field(description="Agent that talks.")
    phone_number_id: str = Field(description="Number calls come from.")
    phone_provider: Literal["twilio", "sip_trunk"] | None = Field(
        default=None, description="Provider of the number; looked up when absent."
    )
    recipients: list[CampaignRecipient] = Field(
        default_factory=list, description="First chunk of recipients."
    )
    recipient_chunks: int = Field(default=1, ge=1, description="Chunks in total, this one included.")
    scheduled_time_unix: int | None = Field(default=None, description="Start time; now when absent.")
    timezone: str | None = Field(
        default=None,
        description=(
            "IANA region (e.g. America/New_York; see `time_zone_problem`). A number whose region "
            "spans several zones is called in this zone when it is one of them, else only while "
            "the calling window is open in all of them."
        ),
    )
    retry_count: int = Field(default=0, ge=0, le=5, description="Retries per recipient.")
    retry_delays: RetryDelays | None = Field(default=None, description="Delay before a retry, per outcome.")
    concurrency_limit: int | None = Field(
        default=None, ge=1, description="Max simultaneous calls of this campaign."
    )
    calling_window: CallingWindow | None = Field(
        default=None,
        description=(
            "Allowed local calling hours. Only narrows the platform's quiet hours "
            "(contracts/data/quiet_hours.yaml: 08:00-21:00 local by default, per country and US state)."
        ),
    )
    phone_number_ids: list[str] = Field(
        default_factory=list,
        description=(
            "More numbers calls may come from besides `phone_number_id` (a caller-ID pool): each dial "
            "prefers a number of the recipient's country and area code, else rotates to the least "
            "used; the provider and E.164 of each come from telephony's phone-number events."
        ),
    )
    phone_number_daily_caps: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "Per pool number (phone_number_id -> cap), at most this many dials per rolling 24 h "
            "(every campaign's dials from it count). When every number is at its cap, recipients wait "
            "(`waiting_reason` `caller_id_cap`)."
        ),
    )
    max_total_minutes: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Budget of call minutes (the sum of the calls' durations). The campaign pauses itself, "
            "with a status reason, when the next dial could exceed it: minutes used plus, for each "
            "call in flight and the next one, the longest call so far (at least "
            "CAMPAIGNS_BUDGET_CALL_ESTIMATE_S)."
        ),
    )
    max_daily_attempts_per_number: int | None = Field(
        default=None,
        ge=1,
        description=(
            "At most this many attempts per number per rolling 24 h in this campaign; only narrows "
            "the platform's cap across every campaign (CAMPAIGNS_MAX_ATTEMPTS_PER_NUMBER_24H)."
        ),
    )
    ecommerce_platform: Literal["woocommerce", "shopify"] | None = Field(
        default=None, description="Store platform."
    )
    ecommerce_credentials_encrypted: str | None = Field(
        default=None, description="Fernet token of the store credentials JSON (SWITCHBOARD_SECRET_KEY)."
    )
    sender_email: str | None = Field(default=None, description="From address for e-mails during these calls.")
    analysis_rules: list[AnalysisRule] = Field(
        default_factory=list,
        max_length=50,
        description="Retries or endings decided by post-call analysis values, first match wins.",
    )


class AddCampaignRecipients(Command):
    """Another chunk of a submitted campaign's recipients."""

    type: Literal["campaign.add_recipients"] = "campaign.add_recipients"
    campaign_id: str = Field(description="Campaign id.")
    chunk_index: int = Field(
        ge=1, description="1-based index of this chunk after the one in campaign.submit."
    )
    recipients: list[CampaignRecipient] = Field(description="The recipients of this chunk.")


class CancelCampaign(Command):
    """Stop a campaign: pending calls are cancelled, calls in progress finish."""

    type: Literal["campaign.cancel"] = "campaign.cancel"
    campaign_id: str = Field(description="Campaign id.")


class PauseCampaign(Command):
    """Stop dialling new calls until resumed; calls in progress finish."""

    type: Literal["campaign.pause"] = "campaign.pause"
    campaign_id: str = Field(description="Campaign id.")


class ResumeCampaign(Command):
    """Resume a paused campaign."""

    type: Literal["campaign.resume"] = "campaign.resume"
    campaign_id: str = Field(description="Campaign id.")


DoNotCallSource = Literal["api", "voice"]


class AddDoNotCall(Command):
    """Never call this number from a campaign (an opt-out). With `conversation_id` (an opt-out said
    during a call: `source` "voice"), the recipient of that call ends as `opted_out` and a follow-up
    call it asked for is dropped."""

    type: Literal["do_not_call.add"] = "do_not_call.add"
    phone_number: str = Field(description="E.164 number.")
    reason: str | None = Field(default=None, description="Why (e.g. opted out during a call).")
    source: DoNotCallSource | None = Field(
        default=None, description="Who asked: `api` (an operator) or `voice` (the callee, during a call)."
    )
    conversation_id: str | None = Field(default=None, description="The call in which the callee opted out.")
    campaign_id: str | None = Field(default=None, description="That call's campaign, if any.")
    recipient_id: str | None = Field(default=None, description="That call's campaign recipient, if any.")


class ScheduleCallback(Command):
    """The callee asked to be called back at a time (the callback agent tool). One extra attempt
    at `callback_at_unix` (within the campaign's calling window), not counted against
    `retry_count`; outside a campaign, one follow-up call with the same agent, number and
    variables. A later request for the same conversation replaces the earlier one; the follow-up
    is dialled once."""

    type: Literal["campaign.schedule_callback"] = "campaign.schedule_callback"
    conversation_id: str = Field(description="The call in which the callback was asked for.")
    to_number: str = Field(description="E.164 number to call back.")
    callback_at_unix: int = Field(ge=0, description="When, unix seconds (the callee's local time resolved).")
    requested: str = Field(default="", max_length=500, description="The time as the agent passed it on.")
    time_zone: str | None = Field(default=None, description="IANA zone the time was read in.")
    campaign_id: str | None = Field(default=None, description="The call's campaign, if any.")
    recipient_id: str | None = Field(default=None, description="The call's campaign recipient, if any.")
    agent_id: str | None = Field(
        default=None, description="Agent of the call (follow-ups outside campaigns)."
    )
    phone_number_id: str | None = Field(default=None, description="Calling number (follow-ups).")
    provider: Literal["twilio", "sip_trunk"] | None = Field(default=None, description="Its provider.")
    dynamic_variables: dict[str, Any] = Field(
        default_factory=dict, description="The call's dynamic variables (follow-ups reuse them)."
    )
    customer_name: str | None = Field(default=None, description="Customer name of the call, if given.")
    customer_email: str | None = Field(default=None, description="Customer e-mail of the call, if given.")


class RemoveDoNotCall(Command):
    """Allow campaign calls to this number again."""

    type: Literal["do_not_call.remove"] = "do_not_call.remove"
    phone_number: str = Field(description="E.164 number.")


CampaignCommand = Annotated[
    SubmitCampaign
    | AddCampaignRecipients
    | CancelCampaign
    | PauseCampaign
    | ResumeCampaign
    | AddDoNotCall
    | RemoveDoNotCall
    | ScheduleCallback,
    Field(discriminator="type"),
]

# ---- events --------------------------------------------------------------------------------


class CampaignUpdated(Event):
    """A campaign was created or changed status or progressed; carries the whole snapshot."""

    type: Literal["campaign.updated"] = "campaign.updated"
    campaign: CampaignSnapshot = Field(description="The campaign now.")


class CampaignRecipientUpdated(Event):
    """A recipient's call state changed."""

    type: Literal["campaign.recipient_updated"] = "campaign.recipient_updated"
    campaign_id: str = Field(description="Campaign id.")
    recipient_id: str = Field(description="Recipient id.")
    position: int = Field(description="0-based position of the recipient in the submission.")
    to_number: str = Field(description="Number dialled.")
    status: RecipientStatus = Field(description="Recipient status.")
    conversation_id: str | None = Field(default=None, description="Latest attempt's conversation.")
    duration_seconds: int | None = Field(default=None, description="Latest call's duration.")
    outcome: str | None = Field(default=None, description="Outcome from the post-call analysis.")
    retry_count: int = Field(default=0, description="Retries made so far.")
    next_attempt_at_unix: int | None = Field(
        default=None, description="When it will be dialled next, if waiting."
    )
    time_zones: list[str] = Field(
        default_factory=list,
        description=(
            "IANA zones whose local time the calling window was applied in: one, or every zone of "
            "the number's region (the window must be open in all of them)."
        ),
    )
    reason: str | None = Field(
        default=None,
        description="Why the recipient is failed or skipped (e.g. the duplicate's first position).",
    )
    waiting_reason: str | None = Field(
        default=None,
        description=(
            "Why a `scheduled` recipient is held back until `next_attempt_at_unix`: `quiet_hours` "
            "(the platform's local hours), `calling_window` (the campaign's), `frequency_cap` (the "
            "platform's attempts per number per rolling 24 h across campaigns) or "
            "`campaign_daily_cap` (the campaign's `max_daily_attempts_per_number`) or `caller_id_cap` "
            "(every number of its caller-ID pool is at its daily cap). Null otherwise."
        ),
    )
    callback_at_unix: int | None = Field(
        default=None, description="The time the callee asked to be called back at, if they did."
    )
    callback_requested: str | None = Field(
        default=None, description="That time as the agent passed it on (e.g. `tomorrow at 5pm`)."
    )


class StagedRecipient(_Value):
    """A recipient as it was staged: every chunk in, positions and ids assigned."""

    recipient_id: str = Field(description="Recipient id (caller-chosen, else r<position>).")
    position: int = Field(description="0-based position of the recipient in the submission.")
    to_number: str = Field(description="Number to dial (E.164 when valid; as given when not).")
    status: RecipientStatus = Field(
        description=(
            "`scheduled` (waiting to be dialled), or already final: `failed` (invalid number, "
            "duplicate id), `skipped_duplicate`, or `cancelled` / `failed` when the campaign ended "
            "before every chunk had arrived."
        )
    )
    time_zones: list[str] = Field(
        default_factory=list, description="IANA zones the calling window applies in (see recipient events)."
    )
    reason: str | None = Field(default=None, description="Why the recipient is already final, if it is.")


class CampaignRecipientsStaged(Event):
    """Every recipient of a campaign, announced once when its last chunk has arrived (before any
    dial), in events of at most RECIPIENTS_PER_EVENT recipients by position: `part_index` of
    `part_count`. From here on each change of a recipient is announced, one by one
    (`campaign.recipient_updated`) or in bulk (`campaign.recipients_closed`), so a consumer builds
    every recipient's state from the events alone."""

    type: Literal["campaign.recipients_staged"] = "campaign.recipients_staged"
    campaign_id: str = Field(description="Campaign id.")
    part_index: int = Field(ge=0, description="0-based index of this event among the campaign's parts.")
    part_count: int = Field(ge=1, description="How many staged events the campaign has.")
    recipients: list[StagedRecipient] = Field(description="Recipients of this part, in position order.")


class ClosedRecipient(_Value):
    """A recipient closed in bulk."""

    recipient_id: str = Field(description="Recipient id.")
    position: int = Field(description="0-based position of the recipient in the submission.")
    to_number: str = Field(description="Number it would have dialled.")
    retry_count: int = Field(default=0, description="Retries made before it was closed.")
    conversation_id: str | None = Field(
        default=None, description="Its last attempt's conversation, when it was waiting for a retry."
    )
    duration_seconds: int | None = Field(default=None, description="Its last call's duration.")
    outcome: str | None = Field(default=None, description="Its last call's outcome.")
    time_zones: list[str] = Field(
        default_factory=list, description="IANA zones the calling window applied in."
    )


class CampaignRecipientsClosed(Event):
    """Recipients still waiting (`scheduled`) reached a final status together, because their
    campaign was cancelled (`cancelled`, "Campaign cancelled") or could not run (`failed`, the
    campaign's `status_reason`). Published in the transaction that closes them, in events of at
    most RECIPIENTS_PER_EVENT recipients: `part_index` of `part_count`. Nothing more happens to
    them. Recipients closed before the campaign was staged are announced by
    `campaign.recipients_staged` with their final status instead."""

    type: Literal["campaign.recipients_closed"] = "campaign.recipients_closed"
    campaign_id: str = Field(description="Campaign id.")
    status: RecipientStatus = Field(description="The final status every listed recipient now has.")
    reason: str | None = Field(default=None, description="Why they were closed.")
    part_index: int = Field(ge=0, description="0-based index of this event among this closing's parts.")
    part_count: int = Field(ge=1, description="How many events this closing has.")
    recipients: list[ClosedRecipient] = Field(description="The recipients closed, in position order.")


class DoNotCallAdded(Event):
    """A number was put on the do-not-call list (by an operator, or by the callee during a call), or
    was on it already: the entry as the list keeps it."""

    type: Literal["do_not_call.added"] = "do_not_call.added"
    phone_number: str = Field(description="E.164 number.")
    reason: str | None = Field(
        default=None,
        description="Why: the entry's reason (this add's, or the one it had when this add gave none).",
    )
    added_at_unix: int = Field(
        description="When the number joined the list (adding it again keeps the date)."
    )
    source: DoNotCallSource | None = Field(default=None, description="`api` or `voice` (said during a call).")
    conversation_id: str | None = Field(default=None, description="The call in which the callee opted out.")
    campaign_id: str | None = Field(default=None, description="That call's campaign, if any.")
    recipient_id: str | None = Field(default=None, description="That call's campaign recipient, if any.")


class CallbackScheduled(Event):
    """A callback the callee asked for was booked (`status` scheduled: dialled at
    `scheduled_for_unix`) or could not be (`refused`, with `reason`)."""

    type: Literal["callback.scheduled"] = "callback.scheduled"
    conversation_id: str = Field(description="The call in which it was asked for.")
    to_number: str = Field(description="Number to call back.")
    status: Literal["scheduled", "refused"] = Field(description="Booked or not.")
    callback_at_unix: int = Field(description="The time asked for, unix seconds.")
    scheduled_for_unix: int | None = Field(
        default=None, description="When it will be dialled (the asked time moved into the calling window)."
    )
    campaign_id: str | None = Field(default=None, description="Campaign, if any.")
    recipient_id: str | None = Field(default=None, description="Campaign recipient, if any.")
    reason: str | None = Field(default=None, description="Why it was refused.")


class DoNotCallRemoved(Event):
    """A number was taken off the do-not-call list."""

    type: Literal["do_not_call.removed"] = "do_not_call.removed"
    phone_number: str = Field(description="E.164 number.")


CampaignEvent = Annotated[
    CampaignUpdated
    | CampaignRecipientUpdated
    | CampaignRecipientsStaged
    | CampaignRecipientsClosed
    | DoNotCallAdded
    | DoNotCallRemoved
    | CallbackScheduled
    | CommandFailed,
    Field(discriminator="type"),
]
