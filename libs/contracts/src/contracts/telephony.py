"""Commands to and events from the telephony service: phone numbers, calls, customer sessions.

Secrets (Twilio auth tokens, SIP passwords, store credentials) never travel in clear: fields
named `*_encrypted` hold Fernet tokens made with the deployment's SWITCHBOARD_SECRET_KEY, and only
the service that must use the secret decrypts it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Command, CommandFailed, Event
from contracts.campaigns import CallingWindow

CallStatus = Literal["dialing", "in_progress", "completed", "no_answer", "busy", "failed", "voicemail"]
FINAL_CALL_STATUSES: frozenset[str] = frozenset({"completed", "no_answer", "busy", "failed", "voicemail"})
Refusal = Literal["configuration", "recipient"]
_REFUSAL_DESCRIPTION = (
    "Set when the carrier refused the call: `configuration` (our credentials, trial account or "
    "permissions: every dial will fail alike) or `recipient` (this number cannot be called: do not retry)."
)

# ---- value objects -------------------------------------------------------------------------


class _Value(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SipCredentials(_Value):
    """SIP digest credentials; the password only as ciphertext."""

    username: str = Field(description="SIP digest auth username.")
    password_encrypted: str | None = Field(default=None, description="Fernet token of the SIP password.")


MediaCodec = Literal["G722/8000", "PCMU/8000", "PCMA/8000"]


class TrunkConfig(_Value):
    """Inbound or outbound SIP trunk configuration (api-v1.md 8.2).

    One shape for both directions; which fields each direction takes is ElevenLabs' rule
    (`InboundSIPTrunkConfigRequestModel` / `OutboundSIPTrunkConfigRequestModel` of the official
    OpenAPI spec), enforced by the gateway and again by telephony's payload builder.
    """

    address: str | None = Field(
        default=None, description="Outbound: hostname or IP the SIP INVITE is sent to."
    )
    transport: Literal["auto", "udp", "tcp", "tls"] | None = Field(
        default=None, description="Outbound: SIP transport."
    )
    media_encryption: Literal["disabled", "allowed", "required"] | None = Field(
        default=None, description="Media encryption policy."
    )
    headers: dict[str, str] | None = Field(default=None, description="Outbound: custom SIP X-* headers.")
    credentials: SipCredentials | None = Field(default=None, description="Digest credentials.")
    allowed_addresses: list[str] | None = Field(
        default=None, description="Inbound: the carrier's IP addresses or CIDR blocks (ACL authentication)."
    )
    allowed_numbers: list[str] | None = Field(
        default=None, description="Inbound: phone numbers allowed to use the trunk."
    )
    remote_domains: list[str] | None = Field(
        default=None, description="Inbound: domains of remote SIP servers, to validate TLS certificates."
    )
    attributes_to_headers: dict[str, str] | None = Field(
        default=None, description="Dynamic variable name to SIP header name."
    )
    enabled_codecs: list[MediaCodec] | None = Field(
        default=None, description="Outbound: codecs offered in the SDP (empty: all supported)."
    )


class PhoneNumberRecord(_Value):
    """A phone number as Switchboard knows it. Holds no secrets."""

    phone_number_id: str = Field(description="ElevenLabs phone number id.")
    phone_number: str = Field(description="E.164 number.")
    label: str = Field(description="Display name.")
    provider: Literal["twilio", "sip_trunk"] = Field(description="Telephony provider.")
    agent_id: str | None = Field(default=None, description="Agent answering inbound calls, if assigned.")
    supports_inbound: bool = Field(default=True, description="Inbound calls enabled.")
    supports_outbound: bool = Field(default=True, description="Outbound calls enabled.")
    sip_username: str | None = Field(default=None, description="SIP username, when credentials are set.")
    created_at_unix: int = Field(description="Import time, unix seconds.")


class CustomerInfo(_Value):
    """Who is being called; personalises e-mails."""

    name: str | None = Field(default=None, description="Customer name.")
    email: str | None = Field(default=None, description="Customer e-mail address.")
    phone: str | None = Field(default=None, description="Customer phone (E.164).")


# ---- commands ------------------------------------------------------------------------------


class ImportTwilioNumber(Command):
    """Import a Twilio number into ElevenLabs."""

    type: Literal["phone_number.import_twilio"] = "phone_number.import_twilio"
    phone_number: str = Field(description="E.164 number.")
    label: str = Field(description="Display name.")
    sid: str = Field(description="Twilio account SID.")
    token_encrypted: str = Field(description="Fernet token of the Twilio auth token.")


class ImportSipTrunkNumber(Command):
    """Import a SIP trunk number into ElevenLabs."""

    type: Literal["phone_number.import_sip_trunk"] = "phone_number.import_sip_trunk"
    phone_number: str = Field(description="E.164 number.")
    label: str = Field(description="Display name.")
    supports_inbound: bool = Field(default=True, description="Enable inbound calls.")
    supports_outbound: bool = Field(default=True, description="Enable outbound calls.")
    agent_id: str | None = Field(default=None, description="Agent answering inbound calls, if any.")
    outbound_trunk_config: TrunkConfig | None = Field(default=None, description="Outbound trunk.")
    inbound_trunk_config: TrunkConfig | None = Field(default=None, description="Inbound trunk.")


class UpdatePhoneNumber(Command):
    """Assign an agent to a number and/or relabel it; only present fields change."""

    type: Literal["phone_number.update"] = "phone_number.update"
    phone_number_id: str = Field(description="ElevenLabs phone number id.")
    agent_id: str | None = Field(default=None, description="Agent to assign.")
    label: str | None = Field(default=None, description="New label.")


class DeletePhoneNumber(Command):
    """Remove a number from ElevenLabs."""

    type: Literal["phone_number.delete"] = "phone_number.delete"
    phone_number_id: str = Field(description="ElevenLabs phone number id.")


class PlaceCall(Command):
    """Dial one person. `message_id` is the attempt's idempotency key: it is dialled at most once."""

    type: Literal["call.place"] = "call.place"
    provider: Literal["twilio", "sip_trunk"] = Field(description="Which outbound route to use.")
    agent_id: str = Field(description="Agent that talks.")
    agent_phone_number_id: str = Field(description="Number the call comes from.")
    to_number: str = Field(description="E.164 number to dial.")
    first_message: str | None = Field(default=None, description="Overrides the agent's greeting.")
    dynamic_variables: dict[str, Any] = Field(default_factory=dict, description="Conversation variables.")
    customer_info: CustomerInfo | None = Field(default=None, description="Creates the customer session.")
    ecommerce_platform: Literal["woocommerce", "shopify"] | None = Field(
        default=None, description="Store platform whose credentials are attached."
    )
    ecommerce_credentials_encrypted: str | None = Field(
        default=None, description="Fernet token of the store credentials JSON."
    )
    sender_email: str | None = Field(
        default=None, description="From address for this conversation's e-mails."
    )
    campaign_id: str | None = Field(default=None, description="Campaign this attempt belongs to.")
    recipient_id: str | None = Field(default=None, description="Campaign recipient id.")
    attempt: int | None = Field(default=None, description="Attempt number within the campaign (1-based).")
    quiet_hours_overridden: bool = Field(
        default=False,
        description="A single call placed outside the platform's quiet hours because the request said "
        "`override_quiet_hours` (recorded on the call).",
    )
    calling_window: CallingWindow | None = Field(
        default=None,
        description="The campaign's calling window (a callback asked for during the call keeps to it).",
    )
    time_zones: list[str] = Field(
        default_factory=list, description="IANA zones of the recipient the calling window applies in."
    )


class StoreCustomerSession(Command):
    """Store customer info for a conversation (e-mail personalisation)."""

    type: Literal["customer_session.store"] = "customer_session.store"
    conversation_id: str = Field(description="ElevenLabs conversation id.")
    customer_info: CustomerInfo = Field(description="Customer details.")


class DeleteCustomerSession(Command):
    """Forget a conversation's customer info."""

    type: Literal["customer_session.delete"] = "customer_session.delete"
    conversation_id: str = Field(description="ElevenLabs conversation id.")


TelephonyCommand = Annotated[
    ImportTwilioNumber
    | ImportSipTrunkNumber
    | UpdatePhoneNumber
    | DeletePhoneNumber
    | PlaceCall
    | StoreCustomerSession
    | DeleteCustomerSession,
    Field(discriminator="type"),
]

# ---- events --------------------------------------------------------------------------------


class PhoneNumberImported(Event):
    """A number was imported."""

    type: Literal["phone_number.imported"] = "phone_number.imported"
    phone: PhoneNumberRecord = Field(description="The number.")


class PhoneNumberUpdated(Event):
    """A number was assigned an agent or relabelled."""

    type: Literal["phone_number.updated"] = "phone_number.updated"
    phone: PhoneNumberRecord = Field(description="The number after the change.")


class PhoneNumberDeleted(Event):
    """A number was removed."""

    type: Literal["phone_number.deleted"] = "phone_number.deleted"
    phone_number_id: str = Field(description="ElevenLabs phone number id.")


class CallPlaced(Event):
    """ElevenLabs accepted a dial; the call is ringing."""

    type: Literal["call.placed"] = "call.placed"
    conversation_id: str = Field(description="ElevenLabs conversation id.")
    provider: Literal["twilio", "sip_trunk"] = Field(description="Outbound route.")
    call_sid: str | None = Field(default=None, description="Twilio call SID (Twilio route).")
    sip_call_id: str | None = Field(default=None, description="SIP call id (SIP route).")
    agent_id: str = Field(description="Agent.")
    phone_number_id: str = Field(description="Calling number.")
    to_number: str = Field(description="Dialled number.")
    ecommerce_platform: Literal["woocommerce", "shopify"] | None = Field(
        default=None, description="Store platform, when store credentials are bound to the conversation."
    )
    ecommerce_credentials_encrypted: str | None = Field(
        default=None, description="Fernet token of the store credentials; only tool-webhooks decrypts it."
    )
    sender_email: str | None = Field(
        default=None, description="From address for this conversation's e-mails."
    )
    customer_info: CustomerInfo | None = Field(default=None, description="Customer details, if given.")
    campaign_id: str | None = Field(default=None, description="Campaign, if any.")
    recipient_id: str | None = Field(default=None, description="Campaign recipient, if any.")
    attempt: int | None = Field(default=None, description="Attempt number, if any.")
    placed_at_unix: int = Field(description="When the dial was accepted, unix seconds.")
    quiet_hours_overridden: bool = Field(
        default=False,
        description="Placed outside the platform's quiet hours on the request's explicit override.",
    )
    dynamic_variables: dict[str, Any] = Field(
        default_factory=dict, description="The dial's dynamic variables (a follow-up call reuses them)."
    )
    calling_window: CallingWindow | None = Field(default=None, description="As in the PlaceCall.")
    time_zones: list[str] = Field(default_factory=list, description="As in the PlaceCall.")


class CallDialFailed(Event):
    """ElevenLabs refused the dial (or it could not be placed); nobody was called."""

    type: Literal["call.dial_failed"] = "call.dial_failed"
    provider: Literal["twilio", "sip_trunk"] = Field(description="Outbound route.")
    agent_id: str = Field(description="Agent.")
    phone_number_id: str = Field(description="Calling number.")
    to_number: str = Field(description="Number that was to be dialled.")
    status_code: int = Field(description="HTTP-like status for the caller (404, 422, 429, 502...).")
    error: str = Field(description="Human-readable error.")
    detail: str | None = Field(default=None, description="Upstream detail.")
    campaign_id: str | None = Field(default=None, description="Campaign, if any.")
    recipient_id: str | None = Field(default=None, description="Campaign recipient, if any.")
    attempt: int | None = Field(default=None, description="Attempt number, if any.")
    refusal: Refusal | None = Field(default=None, description=_REFUSAL_DESCRIPTION)


class CallStatusChanged(Event):
    """A call moved to a new status; final statuses carry the result."""

    type: Literal["call.status_changed"] = "call.status_changed"
    conversation_id: str = Field(description="ElevenLabs conversation id.")
    status: CallStatus = Field(description="New status.")
    duration_seconds: int | None = Field(default=None, description="Call duration, when ended.")
    outcome: str | None = Field(default=None, description="Outcome from the post-call analysis.")
    summary: str | None = Field(default=None, description="Transcript summary from the post-call analysis.")
    reason: str | None = Field(default=None, description="Why it ended (termination or failure reason).")
    source: Literal["webhook", "reconciliation"] = Field(default="webhook", description="Who told us.")
    campaign_id: str | None = Field(default=None, description="Campaign, if any.")
    recipient_id: str | None = Field(default=None, description="Campaign recipient, if any.")
    attempt: int | None = Field(default=None, description="Attempt number, if any.")
    refusal: Refusal | None = Field(default=None, description=_REFUSAL_DESCRIPTION)
    to_number: str | None = Field(default=None, description="Dialled number (E.164).")
    agent_id: str | None = Field(default=None, description="Agent that talked.")
    phone_number_id: str | None = Field(default=None, description="Calling number's id.")
    started_at_unix: int | None = Field(default=None, description="When the dial was accepted, unix seconds.")
    ended_at_unix: int | None = Field(
        default=None, description="When the final status was recorded, unix seconds."
    )
    data_collection: dict[str, Any] = Field(
        default_factory=dict,
        description="The post-call analysis' data_collection_results as id -> value (campaign analysis rules).",
    )


class CustomerSessionStored(Event):
    """Customer info was stored for a conversation."""

    type: Literal["customer_session.stored"] = "customer_session.stored"
    conversation_id: str = Field(description="ElevenLabs conversation id.")
    customer_info: CustomerInfo = Field(description="Customer details.")
    sender_email: str | None = Field(
        default=None, description="From address for this conversation, if known."
    )


class CustomerSessionDeleted(Event):
    """A conversation's customer info was forgotten."""

    type: Literal["customer_session.deleted"] = "customer_session.deleted"
    conversation_id: str = Field(description="ElevenLabs conversation id.")


TelephonyEvent = Annotated[
    PhoneNumberImported
    | PhoneNumberUpdated
    | PhoneNumberDeleted
    | CallPlaced
    | CallDialFailed
    | CallStatusChanged
    | CustomerSessionStored
    | CustomerSessionDeleted
    | CommandFailed,
    Field(discriminator="type"),
]
