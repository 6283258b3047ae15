"""Upstream error bodies: ``{"detail": {"status": ..., "message": ...}}``."""

from __future__ import annotations

from fastapi import HTTPException


def api_error(status_code: int, status: str, message: str) -> HTTPException:
    return HTTPException(status_code=status_code, detail={"status": status, "message": message})


def not_found(resource: str, message: str | None = None) -> HTTPException:
    """404 with ``<resource>_not_found``; ``agent_not_found``/"Agent not found" is observed upstream."""
    text = message or f"{resource.replace('_', ' ').capitalize()} not found"
    return api_error(404, f"{resource}_not_found", text)
