"""What every use case works with (`Deps`, built by `bootstrap`), and the few helpers they share.

Use cases are plain async functions `use_case(deps, message)`; each runs in its own `UnitOfWork`
(`deps.uow()`) and never commits itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from bus.secrets import Undecryptable, column_context, message_context
from campaigns.models import Campaign
from campaigns.settings import Settings
from campaigns.uow import UnitOfWork
from contracts.quiet_hours import QuietHoursRules

log = structlog.get_logger("campaigns")


@dataclass
class Deps:
    """`uow` opens one transaction per call; `wake` tells the scheduler that work was added or
    capacity freed (it ticks at once instead of after CAMPAIGNS_TICK_S); `clock` is the time every
    use case reads (aware, UTC), passed in so tests set it."""

    uow: Callable[[], UnitOfWork]
    settings: Settings
    quiet_hours: QuietHoursRules
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    clock: Callable[[], datetime] = field(default_factory=lambda: utc_now)


def utc_now() -> datetime:
    return datetime.now(UTC)


def rebind_credentials(
    settings: Settings, token: str | None, campaign_id: str, *, to_row: bool
) -> str | None:
    """Store credentials moved between the command field and the campaign's row (each ciphertext
    is bound to where it lives; the clear value stays inside bus.secrets). None when no
    configured key reads them: the calls then go without a store, as without credentials."""
    if token is None:
        return None
    field_, row = (
        message_context("ecommerce_credentials_encrypted"),
        column_context(Campaign.ecommerce_credentials_encrypted, campaign_id),
    )
    try:
        return settings.keyring.rebind(
            token, from_context=field_ if to_row else row, to_context=row if to_row else field_
        )
    except Undecryptable:
        log.warning("campaigns.store_credentials_undecryptable", campaign_id=campaign_id)
        return None
