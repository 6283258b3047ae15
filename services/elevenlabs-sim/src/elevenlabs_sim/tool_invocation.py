"""Webhook tool calls made during an answered simulated call, the way ElevenLabs makes them.

Reference: ``ELEVENLABS_API.md`` §3.1 (derived from field semantics; upstream publishes no wire
spec). For every tool id in the agent's ``conversation_config.agent.prompt.tool_ids`` (in order),
then every further id in the dial's
``conversation_initiation_client_data.conversation_config_override.agent.prompt.tool_ids``
(unknown ids are skipped), whose ``tool_config.type`` is ``"webhook"``:

* method = ``api_schema.method`` (default ``GET``); URL = ``api_schema.url`` with ``{placeholders}``
  filled from ``path_params_schema`` and the ``query_params_schema`` properties appended.
* headers = ``request_headers``: plain strings as-is, ``{"secret_id"}`` → the stored workspace
  secret, ``{"variable_name"}`` → the dynamic variable (``{"env_var_label"}`` is not simulated and
  is left out), plus ``Content-Type`` (``api_schema.content_type``, default ``application/json``).
* body (any method but GET) = ``request_body_schema`` filled property by property (:func:`fill`):
  ``dynamic_variable`` → the conversation's dynamic variables (the dial's, over the agent's
  ``dynamic_variable_placeholders``, plus the ``system__*`` ones; an unknown variable → null),
  ``constant_value`` as-is, anything else is "LLM-filled": ``tool_value_overrides`` (runtime
  config) first, else the first ``enum`` value, else a plausible value chosen by name and type.
  Optional properties are filled too. Objects nest; arrays get one item.
* timeout = ``response_timeout_secs`` (default 20). ``is_error`` = non-2xx or transport error.

What the callee asks for (runtime config ``callee_requests``, by dialled number): a tool named
there is called only in calls to the numbers that ask for it, after a user turn with their words,
its parameters taking the values given (over ``tool_value_overrides``); so is a tool named in
``tools_on_request`` (called in no call until a callee asks for it).

Each call becomes one agent transcript turn (``message: null``) holding one ``tool_calls`` and one
``tool_results`` entry, and one ``/_sim/tool-calls`` log entry whose secret header values are
masked as ``***``. For outbound calls ``system__called_number`` is the dialled ``to_number`` and
``system__caller_id`` the agent's phone number (our reading; upstream does not say).
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from elevenlabs_sim.routers.secrets import secret_value
from elevenlabs_sim.state import JSON, Record, SimState

MASK = "***"
DEFAULT_TIMEOUT_SECS = 20.0
RESULT_LIMIT = 2000  # characters of the response text kept in ``result_value`` / the log
_BODY_METHODS_EXCLUDED = {"GET"}


def _prompt_tool_ids(config: Any) -> list[str]:
    agent = config.get("agent") if isinstance(config, dict) else None
    prompt = agent.get("prompt") if isinstance(agent, dict) else None
    ids = prompt.get("tool_ids") if isinstance(prompt, dict) else None
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def webhook_tools(state: SimState, agent: Record, client_data: JSON) -> list[Record]:
    """The agent's webhook tools, then those added by the dial's override, without duplicates."""
    ids = _prompt_tool_ids(agent.data.get("conversation_config"))
    ids += _prompt_tool_ids(client_data.get("conversation_config_override"))
    tools: list[Record] = []
    for tool_id in dict.fromkeys(ids):
        tool = state.tools.get(tool_id)
        if tool is not None and (tool.data.get("tool_config") or {}).get("type") == "webhook":
            tools.append(tool)
    return tools


def conversation_variables(state: SimState, record: Record, agent: Record) -> dict[str, Any]:
    """Dynamic variables of a conversation: agent placeholders < dial variables < system ones."""
    agent_config = (agent.data.get("conversation_config") or {}).get("agent") or {}
    placeholders = (agent_config.get("dynamic_variables") or {}).get("dynamic_variable_placeholders") or {}
    client_data = record.data.get("conversation_initiation_client_data") or {}
    phone_call = record.data["metadata"]["phone_call"]
    answered = record.data["metadata"].get("accepted_time_unix_secs") or time.time()
    return {
        **placeholders,
        **(client_data.get("dynamic_variables") or {}),
        "system__conversation_id": record.id,
        "system__agent_id": record.data["agent_id"],
        "system__current_agent_id": record.data["agent_id"],
        "system__call_sid": phone_call.get("call_sid"),
        "system__called_number": phone_call.get("external_number"),
        "system__caller_id": phone_call.get("agent_number"),
        "system__time_utc": datetime.now(UTC).isoformat(),
        "system__call_duration_secs": max(int(time.time() - answered), 0),
    }


# --- filling values ------------------------------------------------------------------------


def _llm_string(name: str, variables: dict[str, Any]) -> str:
    key = name.lower()
    if "email" in key:
        return str(variables.get("customer_email") or "john@example.com")
    if "order" in key:
        return "1001"
    if "query" in key or "search" in key:
        return "blue mug"
    if "date" in key:
        return "February 1, 2026"
    if "time" in key:
        return "2:00 PM"
    return f"sample {name}"


def _override(name: str, tool_name: str, overrides: dict[str, Any]) -> tuple[bool, Any]:
    for key in (f"{tool_name}.{name}", name):
        if key in overrides:
            return True, copy.deepcopy(overrides[key])
    return False, None


@dataclass
class Filler:
    tool_name: str
    variables: dict[str, Any]
    overrides: dict[str, Any]
    llm_params: dict[str, Any] = field(default_factory=dict)  # what "the LLM" chose, by name

    def fill(self, name: str, schema: Any) -> Any:
        """The value of one property (or path/query parameter) named ``name``."""
        if not isinstance(schema, dict):
            return self._llm(name, {})
        if schema.get("dynamic_variable"):
            return self.variables.get(str(schema["dynamic_variable"]))
        if "constant_value" in schema and schema["constant_value"] is not None:
            return schema["constant_value"]
        kind = schema.get("type")
        if kind == "object":
            return self.fill_object(schema)
        if kind == "array":
            return [self.fill(name, schema.get("items") or {"type": "string"})]
        return self._llm(name, schema)

    def fill_object(self, schema: Any) -> JSON:
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(properties, dict):
            return {}
        return {name: self.fill(name, prop) for name, prop in properties.items()}

    def _llm(self, name: str, schema: JSON) -> Any:
        forced, value = _override(name, self.tool_name, self.overrides)
        if not forced:
            enum = schema.get("enum")
            kind = schema.get("type", "string")
            if isinstance(enum, list) and enum:
                value = enum[0]
            elif kind == "integer":
                value = 1
            elif kind == "number":
                value = 1.0
            elif kind == "boolean":
                value = True
            else:
                value = _llm_string(name, self.variables)
        self.llm_params[name] = value
        return value


# --- building the request ------------------------------------------------------------------


@dataclass
class ToolRequest:
    method: str
    url: str
    headers: dict[str, str]  # as sent
    masked_headers: dict[str, str]  # secret values replaced by ``***``
    path_params: dict[str, str]
    query_params: dict[str, str]
    body: JSON | None
    params: JSON  # params_as_json: path + query params and the body
    timeout: float


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def build_request(
    state: SimState, tool_config: JSON, variables: dict[str, Any], overrides: dict[str, Any] | None = None
) -> ToolRequest:
    api = tool_config.get("api_schema") or {}
    forced = state.config.tool_value_overrides if overrides is None else overrides
    filler = Filler(str(tool_config.get("name", "")), variables, forced)
    method = str(api.get("method") or "GET").upper()

    path_schemas = api.get("path_params_schema") or {}
    path_params: dict[str, str] = {}

    def path_repl(match: re.Match[str]) -> str:
        name = match.group(1)
        path_params[name] = _as_text(filler.fill(name, path_schemas.get(name, {"type": "string"})))
        return quote(path_params[name], safe="")

    url = re.sub(r"\{([^{}/]+)\}", path_repl, str(api.get("url", "")))
    query_schema = (api.get("query_params_schema") or {}).get("properties") or {}
    query_params = {name: _as_text(filler.fill(name, prop)) for name, prop in query_schema.items()}
    if query_params:
        url = str(httpx.URL(url).copy_merge_params(query_params))

    headers: dict[str, str] = {}
    masked: dict[str, str] = {}
    for name, spec in (api.get("request_headers") or {}).items():
        if isinstance(spec, str):
            headers[name] = masked[name] = spec
        elif isinstance(spec, dict) and "secret_id" in spec:
            headers[name] = secret_value(state, str(spec["secret_id"])) or ""
            masked[name] = MASK
        elif isinstance(spec, dict) and "variable_name" in spec:
            variable = str(spec["variable_name"])
            headers[name] = _as_text(variables.get(variable))
            masked[name] = MASK if variable.startswith("secret__") else headers[name]
    content_type = str(api.get("content_type") or "application/json")
    headers["Content-Type"] = masked["Content-Type"] = content_type

    body: JSON | None = None
    if method not in _BODY_METHODS_EXCLUDED and api.get("request_body_schema"):
        body = filler.fill_object(api["request_body_schema"])
    timeout = tool_config.get("response_timeout_secs") or DEFAULT_TIMEOUT_SECS
    return ToolRequest(
        method=method,
        url=url,
        headers=headers,
        masked_headers=masked,
        path_params=path_params,
        query_params=query_params,
        body=body,
        params={**path_params, **query_params, **(body or {})},
        timeout=float(timeout),
    )


# --- calling -------------------------------------------------------------------------------


async def _send(http: httpx.AsyncClient, request: ToolRequest) -> tuple[int | None, str, str | None]:
    """(status or None, response text, transport error or None)."""
    content: bytes | None = None
    if request.body is not None:
        if request.headers["Content-Type"] == "application/x-www-form-urlencoded":
            form = {k: _as_text(v) for k, v in request.body.items()}
            content = str(httpx.QueryParams(form)).encode()
        else:
            content = json.dumps(request.body).encode()
    try:
        response = await http.request(
            request.method, request.url, headers=request.headers, content=content, timeout=request.timeout
        )
    except httpx.HTTPError as exc:
        return None, "", f"{type(exc).__name__}: {exc}"
    return response.status_code, response.text, None


def callee_asks(state: SimState, to_number: str) -> dict[str, JSON]:
    """What the callee of `to_number` asks for, by tool name."""
    asks = state.config.callee_requests.get(to_number, [])
    return {str(ask["tool"]): ask for ask in asks if not ask.get("asked")}


def requested_tools(state: SimState) -> set[str]:
    """Tools some callee asks for (or `tools_on_request`): called only in their calls."""
    named = {str(ask["tool"]) for asks in state.config.callee_requests.values() for ask in asks}
    return named | set(state.config.tools_on_request)


async def invoke_tools(state: SimState, record: Record, agent: Record, answered_at: float) -> list[JSON]:
    """Call the agent's webhook tools in order; returns the transcript turns (also appended live)."""
    turns: list[JSON] = []
    client_data = record.data.get("conversation_initiation_client_data") or {}
    number = str(record.data["metadata"]["phone_call"].get("external_number") or "")
    asks = callee_asks(state, number)
    on_request = requested_tools(state)
    for wish in asks.values():
        if wish.get("once"):
            wish["asked"] = True  # later calls to the number do not ask again; the tool stays on request
    for tool in webhook_tools(state, agent, client_data):
        tool_config: JSON = tool.data["tool_config"]
        tool_name = str(tool_config.get("name", ""))
        ask = asks.get(tool_name)
        if tool_name in on_request and ask is None:
            continue
        overrides = None
        if ask is not None:
            said: JSON = {
                "role": "user",
                "message": str(ask.get("says") or ""),
                "time_in_call_secs": max(int(time.time() - answered_at), 0),
            }
            turns.append(said)
            record.data["transcript"].append(said)
            params = {f"{tool_name}.{name}": value for name, value in (ask.get("params") or {}).items()}
            overrides = {**state.config.tool_value_overrides, **params}
        request = build_request(state, tool_config, conversation_variables(state, record, agent), overrides)
        request_id = state.new_tool_request_id()
        started = time.monotonic()
        status, text, error = await _send(state.calls.http, request)
        latency = round(time.monotonic() - started, 4)
        is_error = status is None or not 200 <= status < 300
        result_text = text if error is None else error
        body_text = None if request.body is None else json.dumps(request.body)
        turn: JSON = {
            "role": "agent",
            "message": None,
            "time_in_call_secs": max(int(time.time() - answered_at), 0),
            "tool_calls": [
                {
                    "type": "webhook",
                    "request_id": request_id,
                    "tool_name": tool_name,
                    "params_as_json": json.dumps(request.params),
                    "tool_has_been_called": True,
                    "tool_details": {
                        "type": "webhook",
                        "method": request.method,
                        "url": request.url,
                        "headers": dict(request.masked_headers),
                        "path_params": dict(request.path_params),
                        "query_params": dict(request.query_params),
                        "body": body_text,
                    },
                }
            ],
            "tool_results": [
                {
                    "type": "webhook",
                    "request_id": request_id,
                    "tool_name": tool_name,
                    "result_value": result_text[:RESULT_LIMIT],
                    "is_error": is_error,
                    "tool_has_been_called": True,
                    "tool_latency_secs": latency,
                    "dynamic_variable_updates": [],
                }
            ],
        }
        turns.append(turn)
        record.data["transcript"].append(turn)
        state.calls.tool_calls.append(
            {
                "id": len(state.calls.tool_calls) + 1,
                "timestamp": time.time(),
                "conversation_id": record.id,
                "tool_id": tool.id,
                "tool_name": tool_name,
                "request_id": request_id,
                "method": request.method,
                "url": request.url,
                "headers": dict(request.masked_headers),
                "body": copy.deepcopy(request.body),
                "status": status,
                "response_text": text[:RESULT_LIMIT],
                "error": error,
                "is_error": is_error,
                "latency_secs": latency,
            }
        )
    return turns
