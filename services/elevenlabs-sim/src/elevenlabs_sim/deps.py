"""FastAPI dependencies shared by the resource routers."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import FormData, UploadFile

from elevenlabs_sim import openapi
from elevenlabs_sim.state import SimState


def get_state(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


State = Annotated[SimState, Depends(get_state)]


def _route_path(request: Request) -> str:
    # FastAPI stores the matched route in the scope; its template is the OpenAPI path key.
    route = request.scope.get("route")
    return str(getattr(route, "path_format", request.url.path))


async def validated_json_body(request: Request) -> dict[str, Any]:
    """The JSON body, validated against the operation's request schema in the official spec."""
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error", "input": {}}]
        ) from exc
    if body is None:
        raise RequestValidationError([{"type": "missing", "loc": ["body"], "msg": "Field required"}])
    errors = openapi.validate_request_body(_route_path(request), request.method, "application/json", body)
    if errors:
        raise RequestValidationError(errors)
    if not isinstance(body, dict):
        raise RequestValidationError(
            [
                {
                    "type": "dict_type",
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary",
                    "input": body,
                }
            ]
        )
    return body


JsonBody = Annotated[dict[str, Any], Depends(validated_json_body)]


async def validated_form(request: Request) -> FormData:
    """Multipart form, with its text fields and file parts checked against the spec."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise RequestValidationError(
            [{"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}]
        )
    form = await request.form()
    # Files are described as ``type: string, format: binary``; a placeholder string stands in.
    as_json: dict[str, Any] = {
        key: ("<binary>" if isinstance(value, UploadFile) else value) for key, value in form.multi_items()
    }
    errors = openapi.validate_request_body(
        _route_path(request), request.method, "multipart/form-data", as_json
    )
    if errors:
        raise RequestValidationError(errors)
    return form


FormBody = Annotated[FormData, Depends(validated_form)]
