"""Commands to and events from the notifier service (e-mail delivery)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from contracts.base import Command, Event


class SendEmail(Command):
    """Send one rendered e-mail. `message_id` identifies the tool invocation: it is sent at most once."""

    type: Literal["email.send"] = "email.send"
    conversation_id: str = Field(description="Conversation whose agent asked for the e-mail.")
    template_id: str = Field(description="Template that was rendered.")
    to_email: str = Field(description="Recipient address.")
    to_name: str | None = Field(default=None, description="Recipient display name.")
    from_email: str | None = Field(default=None, description="Sender; the notifier's default when absent.")
    subject: str = Field(description="Rendered subject (one line).")
    body: str = Field(description="Rendered plain-text body.")


class EmailSent(Event):
    """An e-mail was handed to the mail server or e-mail API."""

    type: Literal["email.sent"] = "email.sent"
    conversation_id: str = Field(description="Conversation.")
    template_id: str = Field(description="Template.")
    to_email: str = Field(description="Recipient address.")
    from_email: str = Field(description="Sender address used.")
    subject: str = Field(description="Subject sent.")
    transport: Literal["smtp", "http"] = Field(description="How it was sent.")
    sent_at_unix: int = Field(description="When it was accepted, unix seconds.")


class EmailFailed(Event):
    """An e-mail could not be sent (after retries for transient failures)."""

    type: Literal["email.failed"] = "email.failed"
    conversation_id: str = Field(description="Conversation.")
    template_id: str = Field(description="Template.")
    to_email: str = Field(description="Recipient address.")
    subject: str = Field(description="Subject that was to be sent.")
    error: str = Field(description="Why it failed.")
    permanent: bool = Field(
        description="True when retrying cannot help (rejected address, invalid header...)."
    )
    failed_at_unix: int = Field(description="When it was given up, unix seconds.")


NotifierCommand = Annotated[SendEmail, Field(discriminator="type")]
NotifierEvent = Annotated[EmailSent | EmailFailed, Field(discriminator="type")]
