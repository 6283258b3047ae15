"""Which message types travel on which topic, for parsing and for the JSON Schema export."""

from __future__ import annotations

from typing import Any, Final

from pydantic import TypeAdapter

from contracts import topics
from contracts.campaigns import CampaignCommand, CampaignEvent
from contracts.notifier import NotifierCommand, NotifierEvent
from contracts.provisioning import ProvisioningCommand, ProvisioningEvent
from contracts.telephony import TelephonyCommand, TelephonyEvent
from contracts.webhooks import WebhookCommand, WebhookEvent

TOPIC_SCHEMAS: Final[dict[str, Any]] = {
    topics.PROVISIONING_COMMANDS: ProvisioningCommand,
    topics.PROVISIONING_EVENTS: ProvisioningEvent,
    topics.TELEPHONY_COMMANDS: TelephonyCommand,
    topics.TELEPHONY_EVENTS: TelephonyEvent,
    topics.WEBHOOK_COMMANDS: WebhookCommand,
    topics.WEBHOOK_EVENTS: WebhookEvent,
    topics.NOTIFIER_COMMANDS: NotifierCommand,
    topics.NOTIFIER_EVENTS: NotifierEvent,
    topics.CAMPAIGN_COMMANDS: CampaignCommand,
    topics.CAMPAIGN_EVENTS: CampaignEvent,
}


def adapter(topic: str) -> TypeAdapter[Any]:
    return TypeAdapter(TOPIC_SCHEMAS[topic])


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12) of every topic's message union, keyed by topic name."""
    return {
        topic: TypeAdapter(schema).json_schema(mode="serialization")
        for topic, schema in TOPIC_SCHEMAS.items()
    }
