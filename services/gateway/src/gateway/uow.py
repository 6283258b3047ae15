"""Transaction scope: the request or message owns the transaction; services never commit."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bus import inbox
from bus.runtime import Bus
from contracts.base import Message
from gateway.models import inbox as inbox_table
from gateway.repository import IdempotencyKeys, Operations, ReadModels, Recipients, Uploads


class UnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        self._sessions = sessions
        self._bus = bus

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        await self.session.begin()
        self.read_models = ReadModels(self.session)
        self.operations = Operations(self.session)
        self.uploads = Uploads(self.session)
        self.idempotency = IdempotencyKeys(self.session)
        self.recipients = Recipients(self.session)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                await self.session.commit()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def publish(self, topic: str, message: Message, *, key: str | None = None) -> None:
        await self._bus.publish_later(self.session, topic, message, key=key)

    async def claim(self, consumer: str, message_id: str) -> bool:
        return await inbox.claim(self.session, inbox_table, consumer, message_id)
