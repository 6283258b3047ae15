"""An e-mail template is checked before anything is created (`gateway.email_templates.check_template`):
every placeholder must be declared or come from the session, names are unique, `sessions` is reserved."""

from __future__ import annotations

import pytest

from gateway.email_templates import check_template
from gateway.errors import Unprocessable
from gateway.schemas import EmailTemplateRequest


def _template(**changes: object) -> EmailTemplateRequest:
    fields: dict[str, object] = {
        "name": "order_confirmation",
        "description": "After an order",
        "subject_template": "Your order {{order_id}}, {{customer_name}}",
        "body_template": "Hi {{ name }}, order {{order_id}} ships soon.",
        "parameters": [{"name": "order_id", "required": True}],
        "webhook_base_url": "https://hooks.example.com",
    }
    return EmailTemplateRequest.model_validate(fields | changes)


def test_declared_and_session_placeholders_pass() -> None:
    check_template(_template())


def test_an_undeclared_placeholder_is_named_with_the_session_ones() -> None:
    with pytest.raises(Unprocessable) as refused:
        check_template(_template(body_template="{{order_id}} by {{courier}} on {{day}}"))
    assert refused.value.error == "Undeclared template placeholders"
    assert str(refused.value.detail).startswith("Declare these as parameters or remove them: courier, day ")
    assert "(session placeholders: customer_email, customer_name, email, name)" in str(refused.value.detail)


def test_duplicate_parameter_names_are_refused() -> None:
    with pytest.raises(Unprocessable, match="Validation error") as refused:
        check_template(_template(parameters=[{"name": "order_id"}, {"name": "order_id"}]))
    assert refused.value.detail == "parameter names must be unique"


def test_the_sessions_name_is_reserved() -> None:
    with pytest.raises(Unprocessable) as refused:
        check_template(_template(name="sessions"))
    assert refused.value.detail == "'sessions' is reserved; choose another template name"
