"""How an agent's configuration is written and merged upstream: one home for the gateway (which
must know the size of an agent before it queues a change) and provisioning (which sends it).

ElevenLabs merges a `PATCH /v1/convai/agents/{agent_id}` body into the stored agent: objects merge
key by key, lists and scalars replace (official OpenAPI `PATCH /v1/convai/agents/{agent_id}`:
"patch an agent's settings"; observed on the simulator and in provisioning's recovery tests).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> JSON:
    """`override` merged into a copy of `base`: objects merge recursively; lists and scalars replace."""
    merged: JSON = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def prompt_fields(
    *,
    first_message: str | None,
    language: str | None,
    system_prompt: str | None,
    tool_ids: list[str] | None,
    knowledge_base: list[JSON] | None,
    voice_id: str | None = None,
) -> JSON:
    """The `conversation_config` fragment our simple agent fields stand for (only those given):
    `agent.first_message`, `agent.language`, `agent.prompt.{prompt,tool_ids,knowledge_base}`,
    `tts.voice_id`."""
    agent: JSON = {}
    if first_message is not None:
        agent["first_message"] = first_message
    if language is not None:
        agent["language"] = language
    prompt: JSON = {}
    if system_prompt is not None:
        prompt["prompt"] = system_prompt
    if tool_ids is not None:
        prompt["tool_ids"] = list(tool_ids)
    if knowledge_base is not None:
        prompt["knowledge_base"] = knowledge_base
    if prompt:
        agent["prompt"] = prompt
    config: JSON = {}
    if agent:
        config["agent"] = agent
    if voice_id is not None:
        config["tts"] = {"voice_id": voice_id}
    return config
