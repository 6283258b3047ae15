"""Alembic environment of the `notifier` schema (see `bus.migrate`)."""

from bus.migrate import run_env
from notifier.models import metadata

run_env(metadata)
