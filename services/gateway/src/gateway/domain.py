"""Gateway rules without I/O: cursors, upload checks, signed upload URLs, outcome → HTTP response."""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import secrets
import struct
import zipfile
from dataclasses import dataclass
from typing import Any, Protocol

from bus.http_errors import error_body
from bus.secrets import Keyring, message_context
from contracts import calling
from contracts.base import CommandFailed, Event
from contracts.calling import E164_ERROR as E164_ERROR
from contracts.campaigns import CampaignUpdated, DoNotCallAdded, DoNotCallRemoved
from contracts.notifier import (
    WebhookDeliveryUpdated,
    WebhookSubscriptionDeleted,
    WebhookSubscriptionUpdated,
)
from contracts.provisioning import (
    AgentCreated,
    AgentDeleted,
    AgentUpdated,
    EcommerceToolsCreated,
    EmailTemplateCreated,
    EmailTemplateDeleted,
    KnowledgeDocumentCreated,
    KnowledgeDocumentDeleted,
    ToolCreated,
    ToolDeleted,
    ToolTokenRotated,
)
from contracts.telephony import (
    CallDialFailed,
    CallPlaced,
    CustomerSessionDeleted,
    CustomerSessionStored,
    PhoneNumberDeleted,
    PhoneNumberImported,
    PhoneNumberUpdated,
)
from contracts.webhooks import PostCallWebhookRegistered
from elevenlabs_client import retry_after_from_detail
from gateway.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from gateway.views import (
    TOOL_CREATED_FIELDS,
    agent_view,
    delivery_view,
    job_view,
    phone_view,
    template_view,
    tool_view,
    webhook_view,
)

# ---- phone numbers and secrets ---------------------------------------------------------------


def e164(number: str) -> str:
    """The number if it is a valid E.164 phone number, else the spec's 422 (contracts.calling)."""
    if not isinstance(calling.read_number(number), calling.Number) or number.strip() != number:
        raise Unprocessable(E164_ERROR, f"Got {number!r}")
    return number


def encrypt(keyring: Keyring, value: str | dict[str, Any], field: str) -> str:
    """Ciphertext of a secret (a string, or a JSON object) for the command field named `field`
    (bound to it: `bus.secrets.message_context`)."""
    plain = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return keyring.encrypt(plain, context=message_context(field))


class _StoreCredentials(Protocol):
    @property
    def platform(self) -> str: ...

    def model_dump(self) -> dict[str, Any]: ...


def ecommerce_fields(keyring: Keyring, credentials: _StoreCredentials | None) -> dict[str, str | None]:
    """A command's `ecommerce_platform` and `ecommerce_credentials_encrypted` (both None without
    credentials): the one place a shop's keys are encrypted, for a single call and a campaign alike."""
    if credentials is None:
        return {"ecommerce_platform": None, "ecommerce_credentials_encrypted": None}
    return {
        "ecommerce_platform": credentials.platform,
        "ecommerce_credentials_encrypted": encrypt(
            keyring, credentials.model_dump(), "ecommerce_credentials_encrypted"
        ),
    }


# ---- pagination ------------------------------------------------------------------------------


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")


MAX_POSITION = 2**63 - 1  # positions are PostgreSQL bigints
_MAX_CURSOR_CHARS = 32  # base64 of a 19-digit position is 26 characters


def decode_cursor(cursor: str | None) -> int | None:
    """The position after which a page starts; `BadRequest` for anything `encode_cursor` did not
    make: bad base64, not plain ASCII digits, or beyond a bigint (never a database error)."""
    if not cursor:
        return None
    bad = BadRequest("Invalid cursor", "Pass the cursor value returned by the previous page")
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise bad
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error):
        raise bad from None
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_POSITION:
        raise bad
    return int(text)


# ---- knowledge-base uploads ------------------------------------------------------------------

ALLOWED_UPLOADS = {
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def detect_upload_type(file_name: str, content: bytes, max_bytes: int) -> str:
    """The MIME type of an allowed upload, judged by its content, or a 4xx error.

    The extension must agree with the content: a renamed binary is refused.
    """
    if len(content) > max_bytes:
        raise PayloadTooLarge("File too large", f"Maximum size is {max_bytes // (1024 * 1024)} MB")
    if not content:
        raise BadRequest("Empty file", "The uploaded file has no content")
    ext = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if ext not in ALLOWED_UPLOADS:
        raise UnsupportedMediaType("Unsupported file type", "Supported types: PDF, TXT, MD, DOCX")
    ok = {
        ".pdf": lambda: _is_pdf(content),
        ".docx": lambda: _is_docx(content),
        ".txt": lambda: _is_text(content),
        ".md": lambda: _is_text(content),
    }[ext]()
    if not ok:
        raise UnsupportedMediaType(
            "Unsupported file type", f"The file content is not a valid {ext[1:].upper()} document"
        )
    return ALLOWED_UPLOADS[ext]


def _is_text(content: bytes) -> bool:
    if b"\x00" in content:
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_pdf(content: bytes) -> bool:
    """A PDF header and an end-of-file marker near the end (a truncated upload has none)."""
    return content.startswith(b"%PDF-") and b"%%EOF" in content[-2048:]


# Whatever zipfile raises on a damaged or exotic archive: corrupt or cut-off directories
# (BadZipFile, struct/EOF/OS errors), a declared zip version or compression method it lacks
# (NotImplementedError), encryption (RuntimeError), odd names (UnicodeDecodeError, ValueError).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OSError,
    EOFError,
    struct.error,
)


def _is_docx(content: bytes) -> bool:
    """A readable Word archive: a `word/document.xml` entry that is neither encrypted nor declared
    larger than any upload could hold (a zip bomb), in a method zipfile can inflate."""
    if not content.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            document = archive.getinfo("word/document.xml")
            if document.flag_bits & 0x1 or document.file_size > _MAX_DOCX_XML_BYTES:
                return False
            with archive.open(document) as stream:  # checks the method and the local header
                stream.read(1)
    except KeyError:  # no document.xml
        return False
    except _ZIP_ERRORS:
        return False
    return True


_MAX_DOCX_XML_BYTES = 512 * 1024 * 1024


# ---- outcome events → HTTP responses ---------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.status_code < 400


def retry_after_s(body: dict[str, Any]) -> int:
    """Whole seconds to wait after a 429 outcome: the figure its detail names, at least 1."""
    detail = body.get("detail")
    asked = retry_after_from_detail(detail if isinstance(detail, str) else None) or 0.0
    return max(1, math.ceil(asked))


# Which commands an event concludes (an event may also be a side effect of another command:
# a placed call stores a customer session too, but that does not answer the call request).
_CONCLUDES: dict[str, frozenset[str]] = {
    "customer_session.stored": frozenset({"customer_session.store"}),
    "customer_session.deleted": frozenset({"customer_session.delete"}),
    # A campaign command is answered by its `campaign.updated`; the recipient events it causes in
    # the same transaction (published before it) answer nothing.
    "campaign.recipient_updated": frozenset(),
    "campaign.recipients_staged": frozenset(),
    "campaign.recipients_closed": frozenset(),
    # Caused by ElevenLabs' post-call webhook (or reconciliation), never by a command.
    "call.status_changed": frozenset(),
    "post_call_webhook.received": frozenset(),
    "post_call_webhook.transcript_part": frozenset(),
}


def concludes(event_type: str, command_type: str) -> bool:
    allowed = _CONCLUDES.get(event_type)
    return allowed is None or command_type in allowed


def may_conclude(event: Event) -> bool:
    """False for an event that answers no command of the API, whatever caused it: the projector
    then does not look for a pending operation (a query each). A campaign call's seven events are
    such: three recipient updates, the status change and the post-call webhook's two, and its
    `call.placed` (or `call.dial_failed`), which answers the campaigns service's `call.place`,
    never an API request (`POST /calls/outbound` places calls without a campaign)."""
    if _CONCLUDES.get(event.type) == frozenset():
        return False
    return not (isinstance(event, CallPlaced | CallDialFailed) and event.campaign_id is not None)


def outcome_of(event: Event, command_type: str | None = None) -> Outcome:
    """What the API caller sees for the event that concludes their command."""
    match event:
        case CampaignUpdated(campaign=c):
            verb = {"campaign.cancel": "cancelled", "campaign.pause": "paused", "campaign.resume": "resumed"}
            if command_type in verb:
                return Outcome(
                    200,
                    {
                        "success": True,
                        "message": f"Batch job {c.campaign_id} {verb[command_type]} successfully",
                    },
                )
            return Outcome(200, job_view(c))
        case DoNotCallAdded(phone_number=number, reason=reason, added_at_unix=at):
            return Outcome(200, {"phone_number": number, "reason": reason, "added_at_unix": at})
        case DoNotCallRemoved(phone_number=number):
            return Outcome(200, {"success": True, "message": f"{number} removed from the do-not-call list"})
        case EmailTemplateCreated(template=t):
            return Outcome(200, template_view(t))
        case EmailTemplateDeleted(template_id=tid):
            return Outcome(200, {"success": True, "message": f"Template {tid} deleted successfully"})
        case ToolCreated(tool=t):
            return Outcome(200, tool_view(t, TOOL_CREATED_FIELDS))
        case EcommerceToolsCreated(products_tool=p, orders_tool=o):
            return Outcome(200, {"products_tool_id": p.tool_id, "orders_tool_id": o.tool_id})
        case ToolDeleted(tool_id=tool_id):
            return Outcome(200, {"success": True, "message": f"Tool {tool_id} deleted successfully"})
        case ToolTokenRotated(tool_id=tool_id, previous_valid_until_unix=until):
            return Outcome(
                200,
                {
                    "success": True,
                    "message": f"Token of tool {tool_id} rotated",
                    "tool_id": tool_id,
                    "previous_token_valid_until_unix": until,
                },
            )
        case KnowledgeDocumentCreated(document=d):
            return Outcome(
                200,
                {
                    "document_id": d.document_id,
                    "id": d.document_id,
                    "name": d.name,
                    "folder_path": d.folder_path or None,
                    "source_type": d.source_type,
                    # ElevenLabs indexes new documents asynchronously.
                    "status": "processing",
                },
            )
        case KnowledgeDocumentDeleted(document_id=doc_id):
            return Outcome(200, {"success": True, "message": f"Document {doc_id} deleted successfully"})
        case AgentCreated(agent=a):
            return Outcome(200, {"agent_id": a.agent_id})
        case AgentUpdated(agent=a):
            return Outcome(200, agent_view(a))
        case AgentDeleted(agent_id=agent_id):
            return Outcome(200, {"success": True, "message": f"Agent {agent_id} deleted successfully"})
        case PhoneNumberImported(phone=p):
            return Outcome(200, {"phone_number_id": p.phone_number_id})
        case PhoneNumberUpdated(phone=p):
            return Outcome(200, {k: v for k, v in phone_view(p).items() if k != "provider"})
        case PhoneNumberDeleted(phone_number_id=pid):
            return Outcome(200, {"success": True, "message": f"Phone number {pid} deleted successfully"})
        case CallPlaced() as call:
            return Outcome(200, call_placed_view(call))
        case CallDialFailed(status_code=code, error=error, detail=detail):
            return Outcome(code, error_body(code, error, detail))
        case CustomerSessionStored(conversation_id=cid, customer_info=info):
            return Outcome(
                200,
                {
                    "success": True,
                    "message": "Customer session stored",
                    "conversation_id": cid,
                    "customer_info": info.model_dump(exclude_none=True),
                },
            )
        case CustomerSessionDeleted(conversation_id=cid):
            return Outcome(200, {"success": True, "message": f"Session {cid} deleted successfully"})
        case PostCallWebhookRegistered(webhook_id=wid, webhook_url=url, retries_enabled=retries):
            return Outcome(
                200, {"success": True, "webhook_id": wid, "webhook_url": url, "retries_enabled": retries}
            )
        case WebhookSubscriptionUpdated(subscription=sub):
            return Outcome(200, webhook_view(sub))
        case WebhookSubscriptionDeleted(subscription_id=sid):
            return Outcome(200, {"success": True, "message": f"Webhook {sid} deleted successfully"})
        case WebhookDeliveryUpdated() as delivery:
            return Outcome(200, delivery_view(delivery))
        case CommandFailed(status_code=code, error=error, detail=detail):
            return Outcome(code, error_body(code, error, detail))
    raise ValueError(f"no outcome for {event.type}")


def call_placed_view(call: CallPlaced) -> dict[str, Any]:
    """The spec's response to an outbound call (upstream's `callSid` is our `call_sid`)."""
    if call.provider == "twilio":
        return {
            "success": True,
            "message": "Call initiated",
            "conversation_id": call.conversation_id,
            "call_sid": call.call_sid,
            "ecommerce_enabled": call.ecommerce_platform is not None,
        }
    body: dict[str, Any] = {
        "success": True,
        "message": "SIP call initiated",
        "conversation_id": call.conversation_id,
        "sip_call_id": call.sip_call_id,
    }
    if call.ecommerce_platform is not None:
        body["ecommerce_enabled"] = True
    return body


# ---- e-mail templates ------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
SESSION_PLACEHOLDERS = frozenset({"customer_name", "customer_email", "name", "email"})


def undeclared_placeholders(templates: list[str], parameters: list[str]) -> list[str]:
    """Placeholders used in the templates that neither the session nor a parameter provides."""
    known = SESSION_PLACEHOLDERS | set(parameters)
    used = [m.group(1) for t in templates for m in PLACEHOLDER.finditer(t)]
    return sorted({p for p in used if p not in known})


# ---- webhooks to the customer's systems ------------------------------------------------------


def new_signing_secret() -> str:
    """A webhook's signing secret: `whsec_` + 32 random bytes (urlsafe base64). Shown once."""
    return "whsec_" + secrets.token_urlsafe(32)
