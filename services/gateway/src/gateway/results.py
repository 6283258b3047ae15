"""A campaign's results as the API shows them: one recipient as JSON (`recipient_view`), or as a CSV
row (`csv_header`, `csv_row`). Pure: the rows come from `repository.Results`."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from gateway.models import Call, CallAnalysis
from gateway.repository import RecipientResult


def attempt_view(call: Call) -> dict[str, Any]:
    """One attempt: `attempt` (1-based), times in unix seconds, `termination_reason` as ElevenLabs
    or the carrier gave it."""
    return {
        "attempt": call.attempt,
        "to_number": call.to_number,
        "status": call.status,
        "conversation_id": call.conversation_id,
        "started_at_unix": call.placed_at_unix,
        "ended_at_unix": call.ended_at_unix,
        "duration_seconds": call.duration_seconds,
        "termination_reason": call.reason,
    }


def analysis_view(analysis: CallAnalysis | None) -> dict[str, Any] | None:
    """The post-call analysis ElevenLabs sent (`analysis` of `post_call_transcription`)."""
    if analysis is None:
        return None
    return {
        "conversation_id": analysis.conversation_id,
        "call_successful": analysis.call_successful,
        "transcript_summary": analysis.transcript_summary,
        "data_collection_results": analysis.data_collection_results,
        "evaluation_criteria_results": analysis.evaluation_criteria_results,
    }


def recipient_view(result: RecipientResult) -> dict[str, Any]:
    """api-v1.md 10.4's fields unchanged (to_number, status, conversation_id, duration_seconds,
    outcome, retry_count), then everything else Switchboard knows about the recipient."""
    r = result.recipient
    return {
        "to_number": r.to_number,
        "status": r.status,
        "conversation_id": r.conversation_id,
        "duration_seconds": r.duration_seconds,
        "outcome": r.outcome,
        "retry_count": r.retry_count,
        "recipient_id": r.recipient_id,
        "position": r.position,
        "name": r.name,
        "email": r.email,
        "dynamic_variables": r.dynamic_variables,
        "time_zones": r.time_zones,
        "reason": r.reason,
        "waiting_reason": r.waiting_reason,
        "next_attempt_at_unix": r.next_attempt_at_unix,
        "callback_at_unix": r.callback_at_unix,
        "callback_requested": r.callback_requested,
        "attempts": [attempt_view(c) for c in result.attempts],
        "analysis": analysis_view(result.analysis),
    }


FIXED_COLUMNS = (
    "recipient_id",
    "position",
    "to_number",
    "name",
    "email",
    "status",
    "outcome",
    "retry_count",
    "attempts",
    "conversation_id",
    "duration_seconds",
    "started_at_unix",
    "ended_at_unix",
    "termination_reason",
    "time_zones",
    "reason",
    "waiting_reason",
    "call_successful",
    "transcript_summary",
)
DATA_COLLECTION_PREFIX = "data_collection."
DYNAMIC_VARIABLE_PREFIX = "dynamic_variables."


def csv_header(data_collection_keys: Iterable[str], variable_keys: Iterable[str]) -> list[str]:
    """The fixed columns, then one per data collection id, then one per dynamic variable."""
    return [
        *FIXED_COLUMNS,
        *(DATA_COLLECTION_PREFIX + k for k in data_collection_keys),
        *(DYNAMIC_VARIABLE_PREFIX + k for k in variable_keys),
    ]


# OWASP "CSV Injection": a cell a spreadsheet may read as a formula starts with one of these.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain signed number (an E.164 number, a negative amount) is no formula and stays as it is.
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def neutralise(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula (OWASP's CSV Injection guidance): text
    starting with = + - @, a tab or a carriage return gets a leading `'`, which Excel, LibreOffice
    and Google Sheets show as text; plain signed numbers (an E.164 number) are left alone, as is
    anything not text. The writer then quotes cells holding separators or quotes, so a formula
    cannot start after an embedded separator either.

    Not `defusedcsv`: it misses a leading tab or carriage return and changes E.164 numbers and `|`."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    # Scalars as themselves; lists and objects as compact JSON (a cell holds text).
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def csv_row(result: RecipientResult, data_collection_keys: list[str], variable_keys: list[str]) -> list[Any]:
    """One recipient; `started_at_unix`, `ended_at_unix` and `termination_reason` are its last
    attempt's; `time_zones` separated by spaces; the analysis is the last answered call's."""
    r, a = result.recipient, result.analysis
    last = result.attempts[-1] if result.attempts else None
    collected = a.data_collection_results if a is not None else {}
    return [
        r.recipient_id,
        r.position,
        r.to_number,
        r.name,
        r.email,
        r.status,
        r.outcome,
        r.retry_count,
        len(result.attempts),
        r.conversation_id,
        r.duration_seconds,
        last.placed_at_unix if last else None,
        last.ended_at_unix if last else None,
        last.reason if last else None,
        " ".join(r.time_zones),
        r.reason,
        r.waiting_reason,
        a.call_successful if a else None,
        a.transcript_summary if a else None,
        *(_cell(collected.get(k)) for k in data_collection_keys),
        *(_cell(r.dynamic_variables.get(k)) for k in variable_keys),
    ]


async def csv_lines(
    header: list[str],
    pages: AsyncIterator[list[RecipientResult]],
    data_collection_keys: list[str],
    variable_keys: list[str],
) -> AsyncIterator[str]:
    """The CSV text (RFC 4180, CRLF), one chunk per page: the header first, then a row per recipient,
    every cell `neutralise`d against formula injection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def taken() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    # Every cell, the header too: data collection ids and variable names are the user's as well.
    writer.writerow([neutralise(name) for name in header])
    yield taken()
    async for page in pages:
        writer.writerows(
            [neutralise(cell) for cell in csv_row(result, data_collection_keys, variable_keys)]
            for result in page
        )
        yield taken()
