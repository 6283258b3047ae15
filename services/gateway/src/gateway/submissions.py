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
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from gateway.batch import Submission, sheet_error
from gateway.errors import Unprocessable, UnsupportedMediaType
from gateway.intake import json_entries
from gateway.jsonbody import BodyError, SplitBody
from gateway.schemas import BatchOptions, BatchSubmitRequest
from gateway.spreadsheets import SheetError, open_sheet

# A spreadsheet's other form fields that hold JSON text, and the JSON type each holds.
_JSON_FIELDS = {
    "ecommerce_credentials": "object",
    "retry_delays": "object",
    "calling_window": "object",
    "phone_number_ids": "array",
    "phone_number_daily_caps": "object",
    "analysis_rules": "array",
    "columns": "object",
}
_JSON_TYPES: dict[str, type] = {"object": dict, "array": list}
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
    for name, kind in _JSON_FIELDS.items():
        schema["properties"][name] = {"type": "string", "description": f"A JSON {kind} (see the JSON body)."}
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
    form's text fields. Empty fields are left out (a form sends every input); `_JSON_FIELDS` hold
    JSON text, parsed here. RequestValidationError (422) for a field given twice (the last would
    silently win), or one that is not JSON of its type (object or array)."""
    items = list(items)
    seen: set[str] = set()
    errors: list[dict[str, Any]] = []
    for name, _ in items:
        if name in seen:
            errors.append(
                {"loc": (name,), "msg": "given more than once: send each field once", "type": "duplicate"}
            )
        seen.add(name)
    if errors:
        raise _validation_error(list({e["loc"]: e for e in errors}.values()))
    fields: dict[str, Any] = {}
    roles: dict[str, str] | None = None
    for name, value in items:
        if name == "file" or not isinstance(value, str) or value == "":
            continue
        if (kind := _JSON_FIELDS.get(name)) is not None:
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):  # the latter: nested past the interpreter's limit
                parsed = _INVALID
            if parsed is _INVALID or not isinstance(parsed, _JSON_TYPES[kind]):
                raise _validation_error(
                    [{"loc": (name,), "msg": f"must be a JSON {kind}", "type": "json_invalid"}]
                ) from None
            if name == "columns":
                assert isinstance(parsed, dict)
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


class _StrictParser(MultiPartParser):
    """Starlette's multipart parser, but a text field that is not valid in the form's charset
    (UTF-8 unless the request says otherwise) is named in `undecodable` instead of being read as
    Latin-1 as if nothing were wrong (`ok\\xc3` became "okÃ"). Reads the part Starlette is
    finishing (`_current_part`, `_charset`: starlette 0.4x-1.x)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.undecodable: list[str] = []

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                bytes(part.data).decode(self._charset)
            except (UnicodeDecodeError, LookupError):
                self.undecodable.append(part.field_name)
        super().on_part_end()


async def _form(request: Request) -> FormData:
    """The request's multipart form (one file, 50 fields); 400 for a malformed one, as Starlette's
    `Request.form`, and 422 for a text field that is not UTF-8 (as a CSV cell that is not)."""
    parser = _StrictParser(request.headers, request.stream(), max_files=1, max_fields=50)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(status_code=400, detail=exc.message) from None
    if parser.undecodable:
        await form.close()
        raise _validation_error(
            [
                {
                    "loc": (name,),
                    "msg": "is not UTF-8 text: send form fields as UTF-8",
                    "type": "unicode_decode",
                }
                for name in dict.fromkeys(parser.undecodable)
            ]
        )
    return form


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@asynccontextmanager
async def submission_of(request: Request) -> AsyncIterator[Submission]:
    """The submission a request carries: a JSON body (`application/json`), or a multipart form
    (`form_submission`); a body without Content-Type is read as JSON. 415 for any other content
    type (a form-urlencoded or text body was read as JSON); 422 in the error format for a field
    that is wrong."""
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        form = await _form(request)
        try:
            async with form_submission(form) as submission:
                yield submission
        finally:
            await form.close()
        return
    # No Content-Type is read as JSON, as FastAPI reads every other route's body.
    if media_type not in ("", "application/json") and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise UnsupportedMediaType(
            "Unsupported media type",
            f"Send application/json (the JSON body) or multipart/form-data (a spreadsheet `file` and "
            f"form fields), not {media_type}",
        )
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
