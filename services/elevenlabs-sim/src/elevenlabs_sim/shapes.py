"""Small response fragments shared by several resources."""

from __future__ import annotations

from typing import Any

from elevenlabs_sim.state import Record


def access_info() -> dict[str, Any]:
    # There is a single simulated user who owns everything.
    return {
        "is_creator": True,
        "creator_name": "Simulator",
        "creator_email": "sim@example.com",
        "role": "admin",
    }


def dependent_agent(agent: Record) -> dict[str, Any]:
    return {
        "type": "available",
        "id": agent.id,
        "name": agent.data.get("name", ""),
        "created_at_unix_secs": agent.created_at,
        "access_level": "admin",
    }
