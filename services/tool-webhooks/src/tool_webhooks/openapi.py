"""The OpenAPI description of what ElevenLabs sends to the public routes and what it gets back.

The routes read their bodies raw (a post-call webhook's HMAC is over its bytes; a tool call is
answered even when its body is not what it should be), so FastAPI cannot derive these from
parameters: they are declared here and attached with `openapi_extra` and `responses`. Every 4xx is
the contract's error format `{"success": false, "error", "detail"}` (api-v1.md 12).
"""

from __future__ import annotations

from typing import Any

from tool_webhooks.domain import SIGNATURE_HEADER, TOOL_TOKEN_HEADER

JSON = dict[str, Any]

ERROR: JSON = {
    "type": "object",
    "title": "Error",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {"type": "string"},
        "detail": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}


def _json(schema: JSON, description: str) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> JSON:
    return _json(ERROR, description)


_OPTIONAL_TEXT: JSON = {"type": ["string", "null"]}

PRODUCTS_CALL: JSON = {
    "type": "object",
    "title": "ProductsCall",
    "properties": {
        "conversation_id": {"type": "string", "description": "The call (ElevenLabs conversation)."},
        "query": {**_OPTIONAL_TEXT, "description": "What the caller asks for."},
        "limit": {"type": ["integer", "null"], "description": "At most this many products."},
    },
    "required": ["conversation_id"],
}
ORDERS_CALL: JSON = {
    "type": "object",
    "title": "OrdersCall",
    "properties": {
        "conversation_id": {"type": "string", "description": "The call (ElevenLabs conversation)."},
        "order_number": {**_OPTIONAL_TEXT, "description": "The order number the caller gives."},
        "email": {**_OPTIONAL_TEXT, "description": "The e-mail address used for the order."},
        "postcode": {**_OPTIONAL_TEXT, "description": "The billing postcode, to check the caller."},
    },
    "required": ["conversation_id"],
}
EMAIL_CALL: JSON = {
    "type": "object",
    "title": "EmailCall",
    "properties": {"conversation_id": {"type": "string", "description": "The call."}},
    "additionalProperties": {
        "type": ["string", "number", "integer", "boolean", "null"],
        "description": "The template's parameters, as the agent filled them.",
    },
    "required": ["conversation_id"],
}
OPT_OUT_CALL: JSON = {
    "type": "object",
    "title": "OptOutCall",
    "properties": {
        "conversation_id": {"type": "string", "description": "The call (ElevenLabs conversation)."},
        "called_number": {**_OPTIONAL_TEXT, "description": "`system__called_number`: the callee's number."},
        "reason": {**_OPTIONAL_TEXT, "description": "What the callee said, in a few words."},
    },
    "required": ["conversation_id"],
}
CALLBACK_CALL: JSON = {
    "type": "object",
    "title": "CallbackCall",
    "properties": {
        "conversation_id": {"type": "string", "description": "The call (ElevenLabs conversation)."},
        "called_number": {**_OPTIONAL_TEXT, "description": "`system__called_number`: the callee's number."},
        "requested_time": {
            **_OPTIONAL_TEXT,
            "description": "When to call back: the callee's words or ISO 8601 local time.",
        },
    },
    "required": ["conversation_id", "requested_time"],
}
TOOL_ANSWER: JSON = {
    "type": "object",
    "title": "ToolAnswer",
    "description": "What the agent reads out: `message`, and `error` (a code) when it could not help.",
    "properties": {
        "message": {"type": "string"},
        "error": {"type": "string"},
        "success": {"type": "boolean"},
        "products": {"type": "array", "items": {"type": "object"}},
        "orders": {"type": "array", "items": {"type": "object"}},
        "count": {"type": "integer"},
        "booked_for": {"type": "string", "description": "Callback: when it will be dialled (ISO 8601, UTC)."},
        "time_zone": {"type": "string", "description": "Callback: the callee's zone it was read in."},
    },
    "required": ["message"],
}
POST_CALL: JSON = {
    "type": "object",
    "title": "PostCallWebhook",
    "description": "ElevenLabs' post-call webhook (post_call_transcription, post_call_audio, "
    "call_initiation_failure); unknown types are acknowledged and ignored.",
    "properties": {
        "type": {"type": "string"},
        "event_timestamp": {"type": "integer"},
        "data": {"type": "object"},
    },
    "required": ["type", "event_timestamp", "data"],
}
POST_CALL_ANSWER: JSON = {
    "type": "object",
    "title": "PostCallReceived",
    "properties": {"status": {"type": "string", "description": "What became of the delivery."}},
    "required": ["status"],
}
ECHO: JSON = {
    "type": "object",
    "title": "Echo",
    "properties": {
        "status": {"const": "ok"},
        "echo": {"description": "The JSON body sent, or null."},
        "time": {"type": "string"},
        "service": {"type": "string"},
        "version": {"type": "string"},
    },
    "required": ["status", "echo", "time", "service", "version"],
}


def _header(name: str, description: str) -> JSON:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


def tool_route(body: JSON) -> dict[str, Any]:
    """`openapi_extra` and `responses` of a mid-call tool route."""
    return {
        "openapi_extra": {
            "parameters": [_header(TOOL_TOKEN_HEADER, "The tool's token (an ElevenLabs workspace secret).")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        },
        "responses": {
            200: _json(TOOL_ANSWER, "The answer the agent reads out"),
            400: _error("The body is not a JSON object"),
            401: _error("No valid tool token"),
            413: _error("The body is over 64 KiB"),
            "4XX": _error("Any other client error"),
            "5XX": _error("Server error"),
        },
    }


POST_CALL_ROUTE: dict[str, Any] = {
    "openapi_extra": {
        "parameters": [_header(SIGNATURE_HEADER, "`t=<unix seconds>,v0=<hex HMAC-SHA256 of t.body>`.")],
        "requestBody": {"required": True, "content": {"application/json": {"schema": POST_CALL}}},
    },
    "responses": {
        200: _json(POST_CALL_ANSWER, "Written (or kept, or ignored): ElevenLabs need not retry"),
        400: _error("The body ended early"),
        401: _error("Missing, malformed, stale or wrong signature"),
        413: _error("The body is over TOOL_WEBHOOKS_MAX_BODY_BYTES"),
        "4XX": _error("Any other client error"),
        "5XX": _error("Server error"),
    },
}

TEST_ROUTE: dict[str, Any] = {
    "openapi_extra": {
        "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}},
    },
    "responses": {
        200: _json(ECHO, "The body echoed"),
        "4XX": _error("Client error"),
        "5XX": _error("Server error"),
    },
}
