"""Subscribers: decode a notifier command and hand it to its use case."""

from __future__ import annotations

from bus.runtime import Bus
from contracts import topics
from contracts.notifier import NotifierCommand, SendEmail
from notifier.service import NotifierService


def register(bus: Bus, service: NotifierService) -> None:
    async def handle(command: SendEmail) -> None:
        """`email.send`: send one rendered e-mail, at most once per message_id."""
        await service.send_email(command)

    bus.subscribe(topics.NOTIFIER_COMMANDS, NotifierCommand, handle)
