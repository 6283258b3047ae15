"""A spreadsheet submission's form fields (`gateway.submissions.form_fields`): text as sent, JSON
objects parsed, empty inputs left out, a malformed object a 422 naming its field."""

from __future__ import annotations

import io

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile

from gateway.submissions import form_fields


def test_text_fields_are_kept_as_sent_and_empty_inputs_and_the_file_left_out() -> None:
    upload = UploadFile(io.BytesIO(b"phone_number\n+14155550103\n"), filename="list.csv")
    fields, roles = form_fields(
        [
            ("file", upload),
            ("agent_id", "agent_1"),
            ("retry_count", "2"),
            ("timezone", ""),
            ("call_name", "X"),
        ]
    )
    assert fields == {"agent_id": "agent_1", "retry_count": "2", "call_name": "X"}
    assert roles is None


def test_object_fields_are_parsed_and_columns_become_roles() -> None:
    fields, roles = form_fields(
        [
            ("calling_window", '{"start": "09:00", "end": "17:00"}'),
            ("phone_number_ids", '["pn_2"]'),
            ("columns", '{"Mobil": "phone_number", "Kunde": "name", "7": 8}'),
        ]
    )
    assert fields == {"calling_window": {"start": "09:00", "end": "17:00"}, "phone_number_ids": ["pn_2"]}
    assert roles == {"Mobil": "phone_number", "Kunde": "name", "7": "8"}


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("retry_delays", "{not json", "object"),
        ("columns", '["phone_number"]', "object"),
        ("columns", "null", "object"),
        # Past the interpreter's recursion limit: json.loads raises RecursionError, not ValueError.
        ("analysis_rules", "[" * 100_000 + "]" * 100_000, "array"),
    ],
)
def test_a_malformed_json_field_is_a_validation_error_naming_it_and_its_type(
    name: str, value: str, kind: str
) -> None:
    with pytest.raises(RequestValidationError) as raised:
        form_fields([("agent_id", "agent_1"), (name, value)])
    assert [(e["loc"], e["msg"]) for e in raised.value.errors()] == [
        (("body", name), f"must be a JSON {kind}")
    ]
