"""ASGI app: runs the bus for the process lifetime and serves health and metrics (`bus.serving`)."""

from __future__ import annotations

from fastapi import FastAPI

from bus.serving import service_app
from telephony.bootstrap import Container, bootstrap, run_migrations
from telephony.settings import Settings


def create_app(container: Container | None = None, *, migrate: bool = True) -> FastAPI:
    return service_app("telephony", container or bootstrap(), migrate=run_migrations if migrate else None)


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory telephony.app:app_from_env`."""
    return create_app(bootstrap(Settings()))
