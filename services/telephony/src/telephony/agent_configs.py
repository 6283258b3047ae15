"""Agents' configs as ElevenLabs has them, fetched to check a call's dynamic variables before dialling.

Upstream is the source (an agent may be created or edited outside Switchboard); a config is reused
for `TELEPHONY_AGENT_CACHE_TTL_S` so a campaign does not fetch it for every recipient.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from elevenlabs_client import JSON, ElevenLabsClient, UpstreamError
from elevenlabs_client import dynamic_variables as variables

log = structlog.get_logger("telephony.agent_configs")


@dataclass(frozen=True)
class AgentConfig:
    agent: JSON
    tools: list[JSON]

    def missing(self, supplied: JSON, first_message: str | None) -> list[str]:
        return variables.missing(self.agent, supplied, self.tools, first_message=first_message)


class AgentConfigs:
    def __init__(
        self, elevenlabs: ElevenLabsClient, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._elevenlabs = elevenlabs
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, AgentConfig]] = {}

    async def get(self, agent_id: str) -> AgentConfig | None:
        """The agent and its tools' `tool_config`s; None when ElevenLabs cannot tell us now (the
        dial then goes ahead unchecked, as before: a lookup failure must not stop calls)."""
        now = self._clock()
        cached = self._cache.get(agent_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            agent = await self._elevenlabs.get_agent(agent_id)
            tools = [
                (await self._elevenlabs.get_tool(tool_id)).get("tool_config") or {}
                for tool_id in variables.tool_ids(agent)
            ]
        except UpstreamError as exc:
            log.warning("telephony.agent_config.unavailable", agent_id=agent_id, status_code=exc.status_code)
            return None
        config = AgentConfig(agent, tools)
        if len(self._cache) > 1000:  # bounded: agents are few, but ids come from commands
            self._cache.clear()
        self._cache[agent_id] = (now + self._ttl_s, config)
        return config
