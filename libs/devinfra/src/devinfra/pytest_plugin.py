"""The one fixture layer that decides test infrastructure.

Registered from the repository's root ``conftest.py`` (``pytest_plugins = ["devinfra.pytest_plugin"]``).
All fixtures are session-scoped and synchronous, so they do not depend on pytest-asyncio loop scopes.

Kafka:    KAFKA_BOOTSTRAP_SERVERS -> testcontainers Kafka (if a Docker engine answers) -> embedded Tansu.
Postgres: DATABASE_URL -> testcontainers Postgres (Docker) -> local server on 127.0.0.1:5432 ->
          embedded PostgreSQL in a temp dir.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .broker import TANSU_CLIENT_ENV, start_tansu
from .postgres import create_database, drop_database, server_answers, start_embedded_postgres
from .settings import StackSettings

__all__ = [
    "database_url",
    "devinfra_settings",
    "kafka_bootstrap_servers",
    "kafka_client_env",
    "postgres_server_url",
    "topic_prefix",
]

LOCAL_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def docker_available() -> bool:
    """True if a Docker engine answers a ping quickly (never raises)."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def devinfra_settings() -> StackSettings:
    return StackSettings()


@pytest.fixture(scope="session")
def _docker_available() -> bool:
    return docker_available()


@pytest.fixture(scope="session")
def _kafka(devinfra_settings: StackSettings, _docker_available: bool) -> Iterator[tuple[str, dict[str, str]]]:
    if devinfra_settings.KAFKA_BOOTSTRAP_SERVERS:
        yield devinfra_settings.KAFKA_BOOTSTRAP_SERVERS, {}
        return
    if _docker_available:
        from testcontainers.kafka import KafkaContainer

        container: Any = KafkaContainer()
        container.start()
        try:
            yield str(container.get_bootstrap_server()), {}
        finally:
            container.stop()
        return
    broker = start_tansu()
    try:
        yield broker.bootstrap_servers, dict(TANSU_CLIENT_ENV)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(_kafka: tuple[str, dict[str, str]]) -> str:
    """``host:port`` of a Kafka-protocol broker for this session."""
    return _kafka[0]


@pytest.fixture(scope="session")
def kafka_client_env(_kafka: tuple[str, dict[str, str]]) -> dict[str, str]:
    """Client tunings to pass to services (TANSU_CLIENT_ENV for the embedded broker, else {})."""
    return dict(_kafka[1])


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    """Unique per session; pass as KAFKA_TOPIC_PREFIX so parallel sessions never share topics."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture(scope="session")
def postgres_server_url(devinfra_settings: StackSettings, _docker_available: bool) -> Iterator[str]:
    """SQLAlchemy asyncpg URL of a server (maintenance DB) where tests may create databases."""
    if devinfra_settings.DATABASE_URL:
        yield devinfra_settings.DATABASE_URL
        return
    if _docker_available:
        from testcontainers.postgres import PostgresContainer

        container: Any = PostgresContainer("postgres:16-alpine", driver="asyncpg")
        container.start()
        try:
            yield str(container.get_connection_url())
        finally:
            container.stop()
        return
    if server_answers(LOCAL_POSTGRES_URL, timeout=1.0):
        yield LOCAL_POSTGRES_URL
        return
    tmp = Path(tempfile.mkdtemp(prefix="sb-pg-"))
    server = start_embedded_postgres(tmp / "data", fast=True)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)  # elsewhere when root could not share tmp
        shutil.rmtree(tmp, ignore_errors=True)


def _fresh_database(server_url: str, label: str) -> Iterator[str]:
    name = f"sb_test_{label}{uuid.uuid4().hex[:12]}"
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database ``sb_test_<hex>`` for this session (dropped at the end)."""
    yield from _fresh_database(postgres_server_url, "")


def isolated(label: str) -> tuple[Any, Any]:
    """`database_url` and `topic_prefix` fixtures of one test suite's own.

    A suite that runs a service (in process, or the e2e stack as processes) must not share its
    consumer groups or its tables with another suite's instance of that service in the same pytest
    session. In that suite's conftest: ``database_url, topic_prefix = isolated("telephony")``.
    """

    @pytest.fixture(scope="session", name="database_url")
    def suite_database(postgres_server_url: str) -> Iterator[str]:
        yield from _fresh_database(postgres_server_url, f"{label}_")

    @pytest.fixture(scope="session", name="topic_prefix")
    def suite_topic_prefix() -> str:
        return f"t{uuid.uuid4().hex[:8]}.{label}."

    return suite_database, suite_topic_prefix
