"""Message metadata shared by every command and event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def new_message_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Metadata every message on the bus carries in its JSON body.

    Consumers ignore fields they do not know (tolerant reader), so producers may add fields freely.
    """

    # Unknown fields are ignored rather than rejected: an older consumer must keep reading
    # messages from a newer producer.
    model_config = ConfigDict(extra="ignore", frozen=True)

    message_id: str = Field(
        default_factory=new_message_id,
        description="Unique id of this message; consumers deduplicate on it (at-least-once delivery).",
    )
    type: str = Field(description="Message type, e.g. `agent.created`; selects the schema.")
    version: int = Field(default=1, description="Schema version of this message type.")
    occurred_at: datetime = Field(default_factory=utcnow, description="When the message was produced (UTC).")
    correlation_id: str | None = Field(
        default=None, description="Id shared by every message and HTTP call of one user request or flow."
    )
    causation_id: str | None = Field(
        default=None, description="`message_id` of the message (usually a command) that caused this one."
    )


class Command(Message):
    """A request for a service to do something. Named imperatively."""


class Event(Message):
    """A fact that happened. Named in the past tense."""


class CommandFailed(Event):
    """A command could not be carried out; carries the error a caller should see."""

    type: Literal["command.failed"] = "command.failed"
    command_type: str = Field(description="`type` of the command that failed.")
    status_code: int = Field(
        description="HTTP-like status describing the failure (404, 422, 401, 429, 502...)."
    )
    error: str = Field(description="Human-readable error, shown to the API caller.")
    detail: str | None = Field(default=None, description="Additional detail, e.g. the upstream message.")
