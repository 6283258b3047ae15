"""Every Kafka topic name, in one place. Topics are a public interface: rename nothing.

Deployments may prefix every name (``KAFKA_TOPIC_PREFIX``) to share one cluster; the bus
runtime applies the prefix, so code always uses the names below.
"""

from typing import Final

PROVISIONING_COMMANDS: Final = "switchboard.provisioning.commands"
"""Commands for the provisioning service: tools, knowledge base, agents."""

PROVISIONING_EVENTS: Final = "switchboard.provisioning.events"
"""Outcomes of provisioning commands: resources created, updated, deleted, or the command failed."""

TELEPHONY_COMMANDS: Final = "switchboard.telephony.commands"
"""Commands for the telephony service: phone numbers, calls, customer sessions."""

TELEPHONY_EVENTS: Final = "switchboard.telephony.events"
"""Phone numbers imported/changed, calls placed and their status changes, customer sessions."""

WEBHOOK_COMMANDS: Final = "switchboard.webhooks.commands"
"""Commands for the tool-webhooks service (e.g. register the post-call webhook)."""

WEBHOOK_EVENTS: Final = "switchboard.webhooks.events"
"""What ElevenLabs told us: verified post-call webhooks; webhook registration."""

NOTIFIER_COMMANDS: Final = "switchboard.notifier.commands"
"""Commands for the notifier: send an e-mail."""

NOTIFIER_EVENTS: Final = "switchboard.notifier.events"
"""E-mails sent or failed."""

CAMPAIGN_COMMANDS: Final = "switchboard.campaigns.commands"
"""Public: submit, add recipients, cancel, pause, resume campaigns; do-not-call list changes."""

CAMPAIGN_EVENTS: Final = "switchboard.campaigns.events"
"""Public: every campaign and recipient progress change; do-not-call list changes."""

DEAD_LETTER_SUFFIX: Final = ".dlq"
"""A message that could not be handled after bounded retries goes to ``<topic>.dlq`` with the error."""


def dead_letter(topic: str) -> str:
    return f"{topic}{DEAD_LETTER_SUFFIX}"


ALL_TOPICS: Final = (
    PROVISIONING_COMMANDS,
    PROVISIONING_EVENTS,
    TELEPHONY_COMMANDS,
    TELEPHONY_EVENTS,
    WEBHOOK_COMMANDS,
    WEBHOOK_EVENTS,
    NOTIFIER_COMMANDS,
    NOTIFIER_EVENTS,
    CAMPAIGN_COMMANDS,
    CAMPAIGN_EVENTS,
)
