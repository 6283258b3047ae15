"""Alembic environment of the `telephony` schema (see `bus.migrate`)."""

from bus.migrate import run_env
from telephony.models import metadata

run_env(metadata)
