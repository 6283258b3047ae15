"""Alembic environment of the `campaigns` schema (see `bus.migrate`)."""

from bus.migrate import run_env
from campaigns.models import metadata

run_env(metadata)
