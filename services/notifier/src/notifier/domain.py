"""Rules of the notifier: message building, header safety, failure classes, backoff (no I/O)."""

from __future__ import annotations

import contextlib
import email.errors
import email.header
import email.policy
import email.utils
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

from email_validator import EmailNotValidError, validate_email

from contracts.notifier import SendEmail

UNKNOWN_AFTER_RESTART = "delivery outcome unknown after a restart; not resent"
UNKNOWN_AFTER_HANDOFF = "delivery outcome unknown: no answer after the message was handed over; not resent"
MAX_ERROR_CHARS = 1000

# The header names a built message has, in order: anything else in the serialised bytes means a
# value escaped its header (e.g. a Reply-To: smuggled in through an encoded line break).
EXPECTED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
)


class EmailError(Exception):
    """Sending failed. `permanent`: retrying cannot help (or could send a duplicate)."""

    def __init__(self, error: str, *, permanent: bool, retry_after_s: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.permanent = permanent
        self.retry_after_s = retry_after_s


def invalid(error: str) -> EmailError:
    return EmailError(error, permanent=True)


@dataclass(frozen=True)
class OutgoingEmail:
    """A validated e-mail: exactly one recipient, header-safe values, and its MIME form."""

    from_email: str
    to_email: str
    to_name: str | None
    subject: str
    body: str
    message: EmailMessage
    wire: bytes


def _unsafe_char(c: str) -> bool:
    """Control characters (CR, LF, NUL, VT, FF, NEL...; tab is folding whitespace) and the Unicode
    line/paragraph separators U+2028/U+2029: each can end a header line somewhere along the way."""
    return c != "\t" and unicodedata.category(c) in ("Cc", "Zl", "Zp")


def has_forbidden_chars(value: str) -> bool:
    """A header value is unsafe if it, or the text of any RFC 2047 encoded-word in it, has a control
    character or line separator: `=?UTF-8?Q?=0D=0A?=Reply-To: x` is a line break once decoded, and
    Python's folder writes it out raw on versions without the fix for CVE-2024-6923. Checked here so
    the defence does not depend on the interpreter's patch level."""
    if any(_unsafe_char(c) for c in value):
        return True
    if "=?" not in value:
        return False
    try:
        decoded = _decoded_words(value)
    except (ValueError, LookupError, AssertionError, email.errors.HeaderParseError):
        return True  # cannot tell what it decodes to: not sent
    return any(_unsafe_char(c) for c in decoded)


def _decoded_words(value: str) -> str:
    """The RFC 2047-decoded text of `value`. Each encoded chunk is given both in its declared charset
    (UTF-7 spells CR `+AA0-`) and byte for byte (latin-1), so neither an unknown charset nor
    undecodable bytes can hide a line break."""
    text: list[str] = []
    for chunk, charset in email.header.decode_header(value):
        if isinstance(chunk, str):
            text.append(chunk)
            continue
        text.append(chunk.decode("latin-1"))
        # An unknown charset: the byte-for-byte form above is what is checked.
        with contextlib.suppress(LookupError):
            text.append(chunk.decode(charset or "ascii", errors="replace"))
    return "".join(text)


def check_header(field: str, value: str | None) -> None:
    if value is not None and has_forbidden_chars(value):
        raise invalid(f"{field} contains a line break or control character")


def check_address(field: str, value: str) -> str:
    """A single bare addr-spec (no display name, no list), syntactically valid; returns it for SMTP."""
    check_header(field, value)
    if not value or value != value.strip():
        raise invalid(f"{field} is empty or has surrounding whitespace")
    name, addr = email.utils.parseaddr(value)
    if name or addr != value or any(c in value for c in ',;<>"()\\ \t'):
        raise invalid(f"{field} must be one plain address")
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise invalid(f"{field} is not a valid address: {exc}") from None
    # Keep the address as given (envelope == header); IDN domains go out in their ASCII form.
    return value if value.isascii() else str(result.ascii_email)


def sender_of(command: SendEmail, default_sender: str | None) -> str:
    sender = command.from_email or default_sender
    if not sender:
        raise invalid("no sender: the command has no from_email and DEFAULT_SENDER_EMAIL is not set")
    return sender


def build_email(
    command: SendEmail, default_sender: str | None, *, now: datetime | None = None
) -> OutgoingEmail:
    """Validate every header value and build the plain-text UTF-8 message with one recipient."""
    check_header("subject", command.subject)
    check_header("to_name", command.to_name)
    check_header("from_email", command.from_email)
    check_header("to_email", command.to_email)
    sender = check_address("from_email", sender_of(command, default_sender))
    recipient = check_address("to_email", command.to_email)

    try:
        message = _mime(command, sender, recipient, now or datetime.now(UTC))
        wire = message.as_bytes()  # serialised here, so a transport never meets a bad message
    except (ValueError, TypeError, IndexError) as exc:  # the stdlib's own header checks
        raise invalid(f"message could not be built: {exc}") from None
    check_wire(wire)
    return OutgoingEmail(
        from_email=sender,
        to_email=recipient,
        to_name=command.to_name,
        subject=command.subject,
        body=command.body,
        message=message,
        wire=wire,
    )


def _mime(command: SendEmail, sender: str, recipient: str, now: datetime) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    local, _, domain = recipient.rpartition("@")
    message["To"] = Address(display_name=command.to_name or "", username=local, domain=domain)
    message["Subject"] = command.subject
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2])
    # Non-ASCII bodies go quoted-printable so no 8BITMIME support is needed from the server.
    message.set_content(
        command.body, charset="utf-8", cte=None if command.body.isascii() else "quoted-printable"
    )
    return message


def header_names(wire: bytes) -> list[str]:
    """The names of the header fields in serialised message bytes, in order (folded lines joined)."""
    head = wire.split(b"\r\n\r\n", 1)[0]
    names: list[str] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue  # a continuation of the previous field
        names.append(line.split(b":", 1)[0].decode("ascii", errors="replace"))
    return names


def check_wire(wire: bytes) -> None:
    """The serialised message has exactly the expected header fields and no stray CR or LF in its
    header block: the last line of defence, whatever the stdlib's folder did."""
    head, separator, _ = wire.partition(b"\r\n\r\n")
    stray = head.replace(b"\r\n", b"")
    if not separator or b"\r" in stray or b"\n" in stray or b"\x00" in head:
        raise invalid("message could not be built: malformed header block")
    if tuple(header_names(wire)) != EXPECTED_HEADERS:
        raise invalid("message could not be built: unexpected header fields")


def api_payload(outgoing: OutgoingEmail) -> dict[str, str | None]:
    """JSON body POSTed to EMAIL_API_URL (documented in the README)."""
    return {
        "to": outgoing.to_email,
        "to_name": outgoing.to_name,
        "from": outgoing.from_email,
        "subject": outgoing.subject,
        "body": outgoing.body,
    }


# ---- failure classes -------------------------------------------------------------------------


def smtp_code_is_transient(code: int) -> bool:
    """4xx replies are temporary; 5xx (and anything unexpected) are permanent."""
    return 400 <= code < 500


def http_status_is_transient(status: int) -> bool:
    return status == 429 or status >= 500


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(attempt: int, base_s: float, cap_s: float, retry_after_s: float | None = None) -> float:
    """Delay after failed attempt number `attempt` (1-based): Retry-After if given, else exponential;
    never more than `cap_s`."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), cap_s)
    exponential: float = base_s * 2.0 ** (attempt - 1)
    return min(exponential, cap_s)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text[:MAX_ERROR_CHARS]
