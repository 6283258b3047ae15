"""The checks of a single outbound call that need no database (`gateway.calls`): the calling
number's provider and the platform's quiet hours, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.quiet_hours import parse_rules
from gateway.calls import check_provider, quiet_hours_overridden
from gateway.errors import Unprocessable
from gateway.models import PhoneNumber
from gateway.schemas import OutboundCallRequest

# 09:00-21:00 in the callee's zone, every day; +442079460958 is a London number.
RULES = parse_rules({"default": {"source": "test", "windows": [{"start": "09:00", "end": "21:00"}]}})
LONDON = "+442079460958"
NOON_IN_LONDON = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
NIGHT_IN_LONDON = datetime(2026, 1, 14, 23, 30, tzinfo=UTC)


def _request(**changes: object) -> OutboundCallRequest:
    fields: dict[str, object] = {"agent_id": "agent_1", "agent_phone_number_id": "pn_1", "to_number": LONDON}
    return OutboundCallRequest.model_validate(fields | changes)


def test_a_call_inside_the_quiet_hours_needs_no_override() -> None:
    assert quiet_hours_overridden(_request(), LONDON, NOON_IN_LONDON, RULES) is False
    assert quiet_hours_overridden(_request(override_quiet_hours=True), LONDON, NOON_IN_LONDON, RULES) is False


def test_a_call_outside_them_is_refused_naming_the_rule_and_the_override() -> None:
    with pytest.raises(Unprocessable) as refused:
        quiet_hours_overridden(_request(), LONDON, NIGHT_IN_LONDON, RULES)
    assert refused.value.error == "Outside quiet hours"
    assert "Europe/London" in str(refused.value.detail)
    assert 'Send "override_quiet_hours": true' in str(refused.value.detail)


def test_an_override_lets_the_call_through_and_is_recorded() -> None:
    assert quiet_hours_overridden(_request(override_quiet_hours=True), LONDON, NIGHT_IN_LONDON, RULES) is True


def test_a_number_of_the_other_provider_is_refused_naming_its_route() -> None:
    sip = PhoneNumber(phone_number_id="pn_2", provider="sip_trunk")
    check_provider(sip, "sip_trunk")
    with pytest.raises(Unprocessable) as refused:
        check_provider(sip, "twilio")
    assert refused.value.error == "Phone number pn_2 is a sip_trunk number"
    assert refused.value.detail == "Use /api/v1/sip-trunk/outbound-call"
