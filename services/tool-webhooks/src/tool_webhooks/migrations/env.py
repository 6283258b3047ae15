"""Alembic environment of the `tool_webhooks` schema (see `bus.migrate`)."""

from bus.migrate import run_env
from tool_webhooks.models import metadata

run_env(metadata)
