"""Text a person must give (a name, a label, a description, a campaign's call_name) is refused when
it is blank after stripping: `min_length=1` alone let "   " through, an agent with no name."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gateway import schemas

TEMPLATE = {
    "name": "reminder",
    "description": "A reminder",
    "subject_template": "Hi",
    "body_template": "Hello",
    "webhook_base_url": "https://switchboard.example.com/api/v1",
}

# (model, a valid body, the field that must not be blank)
CASES: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (schemas.CreateAgentRequest, {"name": "Sales"}, "name"),
    (schemas.UpdateAgentRequest, {"name": "Sales"}, "name"),
    (
        schemas.WebhookToolRequest,
        {"name": "inventory", "description": "Looks up stock", "webhook_url": "https://api.example.com/x"},
        "description",
    ),
    (schemas.TextDocumentRequest, {"text": "We open at nine."}, "text"),
    *(
        (schemas.EmailTemplateRequest, TEMPLATE, field)
        for field in ("description", "subject_template", "body_template")
    ),
    (schemas.UpdatePhoneNumberRequest, {"label": "Main line"}, "label"),
    (schemas.CreateApiKeyRequest, {"name": "ci", "scope": "read"}, "name"),  # its own check, kept
    (schemas.BatchOptions, {"call_name": "Reminders", "agent_id": "a", "phone_number_id": "p"}, "call_name"),
]


@pytest.mark.parametrize(("model", "body", "field"), CASES, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("blank", ["   ", "\t", " \n ", "\u3000"])
def test_required_text_blank_after_stripping_is_refused(
    model: type[BaseModel], body: dict[str, Any], field: str, blank: str
) -> None:
    model.model_validate(body)  # the body is valid as given
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body | {field: blank})
    (error,) = refused.value.errors()
    assert error["loc"] == (field,) and "blank" in error["msg"]


def test_text_around_a_name_is_kept_as_given() -> None:
    assert schemas.CreateAgentRequest.model_validate({"name": " Sales "}).name == " Sales "
    assert schemas.UpdateAgentRequest.model_validate({}).name is None  # not given: unchanged
