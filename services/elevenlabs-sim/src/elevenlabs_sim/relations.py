"""Cross-resource references (agent → tools / KB docs, tool → secrets) and their checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from elevenlabs_sim.errors import api_error
from elevenlabs_sim.state import Record, SimState


def _prompt(agent_config: dict[str, Any]) -> dict[str, Any]:
    agent = agent_config.get("agent")
    if not isinstance(agent, dict):
        return {}
    prompt = agent.get("prompt")
    return prompt if isinstance(prompt, dict) else {}


def tool_ids_of(conversation_config: dict[str, Any]) -> list[str]:
    ids = _prompt(conversation_config).get("tool_ids") or []
    return [i for i in ids if isinstance(i, str)]


def kb_ids_of(conversation_config: dict[str, Any]) -> list[str]:
    entries = _prompt(conversation_config).get("knowledge_base") or []
    return [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]


def secret_ids_in(value: Any) -> Iterator[str]:
    """Every ``{"secret_id": ...}`` reference anywhere inside a tool config."""
    if isinstance(value, dict):
        secret_id = value.get("secret_id")
        if isinstance(secret_id, str) and len(value) == 1:
            yield secret_id
        for child in value.values():
            yield from secret_ids_in(child)
    elif isinstance(value, list):
        for child in value:
            yield from secret_ids_in(child)


def check_agent_references(state: SimState, conversation_config: dict[str, Any]) -> None:
    missing_tools = [t for t in tool_ids_of(conversation_config) if state.tools.get(t) is None]
    if missing_tools:
        raise api_error(422, "invalid_tool_ids", f"Tools not found: {', '.join(missing_tools)}")
    missing_docs = [d for d in kb_ids_of(conversation_config) if state.knowledge_base.get(d) is None]
    if missing_docs:
        raise api_error(
            422,
            "invalid_knowledge_base_ids",
            f"Knowledge base documents not found: {', '.join(missing_docs)}",
        )


def check_tool_references(state: SimState, tool_config: dict[str, Any]) -> None:
    missing = [s for s in secret_ids_in(tool_config) if state.secrets.get(s) is None]
    if missing:
        raise api_error(422, "invalid_secret_ids", f"Secrets not found: {', '.join(missing)}")


def agents_using_tool(state: SimState, tool_id: str) -> list[Record]:
    return [a for a in state.agents.values() if tool_id in tool_ids_of(a.data["conversation_config"])]


def agents_using_doc(state: SimState, doc_id: str) -> list[Record]:
    return [a for a in state.agents.values() if doc_id in kb_ids_of(a.data["conversation_config"])]


def tools_using_secret(state: SimState, secret_id: str) -> list[Record]:
    return [t for t in state.tools.values() if secret_id in set(secret_ids_in(t.data["tool_config"]))]


def detach_tool(state: SimState, tool_id: str) -> None:
    for agent in agents_using_tool(state, tool_id):
        prompt = _prompt(agent.data["conversation_config"])
        prompt["tool_ids"] = [t for t in prompt.get("tool_ids") or [] if t != tool_id]


def detach_doc(state: SimState, doc_id: str) -> None:
    for agent in agents_using_doc(state, doc_id):
        prompt = _prompt(agent.data["conversation_config"])
        prompt["knowledge_base"] = [
            e
            for e in prompt.get("knowledge_base") or []
            if not (isinstance(e, dict) and e.get("id") == doc_id)
        ]
