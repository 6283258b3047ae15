"""Real broker, real database, real ElevenLabs simulator; the service bootstrapped in-process."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bus.runtime import message_headers
from bus.secrets import Keyring, upload_url
from contracts import topics
from contracts.base import Command
from contracts.provisioning import DeleteTool
from devinfra.bus_harness import BusHarness, prepared, service_env, started
from devinfra.pytest_plugin import isolated
from elevenlabs_sim.testing import run_in_thread
from provisioning.bootstrap import Container, bootstrap, run_migrations
from provisioning.settings import Settings
from provisioning.uow import UnitOfWork

# This suite runs its own provisioning instance(s): own database and topics.
database_url, topic_prefix = isolated("provisioning")

# A passphrase: this suite runs the scrypt path of bus.secrets end to end.
SECRET_KEY = "provisioning test passphrase"
SECRET_SALT = "provisioning-tests-salt"
KEYRING = Keyring(SECRET_KEY, salt=SECRET_SALT)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    with run_in_thread() as url:
        yield url


@pytest.fixture(scope="session")
def settings(
    request: pytest.FixtureRequest, sim_url: str, file_server: tuple[str, dict[str, bytes]]
) -> Settings:
    values: dict[str, Any] = {
        **service_env(request),
        "GATEWAY_INTERNAL_URL": file_server[0],  # the stand-in gateway serves the staged uploads
        "ELEVENLABS_BASE_URL": sim_url,
        "ELEVENLABS_API_KEY": "sim-key",
        "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
        "SWITCHBOARD_SECRET_SALT": SECRET_SALT,
        "PROVISIONING_UPSTREAM_INITIAL_BACKOFF_S": 0.05,
        "PROVISIONING_UPSTREAM_MAX_BACKOFF_S": 1.0,
    }
    return prepared(
        Settings.model_validate(values),
        run_migrations,
        topics.PROVISIONING_COMMANDS,
        topics.PROVISIONING_EVENTS,
        topics.dead_letter(topics.PROVISIONING_COMMANDS),
    )


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    async with started(bootstrap(settings)) as box:
        yield box


@dataclass(kw_only=True)
class Harness(BusHarness[Command]):
    """Publishes commands like any producer would and collects every outcome event."""

    commands_topic = topics.PROVISIONING_COMMANDS
    events_topic = topics.PROVISIONING_EVENTS

    settings: Settings
    sim: httpx.AsyncClient

    def marker(self) -> Command:
        return DeleteTool(tool_id="marker-does-not-exist")

    async def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"method": method, "path": path}.items() if v}
        response = await self.sim.get("/_sim/requests", params=params)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries

    async def fault(self, **spec: Any) -> None:
        (await self.sim.post("/_sim/faults", json=spec)).raise_for_status()


@pytest.fixture(scope="session")
async def _harness(container: Container, settings: Settings, sim_url: str) -> AsyncIterator[Harness]:
    async with (
        httpx.AsyncClient(base_url=sim_url) as sim,
        Harness.connected(settings, headers=message_headers, sim=sim) as harness,
    ):
        yield harness


@pytest.fixture
async def harness(_harness: Harness) -> AsyncIterator[Harness]:
    await _harness.sim.delete("/_sim/requests")
    await _harness.sim.delete("/_sim/faults")
    yield _harness
    await _harness.sim.delete("/_sim/faults")


@pytest.fixture(scope="session")
def file_server_hits() -> list[str]:
    return []


@pytest.fixture(scope="session")
def file_server(file_server_hits: list[str]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stands in for the gateway's upload URLs (GATEWAY_INTERNAL_URL): serves bytes registered by path
    (`/internal/uploads/<id>`; `signed_upload_url` makes the URL), records every path asked for."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            file_server_hits.append(self.path)
            body = files.get(self.path.split("?", 1)[0])
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()


def signed_upload_url(base: str, upload_id: str, *, ttl_s: int = 3600) -> str:
    """The URL the gateway would put in the command for `upload_id` (signed, expiring in `ttl_s`)."""
    return upload_url(base, KEYRING, upload_id, int(time.time()) + ttl_s)


async def pretend_crashed(container: Container, command: Command) -> None:
    """As if an earlier delivery of `command` crashed after step 1 of the ledger (bus.ledger): its
    row stays `started`, so the next delivery recovers."""
    async with UnitOfWork(container.sessionmaker, container.bus) as uow:
        await uow.commands.start(command.message_id, command.type)
