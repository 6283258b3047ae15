"""Bus subscribers: project events into the read models and answer waiting requests."""

from __future__ import annotations

from typing import Any

from bus.runtime import Bus
from contracts import topics
from contracts.campaigns import CampaignCommand, CampaignEvent
from contracts.notifier import NotifierCommand, NotifierEvent
from contracts.provisioning import ProvisioningCommand, ProvisioningEvent
from contracts.telephony import TelephonyCommand, TelephonyEvent
from contracts.webhooks import WebhookCommand, WebhookEvent
from gateway.projection import Projection

# (events topic, its schema), (commands topic, its schema) per service the gateway commands.
EVENT_TOPICS: tuple[tuple[str, Any], ...] = (
    (topics.PROVISIONING_EVENTS, ProvisioningEvent),
    (topics.TELEPHONY_EVENTS, TelephonyEvent),
    (topics.WEBHOOK_EVENTS, WebhookEvent),
    (topics.NOTIFIER_EVENTS, NotifierEvent),
    (topics.CAMPAIGN_EVENTS, CampaignEvent),
)
COMMAND_TOPICS: tuple[tuple[str, Any], ...] = (
    (topics.PROVISIONING_COMMANDS, ProvisioningCommand),
    (topics.TELEPHONY_COMMANDS, TelephonyCommand),
    (topics.WEBHOOK_COMMANDS, WebhookCommand),
    (topics.CAMPAIGN_COMMANDS, CampaignCommand),
    (topics.NOTIFIER_COMMANDS, NotifierCommand),
)


def subscribe(bus: Bus, projection: Projection) -> None:
    """One consumer group for all gateway replicas; answers reach the right replica via pg_notify."""
    # In batches: projecting only writes the read models, so a batch of events shares one
    # transaction and one offset commit (most of a campaign's messages pass here).
    bus.subscribe_many(dict(EVENT_TOPICS), projection.project, batch=True)
    # A dead-lettered command will never have an outcome event: answer it as failed.
    bus.subscribe_many(
        {topics.dead_letter(t): s for t, s in COMMAND_TOPICS}, projection.command_dead_lettered
    )


def topics_used() -> list[str]:
    return [t for t, _ in (*EVENT_TOPICS, *COMMAND_TOPICS)]
