"""REST request bodies (api-v1.md). Field rules here give clear 422s before anything is published."""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import idna
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts.calling import region_problem
from contracts.campaigns import time_zone_problem
from contracts.notifier import WebhookEventType
from contracts.text import NUL_MESSAGE, nul_path

MAX_URL_CHARS = 2048
#: A knowledge-base document's name: provisioning keeps it in a 500-character column (a longer one
#: was created upstream, then its command dead-lettered and the client got a 500).
MAX_DOCUMENT_NAME_CHARS = 500
#: tool-webhooks keeps the post-call webhook URL (`{public_url}/webhook/elevenlabs/post-call`) in a
#: 2000-character column.
MAX_PUBLIC_URL_CHARS = 1900
E164 = "E.164 phone number: `+`, country code and number, no spaces."
_BASE_URL = "https://your-ngrok-url.ngrok-free.dev/api/v1"
# 9999-12-31T23:59:59Z, the last second `datetime` can represent.
LAST_UNIX_SECOND = 253_402_300_799


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host that IDNA can encode and a valid port, at most
    MAX_URL_CHARS long, without whitespace or control characters. Raises ValueError (a 422)."""
    value = value.strip()
    if len(value) > MAX_URL_CHARS:
        raise ValueError(f"must be at most {MAX_URL_CHARS} characters")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not value.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    host = parts.hostname
    if not host:
        raise ValueError("must name a host")
    _ = parts.port  # ValueError for a port that is not a number in 0-65535
    if ":" in host:  # an IPv6 literal
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError("has a host name that is not valid") from None
    elif not _valid_host_name(host.rstrip(".")):
        raise ValueError("has a host name that is not valid")
    return value


_ASCII_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")  # `_`: Docker names


def _valid_host_name(host: str) -> bool:
    """DNS-shaped: labels of 1-63 characters, 253 in all; non-ASCII (IDN) and `xn--` labels must
    survive IDNA 2008 (UTS 46) encoding and decoding."""
    try:
        ascii_host = host if host.isascii() else idna.encode(host, uts46=True).decode("ascii")
        if any(label.lower().startswith("xn--") for label in ascii_host.split(".")):
            idna.decode(ascii_host)
    except (idna.IDNAError, UnicodeError):
        return False
    labels = ascii_host.split(".")
    return len(ascii_host) <= 253 and all(_ASCII_LABEL.match(label) for label in labels)


#: A conversation variable's value as ElevenLabs takes it (string, number, integer or boolean:
#: ConversationInitiationClientDataRequest in the official OpenAPI). Python's JSON reader accepts
#: NaN and 1e999 (infinity), which are not JSON and cannot be sent on: refused here.
def _finite(value: str | int | float | bool) -> str | int | float | bool:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number (NaN and infinity are not JSON)")
    return value


DynamicValue = Annotated[str | int | float | bool, AfterValidator(_finite)]


def _finite_number(value: Any) -> Any:
    """NaN and infinity (JSON `NaN`, `Infinity`, `1e999`, or a form field's "nan") are no amount: said
    so before any range check could call them out of range."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value  # not a number at all: the type check says so
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("must be a finite number (NaN and infinity are not JSON)")
    return value


#: A float field of a request: finite, whatever range its Field then asks for.
FiniteFloat = Annotated[float, BeforeValidator(_finite_number)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank (only whitespace)")
    return value


#: Text a person must give (a name, a label, a description the LLM reads): `min_length` counts
#: spaces, and "   " named nothing, shown as an empty line in every listing.
NonBlank = Annotated[str, AfterValidator(_not_blank)]


#: Validation context key: the caller knows the value holds no NUL (a JSON text without `\u0000`).
NUL_FREE = "nul_free"


class NoNul(BaseModel):
    """No text in the model, free-form values included, holds a NUL character (`contracts.text`):
    PostgreSQL cannot store it, and accepted here it failed later, after the work had started.
    Skipped when the validation context says `NUL_FREE` (100,000 recipients of one body)."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get(NUL_FREE):
            return data
        where = nul_path(data)
        if where is not None:
            raise ValueError(f"{where}: {NUL_MESSAGE}" if where else NUL_MESSAGE)
        return data


class Body(NoNul):
    """A request body: values of the JSON type the document declares, never coerced (`"required": 0`
    is not a boolean, `"retry_count": "2"` not an integer), so the OpenAPI schema is the contract."""

    model_config = ConfigDict(strict=True)


class ToolParameterIn(Body):
    """`contracts.provisioning.ToolParameter` as a client sends it."""

    name: str = Field(description="Parameter name, as sent in the request body.")
    type: Literal["string", "integer", "number", "boolean"] = Field(
        default="string", description="JSON type of the value."
    )
    description: str = Field(default="", description="Tells the LLM what to put here.")
    required: bool = Field(default=False, description="Whether the LLM must always provide it.")


class EcommerceToolsRequest(Body):
    webhook_base_url: str = Field(
        description="Public base URL ending in /api/v1 that reaches Switchboard.", examples=[_BASE_URL]
    )

    _url = field_validator("webhook_base_url")(_http_url)


class WebhookToolRequest(Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: NonBlank = Field(min_length=1, max_length=2000)
    webhook_url: str = Field(examples=["https://api.example.com/api/v1/webhook/inventory"])
    http_method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    parameters: list[ToolParameterIn] = Field(default_factory=list)

    _url = field_validator("webhook_url")(_http_url)


class TextDocumentRequest(Body):
    text: NonBlank = Field(min_length=1, max_length=5_000_000)
    name: str | None = Field(default=None, max_length=MAX_DOCUMENT_NAME_CHARS)
    parent_folder_id: str | None = None


class UrlDocumentRequest(Body):
    url: str = Field(examples=["https://example.com/about-us"])
    name: str | None = Field(default=None, max_length=MAX_DOCUMENT_NAME_CHARS)
    parent_folder_id: str | None = None

    _url = field_validator("url")(_http_url)


class CreateAgentRequest(Body):
    name: NonBlank = Field(min_length=1, max_length=1000)
    language: str | None = Field(default=None, min_length=2, max_length=10)
    voice_id: str | None = None
    first_message: str | None = None
    system_prompt: str | None = None
    conversation_config: dict[str, Any] | None = None
    tool_ids: list[str] = Field(default_factory=list)
    knowledge_base_ids: list[str] = Field(default_factory=list)


class UpdateAgentRequest(Body):
    name: NonBlank | None = Field(default=None, min_length=1, max_length=1000)
    conversation_config: dict[str, Any] | None = None


class UpdatePromptRequest(Body):
    first_message: str | None = None
    language: str | None = Field(default=None, min_length=2, max_length=10)
    system_prompt: str | None = None
    tool_ids: list[str] | None = None
    knowledge_base_ids: list[str] | None = None


# ---- phone numbers, calls, sessions (api-v1.md 5.5, 8, 9) ------------------------------------


class TwilioNumberRequest(Body):
    phone_number: str = Field(description=E164, examples=["+14155551234"])
    label: NonBlank = Field(min_length=1, max_length=500)
    sid: str = Field(min_length=2, max_length=64, pattern=r"^AC[A-Za-z0-9]+$")
    token: str = Field(min_length=1, max_length=500)


# SIP trunks: the fields and rules of ElevenLabs' `InboundSIPTrunkConfigRequestModel` and
# `OutboundSIPTrunkConfigRequestModel` (official OpenAPI spec). Unknown fields are refused, never
# dropped: ElevenLabs would ignore them without a word.

ELEVENLABS_SIP_HOST = "sip.rtc.elevenlabs.io"
"""ElevenLabs' inbound SIP endpoint (api-v1.md 8.2): where the carrier sends calls, not a setting."""

MediaEncryption = Literal["disabled", "allowed", "required"]
_Strict = ConfigDict(extra="forbid", strict=True)


def _no_control_chars(values: dict[str, str] | None) -> dict[str, str] | None:
    for name, value in (values or {}).items():
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError("SIP header names and values may not contain CR, LF or NUL")
    return values


class SipCredentialsIn(Body):
    model_config = _Strict

    username: str = Field(min_length=1, max_length=500, description="SIP digest username (required).")
    password: str | None = Field(default=None, max_length=500)


class InboundTrunkConfigIn(Body):
    model_config = _Strict

    address: str | None = Field(
        default=None,
        max_length=500,
        description=f"Informational only: ElevenLabs' inbound endpoint ({ELEVENLABS_SIP_HOST}:5060).",
    )
    allowed_addresses: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=100, description="The carrier's IP addresses or CIDR blocks."
    )
    allowed_numbers: list[Annotated[str, Field(max_length=32)]] | None = Field(default=None, max_length=1000)
    media_encryption: MediaEncryption | None = None
    credentials: SipCredentialsIn | None = None
    remote_domains: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        default=None, max_length=100
    )
    attributes_to_headers: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _outbound_only(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in ("transport", "headers", "enabled_codecs"):
                if value.get(name) is not None:
                    raise ValueError(f"{name} applies to outbound_trunk_config only")
        return value

    @field_validator("address")
    @classmethod
    def _elevenlabs_endpoint(cls, value: str | None) -> str | None:
        host = (value or "").strip().lower().removeprefix("sip:").split(";")[0].split(":")[0]
        if value is not None and host != ELEVENLABS_SIP_HOST:
            raise ValueError(
                f"an inbound trunk has no address of its own (calls arrive at {ELEVENLABS_SIP_HOST}); "
                "list the carrier's addresses in allowed_addresses"
            )
        return value

    @field_validator("allowed_addresses")
    @classmethod
    def _ip_or_cidr(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR block: {item!r}") from None
        return value

    _attributes = field_validator("attributes_to_headers")(_no_control_chars)


class OutboundTrunkConfigIn(Body):
    model_config = _Strict

    address: str = Field(min_length=1, max_length=500)
    transport: Literal["auto", "udp", "tcp", "tls"] | None = None
    media_encryption: MediaEncryption | None = None
    headers: dict[str, str] | None = None
    attributes_to_headers: dict[str, str] | None = None
    credentials: SipCredentialsIn | None = None
    enabled_codecs: list[Literal["G722/8000", "PCMU/8000", "PCMA/8000"]] | None = None

    @field_validator("headers")
    @classmethod
    def _x_headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in value or {}:
            if not name.lower().startswith("x-"):
                raise ValueError(f"custom SIP headers must start with X- (got {name!r})")
        return _no_control_chars(value)

    _attributes = field_validator("attributes_to_headers")(_no_control_chars)


class SipTrunkNumberRequest(Body):
    phone_number: str = Field(description=E164, examples=["+390620199287"])
    label: NonBlank = Field(min_length=1, max_length=500)
    provider: Literal["sip_trunk"] = "sip_trunk"
    supports_inbound: bool = True
    supports_outbound: bool = True
    agent_id: str | None = Field(default=None, min_length=1)
    outbound_trunk_config: OutboundTrunkConfigIn
    inbound_trunk_config: InboundTrunkConfigIn | None = None


class UpdatePhoneNumberRequest(Body):
    agent_id: str | None = Field(default=None, min_length=1)
    label: NonBlank | None = Field(default=None, min_length=1, max_length=500)


class CustomerInfoIn(Body):
    name: str | None = Field(default=None, max_length=500)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, description=E164, examples=["+14155551234"])


class WooCommerceCredentials(Body):
    platform: Literal["woocommerce"]
    base_url: str = Field(examples=["https://mystore.example.com"])
    api_key: str = Field(min_length=1, max_length=500)
    api_secret: str = Field(min_length=1, max_length=500)

    _url = field_validator("base_url")(_http_url)


class ShopifyCredentials(Body):
    platform: Literal["shopify"]
    base_url: str = Field(examples=["https://mystore.myshopify.com"])
    api_key: str = Field(min_length=1, max_length=500)
    access_token: str = Field(min_length=1, max_length=500)

    _url = field_validator("base_url")(_http_url)


EcommerceCredentials = Annotated[WooCommerceCredentials | ShopifyCredentials, Field(discriminator="platform")]


class OutboundCallRequest(Body):
    agent_id: str = Field(min_length=1)
    agent_phone_number_id: str = Field(min_length=1)
    to_number: str = Field(description=E164, examples=["+14155552671"])
    first_message: str | None = Field(default=None, max_length=5000)
    dynamic_variables: dict[str, DynamicValue] = Field(default_factory=dict)
    ecommerce_credentials: EcommerceCredentials | None = None
    customer_info: CustomerInfoIn | None = None
    sender_email: EmailStr | None = None
    # Beyond the spec:
    override_quiet_hours: bool = Field(
        default=False,
        description="Place the call although the platform's quiet hours (QUIET_HOURS_FILE; 08:00-21:00 in "
        "the recipient's local time by default) forbid it now; recorded on the call "
        "(`quiet_hours_overridden`). Without it such a call is a 422.",
    )


class CustomerSessionRequest(Body):
    conversation_id: str = Field(min_length=1, max_length=200)
    customer_info: CustomerInfoIn


class RegisterWebhookRequest(Body):
    public_url: str = Field(
        description="Public base URL ending in /api/v1 that reaches tool-webhooks.", examples=[_BASE_URL]
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if len(value.strip()) > MAX_PUBLIC_URL_CHARS:
            raise ValueError(f"must be at most {MAX_PUBLIC_URL_CHARS} characters")
        return _http_url(value)


# ---- e-mail templates (api-v1.md 5) -----------------------------------------------------------


class TemplateParameterIn(Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str = Field(default="", max_length=1000)
    required: bool = False


class EmailTemplateRequest(Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: NonBlank = Field(min_length=1, max_length=2000)
    subject_template: NonBlank = Field(min_length=1, max_length=500)
    body_template: NonBlank = Field(min_length=1, max_length=100_000)
    parameters: list[TemplateParameterIn] = Field(default_factory=list, max_length=50)
    webhook_base_url: str = Field(examples=[_BASE_URL])

    _url = field_validator("webhook_base_url")(_http_url)

    @field_validator("subject_template")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise ValueError("the subject must be a single line")
        return value


# ---- batch calling (api-v1.md 10) -------------------------------------------------------------


#: A recipient's name and id as the read models and the campaigns service store them (String(500),
#: String(200)); a spreadsheet's cells are held to the same (gateway.intake).
RECIPIENT_NAME_MAX_CHARS = 500
RECIPIENT_ID_MAX_CHARS = 200


class RecipientIn(Body):
    phone_number: str = Field(description=E164, examples=["+14155552672"])
    name: str | None = Field(default=None, max_length=RECIPIENT_NAME_MAX_CHARS)
    email: EmailStr | None = None
    dynamic_variables: dict[str, DynamicValue] = Field(default_factory=dict)
    id: str | None = Field(default=None, max_length=RECIPIENT_ID_MAX_CHARS)


class CallingWindowIn(Body):
    """contracts.campaigns.CallingWindow: local hours in the recipient's zone. A window may cross
    midnight; one whose start equals its end is open all day (on its days)."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Local start, HH:MM (24 h).")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Local end, HH:MM (24 h).")
    # A day outside 0-6 was wrapped silently (9 became Wednesday) and no day at all made every
    # recipient fail at once: both are the client's mistake, said before anything is created.
    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6],
        min_length=1,
        max_length=7,
        description="Allowed weekdays, 0 = Monday to 6 = Sunday; at least one.",
    )


class RetryDelaysIn(Body):
    no_answer: int = Field(default=300, ge=0, le=86_400)
    busy: int = Field(default=120, ge=0, le=86_400)
    failed: int = Field(default=600, ge=0, le=86_400)
    voicemail: int = Field(default=1800, ge=0, le=86_400)


class AnalysisRuleIn(Body):
    """contracts.campaigns.AnalysisRule: after an answered call, a post-call analysis value decides."""

    field: str = Field(
        default="outcome",
        min_length=1,
        max_length=200,
        description="Data-collection item id of the analysis.",
    )
    value: str = Field(min_length=1, max_length=500, description="Value that triggers the rule (any case).")
    action: Literal["retry", "finish"] = Field(
        description="`retry` after `delay_s` (counts against retry_count) or `finish` the recipient."
    )
    delay_s: int = Field(default=3600, ge=0, le=30 * 86_400, description="Seconds before the retry.")


# Dials from one number per rolling 24 h: far above what a line can place (86,400 s a day), and
# within the int32 the counters are kept in.
MAX_DAILY_CAP = 100_000


class BatchOptions(NoNul):
    """A submission without its recipients: the JSON body's other fields, or the form fields
    that come with a spreadsheet (`file`). Lax, for form fields are text; a JSON body is
    validated strictly (`routes.batch_calling`), like every other body. A field it does not know
    is refused, as by every other body: a misspelt `retry_cuont` would otherwise do nothing."""

    model_config = ConfigDict(extra="forbid")

    call_name: NonBlank = Field(min_length=1, max_length=1000)
    agent_id: str = Field(min_length=1)
    phone_number_id: str = Field(min_length=1)
    # Bounded by the last second datetime can hold (9999-12-31T23:59:59Z): beyond it a campaign could
    # not be stored (bigint) or scheduled, and a client's typo must be a 422, not a dead letter and a 500.
    scheduled_time_unix: int | None = Field(default=None, ge=0, le=LAST_UNIX_SECOND)
    timezone: str | None = None
    retry_count: int = Field(default=0, ge=0, le=5)
    ecommerce_credentials: EcommerceCredentials | None = None
    sender_email: EmailStr | None = None
    # Beyond the spec:
    concurrency_limit: int | None = Field(default=None, ge=1, le=1000)
    retry_delays: RetryDelaysIn | None = None
    calling_window: CallingWindowIn | None = None
    phone_number_ids: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="A caller-ID pool: more numbers calls may come from besides phone_number_id. Each dial "
        "prefers a number of the recipient's country and area code, else the least used.",
    )
    phone_number_daily_caps: dict[str, Annotated[int, Field(ge=1, le=MAX_DAILY_CAP)]] = Field(
        default_factory=dict,
        description="phone_number_id -> at most this many dials from that number per rolling 24 h.",
    )
    max_total_minutes: FiniteFloat | None = Field(
        default=None,
        gt=0,
        le=10**7,
        description="Budget of call minutes: the campaign pauses itself (status_reason says so) when the "
        "next dial could exceed it.",
    )
    max_daily_attempts_per_number: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="At most this many attempts per number per rolling 24 h in this campaign (narrows the "
        "platform's CAMPAIGNS_MAX_ATTEMPTS_PER_NUMBER_24H across every campaign).",
    )
    analysis_rules: list[AnalysisRuleIn] | None = Field(
        default=None,
        max_length=50,
        description="Retries or endings decided by post-call analysis values; the first match wins.",
    )
    default_region: str | None = Field(
        default=None,
        description=(
            "ISO 3166-1 region (e.g. US) whose national formats, such as (415) 555-0103, are read "
            "as numbers of that region and turned into E.164. Without it numbers must be E.164."
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        problem = time_zone_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        # ISO 3166-1 codes are written in capitals, but "us" is no other region: read it as US.
        value = value.strip().upper() if value is not None else None
        problem = region_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _caps_name_pool_numbers(self) -> BatchOptions:
        pool = {self.phone_number_id, *self.phone_number_ids}
        stray = sorted(set(self.phone_number_daily_caps) - pool)
        if stray:
            raise ValueError(
                f"phone_number_daily_caps names numbers outside the pool (phone_number_id, phone_number_ids): "
                f"{', '.join(stray)}"
            )
        return self


class BatchSubmitRequest(BatchOptions):
    recipients: list[RecipientIn] = Field(min_length=1)


class DoNotCallRequest(Body):
    phone_number: str = Field(description=E164, examples=["+442071838750"])
    reason: str | None = Field(default=None, max_length=1000)


# ---- API keys (beyond the spec; gateway.access) -----------------------------------------------

# Stored in a PostgreSQL INTEGER (int32): a larger burst was a 500 from the database, not a 422.
MAX_RATE_LIMIT_BURST = 1_000_000


class CreateApiKeyRequest(Body):
    name: str = Field(min_length=1, max_length=200, description="What the key is for (shown in listings).")
    scope: Literal["read", "operator", "admin"] = Field(
        description="read: GET only; operator: everything but administration; admin: everything."
    )
    rate_limit_per_s: FiniteFloat | None = Field(
        default=None,
        ge=0,
        description="Requests per second this key may make on average (0: unlimited); null: GATEWAY_RATE_LIMIT_PER_S.",
    )
    rate_limit_burst: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RATE_LIMIT_BURST,
        description="Requests this key may make at once; null: GATEWAY_RATE_LIMIT_BURST.",
    )

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class ApiKeyView(BaseModel):
    """A stored key as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    key_id: str
    prefix: str = Field(description="`sb_live_<key_id>`: how the key itself starts.")
    name: str
    scope: Literal["read", "operator", "admin"]
    rate_limit_per_s: float | None
    rate_limit_burst: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedApiKey(ApiKeyView):
    api_key: str = Field(description="The key. Shown this once: only its SHA-256 is stored.")


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyView]


class WebhookCreateRequest(Body):
    """POST /api/v1/webhooks (beyond the spec)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Where deliveries are POSTed: https (http only to OUTBOUND_ALLOW_HOSTS).")
    event_types: list[WebhookEventType] = Field(min_length=1, description="Event types to receive.")
    description: str | None = Field(default=None, max_length=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)
