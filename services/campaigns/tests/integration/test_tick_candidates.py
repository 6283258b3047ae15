"""A scheduler pass's first read (`CampaignRepository.tick_candidates`): the campaigns it may touch
and whether a follow-up call is due, in one statement, on a database of its own (the session's
holds other tests' campaigns; a deployment of single calls with follow-ups holds none).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.db import make_engine, make_sessionmaker
from campaigns.bootstrap import run_migrations
from campaigns.models import FollowUpCall
from campaigns.repository import CampaignRepository
from campaigns.settings import Settings
from devinfra.postgres import create_database, drop_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    name = f"campaigns_tick_{uuid.uuid4().hex[:8]}"
    url = await asyncio.to_thread(create_database, settings.database_url, name)
    try:
        await asyncio.to_thread(run_migrations, settings.model_copy(update={"database_url": url}))
        engine = make_engine(url, pool_size=1)
        try:
            yield engine
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(drop_database, settings.database_url, name)


def _follow_up(due_at: datetime) -> FollowUpCall:
    return FollowUpCall(
        conversation_id=f"conv_{uuid.uuid4().hex}",
        to_number="+14155550100",
        agent_id="agent_1",
        phone_number_id="phnum_1",
        provider="twilio",
        dynamic_variables={},
        due_at=due_at,
        status="scheduled",
        message_id=uuid.uuid4().hex,
    )


async def test_a_due_follow_up_is_seen_with_no_campaign_at_all_in_one_statement(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    sessions = make_sessionmaker(engine)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async def read() -> tuple[list[Any], bool]:
        statements.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            async with sessions() as session:
                found = await CampaignRepository(session).tick_candidates(now, now - timedelta(seconds=5))
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        assert len(statements) == 1, statements
        return list(found.campaigns), found.follow_ups_due

    assert await read() == ([], False)
    async with sessions() as session, session.begin():
        session.add(_follow_up(now + timedelta(minutes=1)))
    assert await read() == ([], False)  # not due yet
    async with sessions() as session, session.begin():
        session.add(_follow_up(now - timedelta(seconds=1)))
    assert await read() == ([], True)
