"""A phone number import whose answer is lost (created, then 500 / time out) leaves exactly one
number upstream and the command succeeds with it (issue 10 §1): lookup, never a blind re-import."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contracts.base import Command
from contracts.telephony import ImportSipTrunkNumber, ImportTwilioNumber, TrunkConfig
from telephony.bootstrap import Container

from .conftest import Harness, encrypt, new_number

pytestmark = pytest.mark.integration

_CLIENT_TIMEOUT_S = 2.0
LOST_ANSWERS = {"500": {"status": 500}, "timeout": {"delay_ms": 5000}}


@pytest.fixture(params=list(LOST_ANSWERS))
def lost_answer(request: pytest.FixtureRequest, container: Container) -> Iterator[dict[str, Any]]:
    fault: dict[str, Any] = LOST_ANSWERS[request.param]
    if "delay_ms" in fault:  # a short client timeout, so the test does not wait the default one
        original, container.elevenlabs.timeout_s = container.elevenlabs.timeout_s, _CLIENT_TIMEOUT_S
        yield fault
        container.elevenlabs.timeout_s = original
    else:
        yield fault


def _twilio(number: str) -> Command:
    return ImportTwilioNumber(
        phone_number=number, label="Lost answer", sid="AC" + "2" * 32, token_encrypted=encrypt("t")
    )


def _sip(number: str) -> Command:
    return ImportSipTrunkNumber(
        phone_number=number,
        label="Lost answer",
        outbound_trunk_config=TrunkConfig(address="sip.carrier.example"),
        correlation_id=uuid.uuid4().hex,
    )


@pytest.mark.parametrize("make", [_twilio, _sip], ids=["twilio", "sip_trunk"])
async def test_import(harness: Harness, container: Container, lost_answer: dict[str, Any], make: Any) -> None:
    number = new_number("1")
    await harness.sim.post(
        "/_sim/faults",
        json={"method": "POST", "path_regex": "^/v1/convai/phone-numbers$", "after": True, **lost_answer},
    )

    event = await harness.one(make(number))

    assert event["type"] == "phone_number.imported", event
    upstream = [p for p in await container.elevenlabs.list_phone_numbers() if p["phone_number"] == number]
    assert [p["phone_number_id"] for p in upstream] == [event["phone"]["phone_number_id"]]
    posts = await harness.sim_get("/_sim/requests", method="POST", path="/v1/convai/phone-numbers")
    assert len(posts["requests"]) == 1
