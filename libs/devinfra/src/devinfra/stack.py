"""The local Switchboard stack: ``python -m devinfra.stack up`` (what ``make up`` runs) and
:class:`Stack`, the same machinery for end-to-end tests.

Services are found through the :data:`SERVICES` registry: a service is started when its module
is importable *and* runnable (``<module>/__main__.py`` exists); others are skipped with a note,
so the stack works while services are still being written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .broker import TANSU_CLIENT_ENV, EmbeddedBroker, free_port, port_is_free, start_tansu
from .postgres import EmbeddedPostgres, create_database, start_embedded_postgres
from .procs import (
    ManagedProcess,
    Supervisor,
    install_signal_handlers,
    run_foreground,
    terminate_all,
    wait_for_http,
)
from .quiet_hours import NO_QUIET_HOURS
from .settings import StackSettings

__all__ = [
    "SANDBOX_API_KEY",
    "SERVICES",
    "Service",
    "Stack",
    "StackError",
    "main",
    "runnable",
    "up",
]

SANDBOX_API_KEY = "sim-key"
#: Calling rules lifted in sandbox mode unless set (README "Quiet hours and frequency caps").
SANDBOX_CALLING_RULES = {
    "QUIET_HOURS_FILE": str(NO_QUIET_HOURS),
    "CAMPAIGNS_MAX_ATTEMPTS_PER_NUMBER_24H": "1000000",
}
SIM = "elevenlabs-sim"


@dataclass(frozen=True)
class Service:
    """One entry of the registry. ``ready_url`` is formatted with the port variables
    (e.g. ``{GATEWAY_PORT}``); ``args`` may use ``{port}``."""

    name: str
    module: str
    port_env: str
    default_port: int
    ready_url: str
    migrate: bool = True
    sandbox_only: bool = False
    args: tuple[str, ...] = ()
    summary: str = ""


SERVICES: list[Service] = [
    Service(
        name=SIM,
        module="elevenlabs_sim",
        port_env="ELEVENLABS_SIM_PORT",
        default_port=8090,
        ready_url="http://127.0.0.1:{ELEVENLABS_SIM_PORT}/_sim/state",
        migrate=False,
        sandbox_only=True,
        args=("--port", "{port}"),
        summary="ElevenLabs simulator (state: /_sim/state)",
    ),
    Service(
        name="provisioning",
        module="provisioning",
        port_env="PROVISIONING_PORT",
        default_port=8010,
        ready_url="http://127.0.0.1:{PROVISIONING_PORT}/health/ready",
    ),
    Service(
        name="telephony",
        module="telephony",
        port_env="TELEPHONY_PORT",
        default_port=8011,
        ready_url="http://127.0.0.1:{TELEPHONY_PORT}/health/ready",
    ),
    Service(
        name="campaigns",
        module="campaigns",
        port_env="CAMPAIGNS_PORT",
        default_port=8012,
        ready_url="http://127.0.0.1:{CAMPAIGNS_PORT}/health/ready",
    ),
    Service(
        name="notifier",
        module="notifier",
        port_env="NOTIFIER_PORT",
        default_port=8013,
        ready_url="http://127.0.0.1:{NOTIFIER_PORT}/health/ready",
    ),
    Service(
        name="tool-webhooks",
        module="tool_webhooks",
        port_env="TOOL_WEBHOOKS_PORT",
        default_port=8001,
        ready_url="http://127.0.0.1:{TOOL_WEBHOOKS_PORT}/health/ready",
        summary="tool webhooks for ElevenLabs agents",
    ),
    Service(
        name="gateway",
        module="gateway",
        port_env="GATEWAY_PORT",
        default_port=8000,
        ready_url="http://127.0.0.1:{GATEWAY_PORT}/health/ready",
        summary="REST API (docs: /docs)",
    ),
]

_BY_NAME = {s.name: s for s in SERVICES}


# `make up` restarts a crashed service after 1 s, 2 s, 4 s ... at most 30 s; one that stays up a
# minute starts over at 1 s.
RESTART_BACKOFF_S = 1.0
RESTART_BACKOFF_MAX_S = 30.0
RESTART_RESET_S = 60.0


class StackError(RuntimeError):
    """A migration failed, a service did not become ready, or one exited unexpectedly."""


def runnable(module: str) -> bool:
    """``python -m module`` would work: the package is importable and has a ``__main__``.
    Checked without importing the package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.submodule_search_locations is None:  # a plain module
        return True
    return any((Path(loc) / "__main__.py").exists() for loc in spec.submodule_search_locations)


def _note(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


class Stack:
    """Services as real subprocesses against a given broker + database.

    ``env`` overlays our environment for every service (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS,
    KAFKA_TOPIC_PREFIX, tunings, ...). With ``free_ports`` each service whose port variable is not
    in ``env`` gets a free loopback port (so tests never collide with ``make up``); otherwise the
    registry defaults are used. If ELEVENLABS_API_KEY is absent the simulator is started (when
    runnable) and ELEVENLABS_BASE_URL / ELEVENLABS_API_KEY point at it. Missing
    SWITCHBOARD_SECRET_KEY / SWITCHBOARD_API_KEYS get ephemeral values (read them from :attr:`env`).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        free_ports: bool = True,
        ready_timeout: float = 60.0,
        stop_timeout: float = 5.0,
        output: bool = True,
        supervisor: Supervisor | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self._env: dict[str, str] = dict(env or {})
        self.free_ports = free_ports
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.output = output
        self.log_dir = log_dir
        self.supervisor = supervisor or Supervisor()
        self.started: list[str] = []
        self.skipped: list[str] = []

    # -- configuration ------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The environment overlay given to every service (after :meth:`start` filled it in)."""
        return dict(self._env)

    def port(self, name: str) -> int:
        svc = _BY_NAME[name]
        return int(self._env.get(svc.port_env, svc.default_port))

    def url(self, name: str) -> str:
        """Base URL of a service, e.g. ``http://127.0.0.1:8000``."""
        return f"http://127.0.0.1:{self.port(name)}"

    def ready_url(self, name: str) -> str:
        ports = {s.port_env: self.port(s.name) for s in SERVICES}
        return _BY_NAME[name].ready_url.format(**ports)

    def _fill_env(self, selected: list[Service], sandbox: bool) -> None:
        env = self._env
        for svc in SERVICES:
            if svc.port_env not in env:
                env[svc.port_env] = str(free_port() if self.free_ports else svc.default_port)
        if sandbox and any(s.name == SIM for s in selected):
            env["ELEVENLABS_BASE_URL"] = self.url(SIM)
            env["ELEVENLABS_API_KEY"] = SANDBOX_API_KEY
            env["ELEVENLABS_SIM_API_KEY"] = SANDBOX_API_KEY
            # The simulator rings nobody: "Try it" works at any hour and as often as it is run.
            # Set either variable to see quiet hours and the frequency cap at work.
            for name, value in SANDBOX_CALLING_RULES.items():
                if name not in env and name not in os.environ:
                    env[name] = value
        # Seven services (more with replicas) share one PostgreSQL server, whose max_connections is
        # often the default 100: keep few idle connections each; load still opens the overflow.
        env.setdefault("DATABASE_POOL_SIZE", "2")
        # Provisioning fetches uploads only from the gateway's origin: tell every service where it is.
        env.setdefault("GATEWAY_INTERNAL_URL", f"http://127.0.0.1:{env['GATEWAY_PORT']}")
        if not env.get("SWITCHBOARD_SECRET_KEY"):
            from cryptography.fernet import Fernet

            env["SWITCHBOARD_SECRET_KEY"] = Fernet.generate_key().decode()
        if not env.get("SWITCHBOARD_API_KEYS"):
            env["SWITCHBOARD_API_KEYS"] = "sk_dev_" + secrets.token_urlsafe(24)

    def _select(self, services: Sequence[str] | None, sandbox: bool) -> list[Service]:
        if services is not None:
            unknown = [n for n in services if n not in _BY_NAME]
            if unknown:
                raise ValueError(f"unknown services {unknown}; known: {list(_BY_NAME)}")
            wanted = [s for s in SERVICES if s.name in services]
        else:
            wanted = [s for s in SERVICES if sandbox or not s.sandbox_only]
        selected = []
        for svc in wanted:
            if runnable(svc.module):
                selected.append(svc)
            else:
                self.skipped.append(svc.name)
                _note(f"skipping {svc.name}: `python -m {svc.module}` is not available yet")
        return selected

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, services: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> list[str]:
        """Run migrations (sequentially) and start ``services`` (None: all runnable ones; the
        simulator only in sandbox mode), waiting until each one is ready. Returns the names started."""
        if env:
            self._env.update(env)
        sandbox = not self._env.get("ELEVENLABS_API_KEY")
        selected = self._select(services, sandbox)
        self._fill_env(selected, sandbox)
        try:
            sim = [s for s in selected if s.name == SIM]
            rest = [s for s in selected if s.name != SIM]
            for svc in sim:  # others may talk to it while starting
                self._spawn(svc)
                self._wait_ready(svc.name)
            for svc in rest:
                if svc.migrate:
                    self.migrate(svc.name)
            for svc in rest:
                self._spawn(svc)
            for svc in rest:
                self._wait_ready(svc.name)
        except BaseException:
            self.stop()
            raise
        return [s.name for s in selected]

    def migrate(self, name: str) -> None:
        svc = _BY_NAME[name]
        _note(f"migrating {name}: python -m {svc.module} migrate")
        rc = run_foreground(
            f"{name}:migrate",
            [sys.executable, "-m", svc.module, "migrate"],
            env=self._env,
            timeout=self.ready_timeout,
        )
        if rc != 0:
            raise StackError(f"migrations of {name} failed with exit code {rc}")

    def _spawn(self, svc: Service) -> ManagedProcess:
        args = [a.format(port=self.port(svc.name)) for a in svc.args]
        proc = self.supervisor.start(
            svc.name,
            [sys.executable, "-m", svc.module, *args],
            env=self._env,
            output=self.output,
            log_file=str(self.log_dir / f"{svc.name}.log") if self.log_dir else None,
        )
        if svc.name not in self.started:
            self.started.append(svc.name)
        return proc

    def _wait_ready(self, name: str) -> None:
        try:
            wait_for_http(self.ready_url(name), timeout=self.ready_timeout, process=self.supervisor.get(name))
        except (TimeoutError, RuntimeError) as exc:
            raise StackError(str(exc)) from exc

    def register_post_call_webhook(self, api_key: str, timeout: float | None = None) -> str:
        """Have ElevenLabs (in sandbox mode: the simulator) deliver post-call webhooks to this
        stack's tool-webhooks, the way a user registers a public URL: ``POST
        /api/v1/admin/webhooks/post-call`` on the gateway with ``api_key``. Returns the webhook URL.

        Raises StackError if it is refused or has no outcome within ``timeout`` seconds (default:
        the stack's ``ready_timeout``); an answer of 202 is followed through its operation.
        """
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        gateway = self.url("gateway")
        status, body = _request_json(
            "POST",
            f"{gateway}/api/v1/admin/webhooks/post-call",
            api_key,
            {"public_url": f"{self.url('tool-webhooks')}/api/v1"},
            deadline,
        )
        if status == 202:  # slower than GATEWAY_REPLY_TIMEOUT_S: the operation tells the outcome
            status_url = f"{gateway}{body['status_url']}"
            while status == 202:
                if time.monotonic() > deadline:
                    raise StackError(f"registering the post-call webhook got no outcome: {body}")
                time.sleep(0.2)
                _, operation = _request_json("GET", status_url, api_key, None, deadline)
                if operation.get("status") != "pending":
                    status, body = int(operation["status_code"]), dict(operation["result"])
        if status != 200:
            raise StackError(f"registering the post-call webhook failed with HTTP {status}: {body}")
        return str(body["webhook_url"])

    def process(self, name: str) -> ManagedProcess:
        return self.supervisor.get(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a service's process group (its exit then counts as expected)."""
        self.supervisor.kill(name, sig)

    def pause(self, name: str) -> None:
        """Freeze a service (SIGSTOP): alive, sockets open, silent. :meth:`resume` thaws it."""
        self.supervisor.pause(name)

    def resume(self, name: str) -> None:
        self.supervisor.resume(name)

    def restart(self, name: str, *, wait: bool = True) -> None:
        """Stop the service if it still runs, start it again with the same env, wait until ready."""
        self.supervisor.restart(name, self.stop_timeout)
        if wait:
            self._wait_ready(name)

    def check(self) -> None:
        """Raise StackError if a service exited without being asked to."""
        exits = self.supervisor.unexpected_exits()
        if exits:
            name, rc = exits[0]
            tail = "\n".join(self.supervisor.get(name).tail(30))
            raise StackError(f"{name} exited unexpectedly with code {rc}:\n{tail}")

    def supervise(self, poll: float = 0.2, *, restart: bool = False) -> None:
        """Block until we are interrupted. A service that exits unexpectedly raises StackError, or
        with `restart` is started again (`Restarter`)."""
        restarter = Restarter(self) if restart else None
        while True:
            if restarter is None:
                self.check()
            else:
                restarter.poll(time.monotonic())
            time.sleep(poll)

    def stop(self) -> None:
        self.supervisor.terminate_all(self.stop_timeout)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Restarter:
    """Starts a crashed service again, as a process manager would (systemd's Restart=always,
    Kubernetes' restartPolicy): after `RESTART_BACKOFF_S`, doubled per crash in a row up to
    `RESTART_BACKOFF_MAX_S`; a service that then stays up `RESTART_RESET_S` starts over at the
    first delay. The broker and the database keep running, so nothing is lost: each service
    recovers its own work (inbox, outbox, command ledger), as the fault tests show."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.crashes: dict[str, int] = {}
        self.due: dict[str, float] = {}  # service -> when to start it again (monotonic seconds)
        self._started: dict[str, float] = {}

    def poll(self, now: float) -> list[str]:
        """Notice crashes and start those whose delay is over; returns the services started."""
        supervisor = self.stack.supervisor
        for name, rc in supervisor.unexpected_exits():
            if name in self.due:
                continue
            if now - self._started.get(name, now - RESTART_RESET_S) >= RESTART_RESET_S:
                self.crashes[name] = 0
            self.crashes[name] = self.crashes.get(name, 0) + 1
            delay = min(RESTART_BACKOFF_S * 2 ** (self.crashes[name] - 1), RESTART_BACKOFF_MAX_S)
            self.due[name] = now + delay
            tail = "\n".join(supervisor.get(name).tail(10)) or "(no output since it started)"
            _note(
                f"{name} exited unexpectedly with code {rc}; starting it again in {delay:g} s. Its last lines:\n{tail}"
            )
        started = [name for name, when in self.due.items() if now >= when]
        for name in started:
            del self.due[name]
            self._started[name] = now
            supervisor.restart(name, self.stack.stop_timeout)
            _note(f"{name} started again ({self.crashes[name]} crash(es) in a row)")
        return started


def _request_json(
    method: str, url: str, api_key: str, payload: dict[str, Any] | None, deadline: float
) -> tuple[int, dict[str, Any]]:
    """One JSON request to a loopback service; (status, body) for any HTTP answer."""
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        url,
        method=method,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"X-API-Key": api_key, "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(request, timeout=max(1.0, deadline - time.monotonic())) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, OSError) as exc:
        raise StackError(f"{method} {url} failed: {exc}") from exc


# --------------------------------------------------------------------------- `up`

_SANDBOX_LINE = (
    "SANDBOX MODE: no ELEVENLABS_API_KEY set, talking to the local ElevenLabs simulator"
    " \u2014 no real calls will be placed"
)


def _banner(sim_url: str) -> str:
    rule = "#" * (len(_SANDBOX_LINE) + 8)
    body = [_SANDBOX_LINE, f"Simulator: {sim_url}  (set ELEVENLABS_API_KEY to use the real API)"]
    inner = [f"#   {line:<{len(_SANDBOX_LINE)}}   #" for line in ["", *body, ""]]
    return "\n".join(["", rule, *inner, rule, ""])


def _persistent_secret(path: Path, make: bool) -> str:
    """Read ``path`` or create it (mode 0600) with a new value."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    if make:
        from cryptography.fernet import Fernet

        value = Fernet.generate_key().decode()
    else:
        value = "sk_dev_" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    path.chmod(0o600)
    return value


def _preferred_port(port: int) -> int | None:
    return port if port_is_free(port) else None


def up(settings: StackSettings | None = None) -> int:
    """Provide missing infrastructure, migrate, start every runnable service, supervise until
    Ctrl-C. Returns the process exit code."""
    settings = settings or StackSettings()
    install_signal_handlers()
    state = settings.devstack_dir
    state.mkdir(parents=True, exist_ok=True)
    env = settings.passthrough()
    env.setdefault("LOG_JSON", "false")  # humans read `make up` output
    broker: EmbeddedBroker | None = None
    pg: EmbeddedPostgres | None = None
    stack: Stack | None = None
    try:
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            broker = start_tansu(_preferred_port(9092), output=True)
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
            env.update(TANSU_CLIENT_ENV)
            _note(f"embedded Kafka (Tansu, in-memory) at {broker.bootstrap_servers}")
        if not settings.DATABASE_URL:
            pg = start_embedded_postgres(state / "pgdata", _preferred_port(54329), output=True)
            env["DATABASE_URL"] = create_database(pg.url, "switchboard", exist_ok=True)
            _note(f"embedded PostgreSQL (data in {pg.data_dir}) at {env['DATABASE_URL']}")
        if not settings.ELEVENLABS_API_KEY:
            # Stack starts the simulator and points ELEVENLABS_BASE_URL/API_KEY at it
            sim_url = f"http://127.0.0.1:{settings.ELEVENLABS_SIM_PORT}"
            print(_banner(sim_url), flush=True)
            if not runnable(_BY_NAME[SIM].module):
                _note("WARNING: the simulator module is not runnable yet; ElevenLabs calls will fail")
        if not settings.SWITCHBOARD_SECRET_KEY:
            env["SWITCHBOARD_SECRET_KEY"] = _persistent_secret(state / "secret.key", make=True)
        api_key_generated = not settings.SWITCHBOARD_API_KEYS
        if api_key_generated:
            env["SWITCHBOARD_API_KEYS"] = _persistent_secret(state / "api-key", make=False)

        stack = Stack(
            env,
            free_ports=False,
            ready_timeout=settings.DEVSTACK_READY_TIMEOUT,
            stop_timeout=settings.DEVSTACK_STOP_TIMEOUT,
        )
        services = settings.services
        if services and not settings.ELEVENLABS_API_KEY and SIM not in services:
            services = [SIM, *services]
        started = stack.start(services)
        webhook = _register_sandbox_webhook(stack, started, env)
        _print_summary(stack, started, env, api_key_generated, webhook)
        stack.supervise(restart=settings.DEVSTACK_RESTART)
    except KeyboardInterrupt:
        print("\n[stack] stopping...", flush=True)
        return 0
    except (StackError, ValueError) as exc:
        print(f"\n[stack] ERROR: {exc}\n[stack] stopping everything", file=sys.stderr, flush=True)
        return 1
    finally:
        if stack is not None:
            stack.stop()
        if broker is not None:
            broker.stop(settings.DEVSTACK_STOP_TIMEOUT)
        if pg is not None:
            pg.stop(settings.DEVSTACK_STOP_TIMEOUT)
        terminate_all(settings.DEVSTACK_STOP_TIMEOUT)
        _note("stopped")
    return 0  # pragma: no cover - supervise() only returns by raising


def _register_sandbox_webhook(stack: Stack, started: list[str], env: Mapping[str, str]) -> str | None:
    """In sandbox mode the stack knows both ends of post-call webhooks (the simulator and
    tool-webhooks), so it registers them: calls and campaigns then finish in seconds instead of
    waiting for reconciliation. Returns the webhook URL, or None (not sandbox, or it failed: said)."""
    if not {SIM, "gateway", "tool-webhooks"} <= set(started):
        return None
    try:
        return stack.register_post_call_webhook(env["SWITCHBOARD_API_KEYS"].split(",")[0])
    except StackError as exc:
        _note(
            f"WARNING: post-call webhooks are not registered ({exc}); calls will stay in progress until"
            " reconciliation. Retry: POST /api/v1/admin/webhooks/post-call"
            f' {{"public_url": "{stack.url("tool-webhooks")}/api/v1"}}'
        )
        return None


def _print_summary(
    stack: Stack, started: list[str], env: Mapping[str, str], show_key: bool, webhook: str | None
) -> None:
    lines = ["", "Switchboard is up:"]
    for name in started:
        svc = _BY_NAME[name]
        extra = f"  - {svc.summary}" if svc.summary else ""
        lines.append(f"  {name:<15} {stack.url(name)}{extra}")
    if "gateway" in started:
        lines.append(f"  {'API docs':<15} {stack.url('gateway')}/docs")
        lines.append(f"  {'Console':<15} {stack.url('gateway')}/console  (sign in with the API key below)")
    if stack.skipped:
        lines.append(f"  not started yet: {', '.join(stack.skipped)}")
    lines.append(f"  {'Kafka':<15} {env.get('KAFKA_BOOTSTRAP_SERVERS')}")
    lines.append(f"  {'Database':<15} {env.get('DATABASE_URL')}")
    if show_key:
        key = env["SWITCHBOARD_API_KEYS"].split(",")[0]
        lines += [
            "",
            f"API key: {key}",
            f"  curl -H 'Authorization: Bearer {key}' http://127.0.0.1:{stack.port('gateway')}/api/v1/agents",
        ]
    if SIM in started:
        lines += ["", "SANDBOX MODE: ElevenLabs is the local simulator; no real call is placed."]
        if webhook:
            lines.append(f"  post-call webhooks: simulator -> {webhook} (registered)")
    lines += ["", "Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devinfra.stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the whole local stack and supervise it until Ctrl-C")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up()
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
