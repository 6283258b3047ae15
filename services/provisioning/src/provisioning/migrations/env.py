"""Alembic environment of the `provisioning` schema (see `bus.migrate`)."""

from bus.migrate import run_env
from provisioning.models import metadata

run_env(metadata)
