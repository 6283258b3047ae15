"""Which dynamic variables an ElevenLabs agent needs before a conversation may start (pure functions).

ElevenLabs fails a conversation whose agent refers to a variable that neither the call
(`conversation_initiation_client_data.dynamic_variables`) nor the agent's defaults
(`conversation_config.agent.dynamic_variables.dynamic_variable_placeholders`) supply: the phone
rings, then the conversation fails with "Missing required dynamic variables in first message: {...}"
(or "... in tools: {...}"). Checking before dialling turns that into a clear error for the caller.

Where an agent refers to variables (official OpenAPI, `AgentConfigAPIModel` / `PromptAgentAPIModel`):
`{{name}}` in `conversation_config.agent.prompt.prompt` and `first_message` (or the call's
`first_message` override, which replaces it), and in webhook tools (`tool_ids` fetched separately,
or inline `prompt.tools`): `{{name}}` in `api_schema` strings (URL, headers, descriptions of
parameters) and parameters filled by the runtime (`"dynamic_variable": "name"`). `system__*`
variables are filled by ElevenLabs; a variable a tool's `assignments` sets from a response is not
needed at the start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SYSTEM_PREFIX = "system__"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.\-]*)\s*\}\}")


def placeholders(text: object) -> set[str]:
    """Names written `{{name}}` (spaces allowed inside the braces) in `text`; none if not a string."""
    return set(_PLACEHOLDER.findall(text)) if isinstance(text, str) else set()


def _get(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _walk(value: Any, found: set[str]) -> None:
    """Every `{{name}}` and every `"dynamic_variable": "name"` inside a JSON value."""
    if isinstance(value, str):
        found.update(placeholders(value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key == "dynamic_variable" and isinstance(item, str) and item:
                found.add(item)
            else:
                _walk(item, found)
    elif isinstance(value, list):
        for item in value:
            _walk(item, found)


def tool_variables(tool_config: Mapping[str, Any]) -> set[str]:
    """Variables a webhook tool needs (a `tool_config`, e.g. `GET /v1/convai/tools/{id}`'s)."""
    found: set[str] = set()
    _walk(tool_config.get("api_schema"), found)
    assigned = {
        str(a["dynamic_variable"])
        for a in tool_config.get("assignments") or []
        if isinstance(a, Mapping) and a.get("dynamic_variable")
    }
    return found - assigned


def tool_ids(agent: Mapping[str, Any]) -> list[str]:
    """The workspace tools an agent uses (`conversation_config.agent.prompt.tool_ids`)."""
    ids = _get(agent, "conversation_config", "agent", "prompt", "tool_ids")
    return [str(i) for i in ids if i] if isinstance(ids, list) else []


def defaults(agent: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's placeholder defaults (`dynamic_variables.dynamic_variable_placeholders`)."""
    values = _get(agent, "conversation_config", "agent", "dynamic_variables", "dynamic_variable_placeholders")
    return dict(values) if isinstance(values, Mapping) else {}


def required(
    agent: Mapping[str, Any],
    tools: Iterable[Mapping[str, Any]] = (),
    *,
    first_message: str | None = None,
) -> set[str]:
    """Every non-system variable `agent` (a GET agent answer) refers to; `tools` are the
    `tool_config`s of its `tool_ids`; `first_message` is the call's override of the greeting."""
    config = _get(agent, "conversation_config", "agent")
    found = placeholders(_get(config, "prompt", "prompt"))
    found |= placeholders(first_message if first_message is not None else _get(config, "first_message"))
    inline = _get(config, "prompt", "tools")
    for tool in [*(inline if isinstance(inline, list) else []), *tools]:
        if isinstance(tool, Mapping):
            found |= tool_variables(tool)
    return {name for name in found if not name.startswith(SYSTEM_PREFIX)}


def missing(
    agent: Mapping[str, Any],
    supplied: Mapping[str, Any],
    tools: Iterable[Mapping[str, Any]] = (),
    *,
    first_message: str | None = None,
) -> list[str]:
    """The variables `agent` needs that neither `supplied` nor its defaults give, sorted.

    A supplied value counts whatever its JSON type (ElevenLabs accepts strings, numbers and
    booleans); an explicit null counts as not supplied.
    """
    return unmet(required(agent, tools, first_message=first_message), supplied, defaults(agent))


def unmet(needed: set[str], supplied: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """`needed` minus what `supplied` or `defaults` give (a null value gives nothing), sorted."""
    given = {k for k, v in supplied.items() if v is not None} | {
        k for k, v in defaults.items() if v is not None
    }
    return sorted(needed - given)


def missing_message(names: Iterable[str]) -> str:
    """The `detail` naming missing variables, e.g. "The agent needs order_id, shipping_date: ..."."""
    return (
        f"The agent needs {', '.join(names)}: pass them in dynamic_variables "
        "or give the agent defaults (dynamic_variable_placeholders)"
    )
