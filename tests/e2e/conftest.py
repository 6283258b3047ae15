"""The whole stack as real processes (simulator, provisioning, gateway) on the test broker and database."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from devinfra.broker import free_port
from devinfra.postgres import create_database, drop_database
from devinfra.pytest_plugin import isolated
from devinfra.quiet_hours import closed_now, write_rules
from devinfra.stack import Stack
from devinfra.standins.stores import StoreState, serve, woo_app
from devinfra.standins.webhook_receiver import Receiver, serve_receiver

# This suite runs its own e2e instance(s): own database and topics.
database_url, topic_prefix = isolated("e2e")

API_KEY = "e2e-key"
FUZZ_WEBHOOK_SECRET = "e2e-fuzz-webhook-secret"
#: A key only the canary test uses (test_canaries.py): distinctive, so a search for it finds only leaks.
CANARY_API_KEY = "sbk-canary-apikey-5e1f0c9d27"
# The production default: on a loaded machine a write can take seconds, and a shorter wait turned
# plain 200 answers into 202s (a flake). The slow-upstream test delays past it instead.
REPLY_TIMEOUT_S = 10
# The quiet-hours suite dials Ireland (+353), whose hours the stack closes for six hours from its
# start; libphonenumber places +353 numbers in Europe/London (same clock as Dublin all year).
QUIET_ZONE = "Europe/London"


SERVICES = [
    "elevenlabs-sim",
    "provisioning",
    "telephony",
    "tool-webhooks",
    "notifier",
    "campaigns",
    "gateway",
]
SENDER_FALLBACK = "calls@switchboard.test"


@dataclass
class Mailbox:
    """What the SMTP server received: (envelope sender, envelope recipients, raw message)."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def woo() -> Iterator[tuple[str, StoreState]]:
    state = StoreState()
    with serve(woo_app(state)) as url:
        yield url, state


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[Receiver]:
    """A customer's webhook endpoint on loopback (allowlisted for the notifier like a private one)."""
    with serve_receiver() as receiver:
        yield receiver


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules on a stack of their own (marked ``own_stack``) run before every other test of the
    session. PostgreSQL's connections are shared by the whole run (max_connections is 100 here):
    a private stack with replicas holds ~50, the shared end-to-end stack ~35 and the integration
    suites' containers more, so the private stacks run while nothing else is up."""
    own = [item for item in items if item.get_closest_marker("own_stack") is not None]
    if own:
        rest = [item for item in items if item.get_closest_marker("own_stack") is None]
        items[:] = own + rest


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@contextmanager
def running_stack(
    *,
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    topic_prefix: str,
    database_url: str,
    log_dir: Path,
    smtp_port: int,
    woo_url: str,
    webhook_receiver_url: str | None = None,
) -> Iterator[Stack]:
    """The whole stack on its own database and topics, post-call webhook registered. Suites that
    freeze or kill its workers run one of their own (see `private_stack`), so what their faults
    leave behind in the broker's consumer groups never reaches the shared one."""
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "SWITCHBOARD_API_KEYS": f"{API_KEY},second-key,{CANARY_API_KEY}",
        # A configured post-call secret besides the registered one: the fuzz test signs with it.
        "ELEVENLABS_WEBHOOK_SECRET": FUZZ_WEBHOOK_SECRET,
        "GATEWAY_REPLY_TIMEOUT_S": str(REPLY_TIMEOUT_S),
        # Every test drives the gateway with the same key, hundreds of requests a second at times:
        # unlimited here (0). The per-key limits have their own tests (services/gateway integration).
        "GATEWAY_RATE_LIMIT_PER_S": "0",
        # Longer than the slow-upstream fault (REPLY_TIMEOUT_S + 1.5 s), so it is slow, not a timeout.
        "PROVISIONING_UPSTREAM_TIMEOUT_S": str(REPLY_TIMEOUT_S * 3),
        "KB_MAX_UPLOAD_BYTES": str(64 * 1024),
        "TELEPHONY_RECONCILE_AFTER_S": "3",
        "TELEPHONY_RECONCILE_INTERVAL_S": "1",
        "TELEPHONY_RECOVERY_SETTLE_S": "1",
        # A worker silent this long loses the attempts it owns (as long as the consumer session).
        "TELEPHONY_OWNER_TIMEOUT_S": "2",
        "ELEVENLABS_SIM_CALL_DURATION_MS": "300",
        "ELEVENLABS_SIM_RING_MS": "100",
        "CAMPAIGNS_RETRY_DELAY_SCALE": "0.002",
        "CAMPAIGNS_TICK_S": "0.1",
        # Calls at any hour, except to Ireland (+353), closed for the next six hours: the quiet-hours
        # suite's country. Numbers are redialled across suites: the platform cap is out of the way
        # (its own tests run on clocks passed in, services/campaigns).
        "QUIET_HOURS_FILE": str(write_rules(log_dir / "quiet_hours.yaml", {"IE": closed_now(QUIET_ZONE)})),
        "CAMPAIGNS_MAX_ATTEMPTS_PER_NUMBER_24H": "1000000",
        "BATCH_MAX_RECIPIENTS": "1000",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "DEFAULT_SENDER_EMAIL": SENDER_FALLBACK,
        # The store stand-in listens on loopback over http: allowed explicitly, like a private deployment.
        "OUTBOUND_ALLOW_HOSTS": ",".join(
            u.removeprefix("http://") for u in (woo_url, webhook_receiver_url) if u is not None
        ),
        # Webhooks retried in seconds, not hours; a receiver that hangs is given up on after 2 s.
        "WEBHOOKS_TIMEOUT_S": "2",
        "WEBHOOKS_RETRY_BASE_S": "0.5",
        "WEBHOOKS_RETRY_MAX_S": "3",
        "WEBHOOKS_POLL_INTERVAL_S": "0.2",
        "ALLOW_HTTP_STORES": "true",
        "LOG_LEVEL": "INFO",
        **kafka_client_env,
    }
    with Stack(env, output=os.environ.get("E2E_OUTPUT") == "1", log_dir=log_dir) as st:
        st.start(SERVICES)
        # ElevenLabs (the simulator) delivers post-call webhooks to tool-webhooks, signed with the
        # secret that registration stored: the same path a user takes with a public URL.
        st.register_post_call_webhook(API_KEY)
        yield st


@pytest.fixture(scope="session")
def stack(
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    topic_prefix: str,
    database_url: str,
    log_dir: Path,
    smtp: tuple[int, Mailbox],
    woo: tuple[str, StoreState],
    webhook_receiver: Receiver,
) -> Iterator[Stack]:
    with running_stack(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        kafka_client_env=kafka_client_env,
        topic_prefix=topic_prefix,
        database_url=database_url,
        log_dir=log_dir,
        smtp_port=smtp[0],
        woo_url=woo[0],
        webhook_receiver_url=webhook_receiver.base_url,
    ) as st:
        yield st


@contextmanager
def private_stack(
    label: str,
    *,
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    postgres_server_url: str,
    log_dir: Path,
    smtp: tuple[int, Mailbox],
    woo: tuple[str, StoreState],
) -> Iterator[Stack]:
    """A stack of the suite's own (own database, topics and so consumer groups), dropped after."""
    name = f"sb_test_{label}_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres_server_url, name)
    try:
        with running_stack(
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            kafka_client_env=kafka_client_env,
            topic_prefix=f"t{uuid.uuid4().hex[:8]}.{label}.",
            database_url=url,
            log_dir=log_dir,
            smtp_port=smtp[0],
            woo_url=woo[0],
        ) as st:
            yield st
    finally:
        drop_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("gateway"), headers={"X-API-Key": API_KEY}, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def sim(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("elevenlabs-sim"), timeout=10) as client:
        yield client


def own_stack(label: str) -> tuple[Any, Any, Any, Any]:
    """`log_dir`, `stack`, `api` and `sim` fixtures for one test module, on a stack of its own
    (`private_stack`). For suites that freeze (SIGSTOP) or kill the stack's workers: a member the
    broker still counts in a consumer group after a pause must not stall the shared stack's groups.
    In the module: ``log_dir, stack, api, sim = own_stack("pauses")``."""

    @pytest.fixture(scope="module", name="log_dir")
    def own_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return tmp_path_factory.mktemp(f"{label}-logs")

    @pytest.fixture(scope="module", name="stack")
    def own_stack_(
        kafka_bootstrap_servers: str,
        kafka_client_env: dict[str, str],
        postgres_server_url: str,
        log_dir: Path,
        smtp: tuple[int, Mailbox],
        woo: tuple[str, StoreState],
    ) -> Iterator[Stack]:
        with private_stack(
            label,
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            kafka_client_env=kafka_client_env,
            postgres_server_url=postgres_server_url,
            log_dir=log_dir,
            smtp=smtp,
            woo=woo,
        ) as st:
            yield st

    @pytest.fixture(scope="module", name="api")
    def own_api(stack: Stack) -> Iterator[httpx.Client]:
        with httpx.Client(
            base_url=stack.url("gateway"), headers={"X-API-Key": API_KEY}, timeout=30
        ) as client:
            yield client

    @pytest.fixture(scope="module", name="sim")
    def own_sim(stack: Stack) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=stack.url("elevenlabs-sim"), timeout=10) as client:
            yield client

    return own_log_dir, own_stack_, own_api, own_sim


def upstream_requests(sim: httpx.Client, path: str = "", method: str | None = None) -> list[dict[str, Any]]:
    params = {"path": path} | ({"method": method} if method else {})
    return list(sim.get("/_sim/requests", params=params).json()["requests"])


class DialCounter:
    """Dials the simulator placed per number since it was created. The stack (and the simulator's
    counts) outlive a test, and tests draw their numbers at random: another test's dials of the
    same number must not count as this one's."""

    def __init__(self, sim: httpx.Client) -> None:
        self._sim = sim
        self._before = self._now()

    def _now(self) -> dict[str, int]:
        return dict(self._sim.get("/_sim/calls/stats").json()["dials_by_number"])

    def since(self) -> dict[str, int]:
        return {n: c - self._before.get(n, 0) for n, c in self._now().items() if c > self._before.get(n, 0)}


def poll(check: Callable[[], Any], timeout: float = 90.0, interval: float = 0.1) -> Any:
    """Return check()'s first truthy value, failing after `timeout` seconds (a deadline only: wide,
    since the machine running the suite may be loaded; it costs nothing when the check passes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
