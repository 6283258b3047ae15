"""Real PostgreSQL; the gateway bootstrapped in-process (its bus is not started: nothing here needs Kafka)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.dialects.postgresql import insert

from bus.migrate import upgrade
from bus.secrets import new_key
from devinfra.pytest_plugin import isolated
from devinfra.quiet_hours import NO_QUIET_HOURS
from gateway.bootstrap import Container, bootstrap
from gateway.models import Agent, PhoneNumber
from gateway.settings import Settings

# This suite runs its own gateway instance: own database and topics.
database_url, topic_prefix = isolated("gateway")

API_KEY = "gateway-test-key"
MIGRATIONS = Path(__file__).parents[2] / "src" / "gateway" / "migrations"


@pytest.fixture(scope="session")
def settings(database_url: str, topic_prefix: str) -> Settings:
    settings = Settings.model_validate(
        {
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": 2,  # few idle connections through the session (devinfra.bus_harness)
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "SWITCHBOARD_API_KEYS": API_KEY,
            "SWITCHBOARD_SECRET_KEY": new_key(),
            # No service answers commands here: a write answers 202 with its operation at once.
            "GATEWAY_REPLY_TIMEOUT_S": 0.05,
            # Bodies past the bus's limit reach the routes, so its check (the second gate) is tested;
            # test_request_guard tests the body cap (the first) at its default.
            "GATEWAY_MAX_BODY_BYTES": 4 * 1024 * 1024,
            # These suites run at any hour: single calls are allowed around the clock here (the
            # quiet hours have their own tests: libs/contracts, campaigns and the e2e suite).
            "QUIET_HOURS_FILE": str(NO_QUIET_HOURS),
        }
    )
    upgrade(MIGRATIONS, settings.database_url)
    return settings


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    box = bootstrap(settings)
    try:
        yield box
    finally:
        await box.http.aclose()
        await box.engine.dispose()


async def seed_agent_and_number(
    container: Container, *, agent_id: str, name: str, first_message: str, phone_number_id: str, label: str
) -> None:
    """An agent and a Twilio number in the read model, as provisioning's events would leave them
    (idempotent: tests of one module share them)."""
    now = datetime.now(UTC)
    async with container.engine.begin() as connection:
        await connection.execute(
            insert(Agent)
            .values(
                agent_id=agent_id,
                name=name,
                conversation_config={"agent": {"first_message": first_message}},
                platform_settings={},
                tags=[],
                created_at_unix=0,
                last_event_at=now,
            )
            .on_conflict_do_nothing()
        )
        await connection.execute(
            insert(PhoneNumber)
            .values(
                phone_number_id=phone_number_id,
                phone_number="+14155550100",
                label=label,
                provider="twilio",
                created_at_unix=0,
                last_event_at=now,
            )
            .on_conflict_do_nothing()
        )
