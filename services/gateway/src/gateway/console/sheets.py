"""The new-campaign page: a spreadsheet and the form's fields turned into the API's multipart
submission (`gateway.submissions.form_submission`), checked by `/batch-calling/validate`'s use case
and created by `/batch-calling/submit`'s, with every error in plain words next to its field. And the
do-not-call import: a CSV's numbers added one by one through the API's do-not-call route."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData, UploadFile

from gateway.batch import BatchCalling
from gateway.console.web import Answer, call, page, plural, redirect, service_of
from gateway.routes import agents, batch_calling, phone_numbers
from gateway.routes.deps import respond
from gateway.schemas import DoNotCallRequest
from gateway.service import GatewayService
from gateway.spreadsheets import ROLES, SheetError, detected_role, head, open_sheet
from gateway.submissions import form_submission

PREVIEW_ROWS = 5
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ROLE_LABELS = {
    "phone_number": "Phone number",
    "name": "Name",
    "email": "E-mail",
    "id": "Recipient id",
    "variable": "Dynamic variable",
    "ignore": "Ignore",
}
# The API's field (a validation error's loc) -> the form's field it is shown next to.
FIELD_OF = {
    "call_name": "call_name",
    "agent_id": "agent_id",
    "phone_number_id": "phone_number_id",
    "scheduled_time_unix": "schedule",
    "timezone": "timezone",
    "retry_count": "retry_count",
    "concurrency_limit": "concurrency_limit",
    "calling_window": "window",
    "default_region": "default_region",
}
# "start": the slot beside the Start button, where a refused start says so (the field errors may be
# far above it, out of sight).
FIELDS = ("file", *dict.fromkeys(FIELD_OF.values()), "start")
PLAIN = {
    "call_name": "Give the campaign a name.",
    "agent_id": "Choose the agent that makes the calls.",
    "phone_number_id": "Choose the number to call from.",
    "retry_count": "Retries must be a whole number from 0 to 5.",
    "concurrency_limit": "Concurrent calls must be a whole number from 1 to 1000.",
    "window": "Give the calling window as two times, e.g. 09:00 and 17:00.",
    "default_region": "Write a two-letter country code such as US or GB, or leave it empty.",
    "schedule": "Give a date and time in the future, or leave it empty to start now.",
}


async def form_context(service: GatewayService) -> dict[str, Any]:
    found_agents = await call(agents.list_agents(service, page_size=100, cursor=None))
    numbers = await call(phone_numbers.list_phone_numbers(service, page_size=100, cursor=None))
    return {
        "agents": found_agents.body.get("agents", []),
        "numbers": numbers.body.get("phone_numbers", []),
        "days": list(enumerate(DAYS)),
        "values": {"retry_count": "0", "days": list(range(7))},
        "errors": {},
        "fields": FIELDS,
    }


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _api_fields(form: FormData, errors: dict[str, str], submit: bool) -> list[tuple[str, str]]:
    """The API's form fields from the console's (names, a schedule in a zone, a window of two
    times); problems the API could not word for a person go into `errors`."""
    out: list[tuple[str, str]] = []
    name = _text(form, "call_name")
    if not name and submit:
        errors["call_name"] = PLAIN["call_name"]
    out.append(("call_name", name or "preview"))
    for field in ("agent_id", "phone_number_id", "retry_count", "concurrency_limit", "default_region"):
        if value := _text(form, field):
            out.append((field, value))
    zone = _text(form, "timezone")
    if zone:
        out.append(("timezone", zone))
    if schedule := _text(form, "schedule"):
        try:
            local = datetime.fromisoformat(schedule)
            at = local.replace(tzinfo=ZoneInfo(zone or "UTC"))
            out.append(("scheduled_time_unix", str(int(at.timestamp()))))
        except (ValueError, ZoneInfoNotFoundError):
            errors["schedule"] = PLAIN["schedule"]
    start, end = _text(form, "window_start"), _text(form, "window_end")
    if start or end:
        if not (start and end):
            errors["window"] = PLAIN["window"]
        else:
            days = [int(d) for d in form.getlist("window_days") if isinstance(d, str) and d.isdigit()]
            out.append(("calling_window", json.dumps({"start": start, "end": end, "days": days})))
    return out


def _roles(form: FormData, headers: list[str]) -> dict[str, str]:
    """The mapping chosen on the page (`col_<index>`), each header's detected role otherwise."""
    roles: dict[str, str] = {}
    for index, header in enumerate(headers):
        chosen = _text(form, f"col_{index}")
        if header.strip() and chosen in ROLES:
            roles[header.strip()] = chosen
    return roles


def _field_errors(answer: Answer, errors: dict[str, str]) -> list[dict[str, Any]]:
    """Put an answer's errors next to their fields; the ones about rows and columns are returned."""
    detail = answer.body.get("detail")
    error = str(answer.body.get("error", ""))
    if error.startswith("Agent not found"):
        errors["agent_id"] = PLAIN["agent_id"]
        return []
    if error.startswith("Phone number not found"):
        errors["phone_number_id"] = PLAIN["phone_number_id"]
        return []
    if error in ("Invalid spreadsheet header", "Invalid column mapping"):
        errors["file"] = f"{error}: choose below what each column holds."
    rows: list[dict[str, Any]] = []
    if isinstance(detail, list):
        for item in detail:
            if not isinstance(item, dict):
                continue
            field = FIELD_OF.get(str(item.get("field", "")).split(".")[0])
            if field is not None:
                message = str(item.get("error", ""))
                errors[field] = PLAIN.get(field) or message
                if field == "timezone":
                    errors[field] = f"Not a time zone we know ({message}). Write it as e.g. Europe/Paris."
            else:
                rows.append(item)
    elif isinstance(detail, str) and detail.startswith("file:"):
        errors["file"] = "Choose a CSV or XLSX file."
    elif detail is not None:
        rows.append({"error": f"{error}: {detail}"})
    return rows


async def check(request: Request, *, submit: bool) -> Response:
    """Validate (or submit) the new-campaign form: the preview fragment, or a redirect to the new
    campaign. Fields' errors travel as out-of-band swaps next to their fields."""
    service = service_of(request)
    form = await request.form(max_files=1, max_fields=600)
    try:
        return await _check(request, service, form, submit=submit)
    finally:
        await form.close()


async def _check(request: Request, service: GatewayService, form: FormData, *, submit: bool) -> Response:
    errors: dict[str, str] = {}
    context: dict[str, Any] = {"headers": [], "rows": [], "roles": [], "report": None, "problems": []}
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        errors["file"] = "Choose a CSV or XLSX file of recipients."
        return _preview(request, context, errors, submit=submit)
    try:
        headers, rows = await asyncio.to_thread(head, file.file, file.filename, PREVIEW_ROWS)
    except SheetError as exc:
        errors["file"] = f"{exc.error}: " + "; ".join(str(p.get("error", "")) for p in exc.problems)
        return _preview(request, context, errors, submit=submit)
    roles = _roles(form, headers)
    context |= {
        "headers": headers,
        "rows": rows,
        "roles": [(i, h, roles.get(h.strip()) or detected_role(h)) for i, h in enumerate(headers)],
        "role_labels": ROLE_LABELS,
    }
    fields = _api_fields(form, errors, submit)
    if errors:
        return _preview(request, context, errors, submit=submit)
    numbers = request.app.state.numbers
    columns = json.dumps(roles)
    validated = await _run(service, numbers, file, fields, columns, None, submit=False)
    if not validated.ok:
        context["problems"] = _field_errors(validated, errors)
        return _preview(request, context, errors, submit=submit)
    context["report"] = validated.body
    context["problems"] = validated.body.get("problems", [])
    if not submit:
        return _preview(request, context, errors, submit=submit)
    skip: set[int] | None = None
    if not validated.body.get("valid"):
        listed_all = not any("more_problems" in p for p in context["problems"])
        if form.get("skip_bad_rows") and listed_all:
            skip = {int(p["row"]) for p in context["problems"] if isinstance(p.get("row"), int)}
        elif form.get("skip_bad_rows"):
            errors["file"] = (
                "Too many rows have problems to leave them out one by one (not all are listed): "
                "correct the file."
            )
            return _preview(request, context, errors, submit=submit)
        else:
            errors["file"] = (
                "Some rows have problems (listed below): correct them in the file, or tick "
                "“Leave out the rows with problems”."
            )
            return _preview(request, context, errors, submit=submit)
    submitted = await _run(service, numbers, file, fields, columns, skip, submit=True)
    if submitted.ok:
        return redirect(request, f"/console/campaigns/{submitted.body['id']}")
    context["problems"] = _field_errors(submitted, errors)
    return _preview(request, context, errors, submit=submit)


async def _run(
    service: GatewayService,
    numbers: Any,
    file: UploadFile,
    fields: list[tuple[str, str]],
    columns: str,
    skip: set[int] | None,
    *,
    submit: bool,
) -> Answer:
    """The API's multipart submission of `file` and `fields`, through validate's or submit's use
    case; rows in `skip` left out."""
    await file.seek(0)
    api_form = FormData([("file", file), ("columns", columns), *fields])

    async def run() -> Any:
        async with form_submission(api_form) as submission:
            if skip:
                submission = dataclasses.replace(
                    submission, entries=(e for e in submission.entries if e.ref.get("row") not in skip)
                )
            use_case = BatchCalling(service, numbers)
            if submit:
                return respond(await use_case.submit(submission))
            return await use_case.validate(submission)

    return await call(run())


def _preview(
    request: Request, context: dict[str, Any], errors: dict[str, str], *, submit: bool = False
) -> Response:
    """The preview fragment with every field's error slot (emptied when it has none). A refused
    start says so beside the Start button too."""
    if submit and (errors or context.get("problems")):
        if "file" in errors:
            why = errors["file"]
        elif errors:
            why = "Correct the fields marked above."
        else:
            why = "The rows listed above have problems."
        errors["start"] = f"Not started. {why}"
    return page(request, "_preview.html", context | {"errors": errors, "fields": FIELDS, "oob_errors": True})


async def import_do_not_call(request: Request, file: UploadFile) -> dict[str, str]:
    """Add each number of a CSV (its phone column; a `reason` column if any) through the API's
    do-not-call route; a notice of how many were added and which rows were refused."""
    service = service_of(request)
    try:
        sheet = await asyncio.to_thread(open_sheet, file.file, file.filename or "")
    except SheetError as exc:
        return {
            "kind": "error",
            "text": f"{exc.error}: " + "; ".join(str(p.get("error", "")) for p in exc.problems),
        }
    added, refused = 0, []
    with sheet:
        for entry in await asyncio.to_thread(list, sheet.entries()):
            reason = entry.variables.get("reason")
            try:
                body = DoNotCallRequest(
                    phone_number=entry.phone or "", reason=str(reason) if reason else None
                )
            except ValueError:
                refused.append(entry.ref["row"])
                continue
            answer = await call(batch_calling.add_do_not_call(body, service))
            if answer.ok:
                added += 1
            else:
                refused.append(entry.ref["row"])
    text = f"{plural(added, 'number')} added to the do-not-call list."
    if refused:
        shown = ", ".join(str(r) for r in refused[:20])
        text += f" Not phone numbers in international format (+14155550123), rows: {shown}."
    return {"kind": "error" if refused and not added else "ok", "text": text}
