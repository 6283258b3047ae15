"""What a batch submission request carries (`POST /batch-calling/submit` and `/validate`, and the
console's forms): a JSON body or a multipart form with a spreadsheet, read into a `batch.Submission`
for `batch.BatchCalling`. Field problems are a 422 in the error format (`RequestValidationError`,
each `loc` under `body`); the recipients themselves are checked later, as they are read."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from gateway.batch import Submission, sheet_error
from gateway.errors import Unprocessable
from gateway.intake import json_entries
from gateway.jsonbody import BodyError, SplitBody
from gateway.schemas import BatchOptions, BatchSubmitRequest
from gateway.spreadsheets import SheetError, open_sheet

# A spreadsheet's other form fields that hold JSON objects.
_JSON_FIELDS = (
    "ecommerce_credentials",
    "retry_delays",
    "calling_window",
    "phone_number_ids",
    "phone_number_daily_caps",
    "analysis_rules",
)
_INVALID = object()
# As Starlette spools a form's file (`MultiPartParser.spool_max_size`).
_SPOOL_BYTES = 1024 * 1024


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its `$defs` references inlined (for `openapi_extra`, which has no
    components of its own)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return dict(walk(schema))


def _form_schema() -> dict[str, Any]:
    schema = _inline(BatchOptions.model_json_schema())
    for name in _JSON_FIELDS:
        schema["properties"][name] = {"type": "string", "description": "A JSON object (see the JSON body)."}
    schema["properties"]["columns"] = {
        "type": "string",
        "description": "Optional JSON object: header as written -> phone_number, name, email, id, variable "
        "or ignore, overriding what the header says.",
    }
    schema["properties"]["file"] = {
        "type": "string",
        "format": "binary",
        "description": "CSV (UTF-8, comma, semicolon or tab) or XLSX: a phone_number column (or phone, "
        "number, to_number, mobile), optional name, email, id; other columns are dynamic variables.",
    }
    schema["required"] = [*schema.get("required", []), "file"]
    return schema


SUBMISSION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline(BatchSubmitRequest.model_json_schema())},
            "multipart/form-data": {"schema": _form_schema()},
        },
    }
}


def _validation_error(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError([e | {"loc": ("body", *e["loc"])} for e in errors])


def _options(data: dict[str, Any]) -> BatchOptions:
    try:
        return BatchOptions.model_validate(data)
    except ValidationError as exc:
        raise _validation_error([dict(e) for e in exc.errors()]) from None


def form_fields(
    items: Iterable[tuple[str, str | UploadFile]],
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """(the options' fields, the `columns` mapping of headers as written to roles, or None) of a
    form's text fields. Empty fields are left out (a form sends every input); `_JSON_FIELDS` and
    `columns` hold JSON text, parsed here. RequestValidationError (422) for one that is not JSON, or
    a `columns` that is not an object."""
    fields: dict[str, Any] = {}
    roles: dict[str, str] | None = None
    for name, value in items:
        if name == "file" or not isinstance(value, str) or value == "":
            continue
        if name in (*_JSON_FIELDS, "columns"):
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):  # the latter: nested past the interpreter's limit
                parsed = _INVALID
            if parsed is _INVALID or (name == "columns" and not isinstance(parsed, dict)):
                raise _validation_error(
                    [{"loc": (name,), "msg": "must be a JSON object", "type": "json_invalid"}]
                ) from None
            if name == "columns":
                roles = {str(k): str(v) for k, v in parsed.items()}
            else:
                fields[name] = parsed
        else:
            fields[name] = value
    return fields, roles


@asynccontextmanager
async def form_submission(form: FormData) -> AsyncIterator[Submission]:
    """The submission of a parsed multipart form: a spreadsheet `file`, the other fields as form
    fields (objects as JSON text), and optionally `columns`, a JSON object mapping headers as
    written to one of `spreadsheets.ROLES`. 422 in the error format for a field that is wrong."""
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise Unprocessable("Validation error", "file: a CSV or XLSX spreadsheet is required")
    fields, roles = form_fields(form.multi_items())
    if "recipients" in fields:  # silently dropping it would call a list nobody meant to upload alone
        raise _validation_error(
            [
                {
                    "loc": ("recipients",),
                    "msg": "the recipients come from the file: put them all in it, or send a JSON body without a file",
                    "type": "extra_forbidden",
                }
            ]
        )
    options = _options(fields)
    try:
        sheet = await asyncio.to_thread(open_sheet, file.file, file.filename or "", roles)
    except SheetError as exc:
        raise sheet_error(exc) from None
    try:
        yield Submission(options, sheet.entries(), "file", blank_rows=lambda: sheet.blank_rows)
    finally:
        sheet.close()


@asynccontextmanager
async def submission_of(request: Request) -> AsyncIterator[Submission]:
    """The submission a request carries: a JSON body, or a multipart form (`form_submission`).
    422 in the error format for a body that is neither or a field that is wrong."""
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=50)
        try:
            async with form_submission(form) as submission:
                yield submission
        finally:
            await form.close()
        return
    # Spooled like a form's file (in memory up to `_SPOOL_BYTES`, then on disk): the text of
    # 100,000 recipients is 10 MB, more as a str, and is read twice (gateway.jsonbody).
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as file:
        async for part in request.stream():
            file.write(part)
        file.seek(0)
        try:
            body = await asyncio.to_thread(SplitBody, file)
        except BodyError as exc:
            raise _validation_error(
                [{"loc": exc.loc, "msg": f"the body is not JSON: {exc}", "type": "json_invalid"}]
            ) from None
        yield _json_submission(body)


def _json_submission(body: SplitBody) -> Submission:
    """The submission of a JSON body; 422 for a member that is wrong or recipients missing."""
    errors: list[dict[str, Any]] = []
    try:
        # Strict: a JSON body's values are of the types the document declares (form fields are text).
        options = BatchOptions.model_validate(body.fields, strict=True)
    except ValidationError as exc:
        errors += [dict(e) for e in exc.errors()]
    if not body.count or body.count < 0:
        msg = "Field required" if body.count is None else "must be a non-empty list of recipients"
        errors.append({"loc": ("recipients",), "msg": msg, "type": "missing"})
    if errors:
        raise _validation_error(errors)
    entries = json_entries(body.recipients(), may_hold_nul=body.may_hold_nul)
    return Submission(options, entries, "json", size=body.count)
