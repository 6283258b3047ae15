"""The transaction scope every service builds its UnitOfWork on.

`async with uow:` opens a session and a transaction, commits on success and rolls back on error;
services never commit themselves. Inbox claims and outbox messages join that transaction.
Inside a batch of messages (`Bus.subscribe(batch=True)`) the scope joins the batch's one
transaction instead, which the bus commits after the last message (`bus.batch`).
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bus import batch
from bus import inbox as bus_inbox
from bus.runtime import Bus
from contracts.base import Message


class TransactionScope:
    """Subclasses attach their repositories in `_open` and name their events topic."""

    session: AsyncSession
    events_topic: str
    inbox_table: Table
    consumer: str

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        self._sessionmaker = sessionmaker
        self._bus = bus

    def _open(self, session: AsyncSession) -> None:
        """Attach repositories to the new session."""

    _shared: batch.SharedTransaction | None = None

    async def __aenter__(self) -> Self:
        self._shared = batch.current()
        if self._shared is not None:
            self.session = await self._shared.join(self._sessionmaker)
        else:
            self.session = self._sessionmaker()
            await self.session.begin()
        self._open(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._shared is not None:
            # The bus commits or rolls back the whole batch; an error here fails all of it.
            if exc_type is not None:
                self._shared.failed = True
            return
        try:
            if exc_type is None:
                await self.session.commit()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def claim(self, message_id: str, consumer: str | None = None) -> bool:
        """True the first time this service (or `consumer`) handles `message_id`, in this transaction."""
        return await bus_inbox.claim(self.session, self.inbox_table, consumer or self.consumer, message_id)

    async def publish(self, event: Message, key: str | None, *, topic: str | None = None) -> None:
        """Queue `event` (on the service's events topic unless `topic`); sent after commit."""
        await self._bus.publish_later(self.session, topic or self.events_topic, event, key=key)

    async def publish_replaceable(self, event: Message, key: str | None, *, topic: str | None = None) -> int:
        """Like `publish`; returns its queued row's id, for `replace_queued`."""
        return await self._bus.publish_replaceable(self.session, topic or self.events_topic, event, key=key)

    async def replace_queued(
        self, row_id: int, event: Message, key: str | None, *, topic: str | None = None
    ) -> None:
        """Replace a message this transaction queued (see `Bus.replace_queued`)."""
        await self._bus.replace_queued(self.session, row_id, topic or self.events_topic, event, key=key)
