"""An in-memory unit of work for use-case tests (cosmicpython's FakeUnitOfWork): the repositories the
control, outcome and opt-out use cases call, over plain (transient) model objects; the outbox is a
list, committed only when the use case returns without an error.

Only what those use cases need is here; a use case calling anything else fails with an
AttributeError, which says what to add.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from campaigns.domain import RecipientStatus
from campaigns.models import Attempt, Campaign, CampaignCallerId, DispatchState, Recipient
from campaigns.uow import UnitOfWork
from contracts.base import Message
from contracts.topics import CAMPAIGN_EVENTS, TELEPHONY_COMMANDS


@dataclass
class Store:
    """What the fake database holds, shared by every unit of work opened on it."""

    campaigns: dict[str, Campaign] = field(default_factory=dict)
    recipients: dict[int, Recipient] = field(default_factory=dict)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    do_not_call: dict[str, str | None] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    committed: list[tuple[str, Message, str | None]] = field(default_factory=list)
    shared_throttle: DispatchState = field(
        default_factory=lambda: DispatchState(name="global", throttle=None)
    )

    def events(self, type_: str | None = None) -> list[Any]:
        """Messages committed on the campaign events topic (of one `type`), in order."""
        return [m for topic, m, _ in self.committed if topic == CAMPAIGN_EVENTS and type_ in (None, m.type)]

    def commands(self) -> list[Any]:
        return [m for topic, m, _ in self.committed if topic == TELEPHONY_COMMANDS]


class FakeCampaigns:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get_for_update(self, campaign_id: str) -> Campaign | None:
        return self._store.campaigns.get(campaign_id)

    async def total_in_flight(self) -> int:
        return sum(c.in_flight for c in self._store.campaigns.values())


class FakeRecipients:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _of(self, campaign_id: str) -> list[Recipient]:
        rows = [r for r in self._store.recipients.values() if r.campaign_id == campaign_id]
        return sorted(rows, key=lambda r: -1 if r.position is None else r.position)

    async def get_for_update(self, pk: int) -> Recipient | None:
        return self._store.recipients.get(pk)

    async def find_pk(self, campaign_id: str, recipient_id: str) -> int | None:
        return next((r.id for r in self._of(campaign_id) if r.recipient_id == recipient_id), None)

    async def close_scheduled(self, campaign_id: str, status: str, reason: str | None) -> list[Recipient]:
        closed = [r for r in self._of(campaign_id) if r.status == RecipientStatus.SCHEDULED]
        for r in closed:  # the one bulk UPDATE of the real repository
            r.status, r.reason, r.next_attempt_at, r.waiting_reason = status, reason, None, None
        return closed

    async def outcomes(self, campaign_id: str) -> tuple[dict[str, int], str | None]:
        rows = self._of(campaign_id)
        failed = [r.reason for r in rows if r.status == RecipientStatus.FAILED and r.reason is not None]
        return dict(Counter(r.status for r in rows)), failed[0] if failed else None


class FakeAttempts:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _find(self, campaign_id: str, recipient_id: str, attempt: int) -> Attempt | None:
        return next(
            (
                a
                for a in self._store.attempts.values()
                if (a.campaign_id, a.recipient_id, a.attempt) == (campaign_id, recipient_id, attempt)
            ),
            None,
        )

    async def lock_for_event(
        self, campaign_id: str, recipient_id: str, attempt: int
    ) -> tuple[Campaign, Attempt, Recipient, float | None] | None:
        found = self._find(campaign_id, recipient_id, attempt)
        campaign = self._store.campaigns.get(campaign_id)
        recipient = None if found is None else self._store.recipients.get(found.recipient_pk)
        if found is None or campaign is None or recipient is None:
            return None
        return campaign, found, recipient, self._store.shared_throttle.throttle

    async def exists(self, campaign_id: str, recipient_id: str, attempt: int) -> bool:
        return self._find(campaign_id, recipient_id, attempt) is not None

    async def get_for_update(self, message_id: str) -> Attempt | None:
        return self._store.attempts.get(message_id)


class FakeCallerIds:
    def __init__(self, store: Store) -> None:
        self.counted: list[tuple[str, str, int, int]] = []

    async def stats(self, campaign_id: str) -> list[CampaignCallerId]:
        return []

    async def count(
        self, campaign_id: str, phone_number_id: str, *, dials: int = 0, answered: int = 0
    ) -> None:
        self.counted.append((campaign_id, phone_number_id, dials, answered))


class FakeDispatch:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def global_for_update(self) -> DispatchState:
        return self._store.shared_throttle


class FakeDoNotCall:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, phone_number: str, reason: str | None, added_at_unix: int) -> tuple[str | None, int]:
        # The date is not kept here: the rule is the repository's (its integration test).
        if reason is None:
            reason = self._store.do_not_call.get(phone_number)
        self._store.do_not_call[phone_number] = reason
        return reason, added_at_unix

    async def remove(self, phone_number: str) -> bool:
        return self._store.do_not_call.pop(phone_number, None) is not None

    async def listed(self, numbers: list[str]) -> set[str]:
        return {n for n in numbers if n in self._store.do_not_call}


class FakeFollowUps:
    def __init__(self, store: Store) -> None:
        pass

    async def cancel_for_number(self, phone_number: str) -> int:
        return 0


class FakeUnitOfWork(UnitOfWork):
    """`async with` it as the real one: the outbox reaches `store.committed` only on success."""

    def __init__(self, store: Store) -> None:  # no sessionmaker, no bus
        self.store = store
        self._pending: list[tuple[str, Message, str | None]] = []
        self._claims: set[str] = set()
        self.campaigns = FakeCampaigns(store)  # type: ignore[assignment]
        self.recipients = FakeRecipients(store)  # type: ignore[assignment]
        self.attempts = FakeAttempts(store)  # type: ignore[assignment]
        self.caller_ids = FakeCallerIds(store)  # type: ignore[assignment]
        self.dispatch = FakeDispatch(store)  # type: ignore[assignment]
        self.do_not_call = FakeDoNotCall(store)  # type: ignore[assignment]
        self.follow_ups = FakeFollowUps(store)  # type: ignore[assignment]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.store.committed.extend(self._pending)
            self.store.claimed |= self._claims

    async def claim(self, message_id: str, consumer: str | None = None) -> bool:
        if message_id in self.store.claimed or message_id in self._claims:
            return False
        self._claims.add(message_id)
        return True

    async def publish(self, event: Message, key: str | None, *, topic: str | None = None) -> int:
        self._pending.append((topic or CAMPAIGN_EVENTS, event, key))
        return len(self._pending)

    async def send_command(self, command: Message, key: str | None) -> None:
        self._pending.append((TELEPHONY_COMMANDS, command, key))
