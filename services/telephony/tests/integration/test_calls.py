"""PlaceCall end to end; above all, a person is never dialled twice."""

from __future__ import annotations

import uuid

import pytest
import structlog
from sqlalchemy import select

from contracts import topics
from contracts.telephony import CustomerInfo, PlaceCall
from devinfra.bus_harness import collecting, wait_until
from telephony import domain
from telephony.bootstrap import Container
from telephony.models import Call, CustomerSession

from .conftest import Harness, encrypt, new_number, pretend_crashed

pytestmark = pytest.mark.integration


def _call(agent_id: str, phone_id: str, provider: str = "twilio", digit: str = "0", **fields) -> PlaceCall:
    return PlaceCall(
        provider=provider,
        agent_id=agent_id,
        agent_phone_number_id=phone_id,
        to_number=fields.pop("to_number", None) or new_number(digit),
        correlation_id=uuid.uuid4().hex,
        **fields,
    )


async def _sent(harness: Harness, to_number: str) -> dict:
    calls = (await harness.sim_get("/_sim/calls", to_number=to_number))["calls"]
    assert len(calls) == 1, calls
    return calls[0]["request"]


async def _call_row(container: Container, conversation_id: str) -> Call | None:
    async with container.sessionmaker() as session:
        return await session.get(Call, conversation_id)


async def test_twilio_call_with_first_message_variables_and_customer_session(
    harness: Harness, container: Container, agent_id: str, twilio_phone_id: str
) -> None:
    credentials = encrypt('{"consumer_key": "ck"}', "ecommerce_credentials_encrypted")
    command = _call(
        agent_id,
        twilio_phone_id,
        first_message="Hi {{name}}!",
        dynamic_variables={"name": "Ana", "order_id": 42},
        customer_info=CustomerInfo(name="Ana", email="ana@example.com", phone="+15550100"),
        ecommerce_platform="shopify",
        ecommerce_credentials_encrypted=credentials,
        sender_email="shop@example.com",
        campaign_id="camp-1",
        recipient_id="rec-1",
        attempt=2,
    )
    outcomes = (await harness.deliver(command))[command.message_id]
    assert sorted(e["type"] for e in outcomes) == ["call.placed", "customer_session.stored"]
    assert all(e["correlation_id"] == command.correlation_id for e in outcomes)
    placed = next(e for e in outcomes if e["type"] == "call.placed")
    stored = next(e for e in outcomes if e["type"] == "customer_session.stored")
    assert placed["call_sid"] and placed["sip_call_id"] is None
    assert placed["ecommerce_credentials_encrypted"] == credentials
    assert (placed["campaign_id"], placed["recipient_id"], placed["attempt"]) == ("camp-1", "rec-1", 2)
    assert stored["conversation_id"] == placed["conversation_id"]
    assert stored["sender_email"] == "shop@example.com"

    sent = await _sent(harness, command.to_number)
    client_data = sent["conversation_initiation_client_data"]
    assert client_data["dynamic_variables"] == {
        "name": "Ana",
        "order_id": 42,
        "switchboard_attempt_id": command.message_id,
    }
    assert client_data["conversation_config_override"] == {"agent": {"first_message": "Hi {{name}}!"}}

    row = await _call_row(container, placed["conversation_id"])
    assert row is not None
    assert (row.status, row.attempt_id) == ("dialing", command.message_id)
    assert not hasattr(row, "ecommerce_credentials_encrypted")  # passed on, never kept
    async with container.sessionmaker() as session:
        customer = await session.get(CustomerSession, placed["conversation_id"])
    assert customer is not None and (customer.email, customer.sender_email) == (
        "ana@example.com",
        "shop@example.com",
    )


async def test_sip_trunk_call(harness: Harness, agent_id: str, sip_phone_id: str) -> None:
    command = _call(agent_id, sip_phone_id, "sip_trunk", dynamic_variables={"x": "1"})
    event = await harness.one(command)
    assert event["type"] == "call.placed"
    assert event["sip_call_id"] and event["call_sid"] is None
    sent = await _sent(harness, command.to_number)
    assert "conversation_config_override" not in sent["conversation_initiation_client_data"]
    assert sent["conversation_initiation_client_data"]["dynamic_variables"]["x"] == "1"


async def test_refused_dial_is_call_dial_failed(
    harness: Harness, agent_id: str, twilio_phone_id: str
) -> None:
    command = _call(agent_id, twilio_phone_id, to_number=f"+1555{uuid.uuid4().int % 1000:03d}0000")
    event = await harness.one(command)
    assert (event["type"], event["status_code"], event["error"]) == (
        "call.dial_failed",
        502,
        "Call could not be placed",
    )
    assert "cannot be dialled" in event["detail"]
    assert event["to_number"] == command.to_number


async def test_unknown_agent_is_call_dial_failed_404(harness: Harness, twilio_phone_id: str) -> None:
    event = await harness.one(_call("agent_missing", twilio_phone_id))
    assert (event["type"], event["status_code"]) == ("call.dial_failed", 404)


async def test_rate_limited_dial_is_retried_then_placed(
    harness: Harness, agent_id: str, twilio_phone_id: str
) -> None:
    path = "^/v1/convai/twilio/outbound-call$"
    (
        await harness.sim.post(
            "/_sim/faults",
            json={"method": "POST", "path_regex": path, "status": 429, "count": 1, "retry_after": 0.1},
        )
    ).raise_for_status()
    command = _call(agent_id, twilio_phone_id)
    event = await harness.one(command)
    assert event["type"] == "call.placed"
    assert await harness.dials(command.to_number) == 1


async def test_rate_limit_that_persists_is_call_dial_failed_429(
    harness: Harness, agent_id: str, twilio_phone_id: str
) -> None:
    path = "^/v1/convai/twilio/outbound-call$"
    (
        await harness.sim.post(
            "/_sim/faults",
            json={"method": "POST", "path_regex": path, "status": 429, "count": 10, "retry_after": 0.05},
        )
    ).raise_for_status()
    command = _call(agent_id, twilio_phone_id)
    event = await harness.one(command)
    assert (event["type"], event["status_code"]) == ("call.dial_failed", 429)
    assert await harness.dials(command.to_number) == 0


async def test_redelivered_place_call_dials_once(
    harness: Harness, agent_id: str, twilio_phone_id: str
) -> None:
    command = _call(agent_id, twilio_phone_id)
    outcomes = await harness.deliver(command, command)
    assert [e["type"] for e in outcomes[command.message_id]] == ["call.placed"]
    assert await harness.dials(command.to_number) == 1


async def test_started_attempt_that_never_reached_elevenlabs_is_dialled_once(
    harness: Harness, container: Container, agent_id: str, twilio_phone_id: str
) -> None:
    # The earlier delivery crashed before its dial left: ElevenLabs has no conversation for the
    # attempt, so this delivery places the call (its first and only dial) instead of failing it.
    command = _call(agent_id, twilio_phone_id)
    await pretend_crashed(container, command)
    event = await harness.one(command)
    assert event["type"] == "call.placed"
    assert await harness.dials(command.to_number) == 1
    again = await harness.one(command.model_copy())  # a further redelivery changes nothing
    assert again["type"] == "call.placed"
    assert await harness.dials(command.to_number) == 1


async def test_started_attempt_whose_call_went_out_is_adopted(
    harness: Harness, container: Container, agent_id: str, twilio_phone_id: str
) -> None:
    command = _call(agent_id, twilio_phone_id)
    await pretend_crashed(container, command)
    # the earlier delivery got as far as dialling, then crashed
    dialled = await container.elevenlabs.twilio_outbound_call(domain.call_body(command))
    event = await harness.one(command)
    assert event["type"] == "call.placed"
    assert (event["conversation_id"], event["call_sid"]) == (dialled["conversation_id"], dialled["callSid"])
    assert await harness.dials(command.to_number) == 1
    async with container.sessionmaker() as session:
        rows = (await session.scalars(select(Call).where(Call.attempt_id == command.message_id))).all()
    assert [r.conversation_id for r in rows] == [dialled["conversation_id"]]


async def _dial_requests(harness: Harness) -> list[dict]:
    return list(
        (await harness.sim_get("/_sim/requests", method="POST", path="/v1/convai/twilio/outbound-call"))[
            "requests"
        ]
    )


@pytest.mark.parametrize("status", [503, 500, 504, 408])
async def test_dial_with_unknown_outcome_is_looked_up_then_placed_once(
    harness: Harness, agent_id: str, twilio_phone_id: str, status: int
) -> None:
    # A 5xx does not say whether ElevenLabs dialled. It is neither retried blindly nor reported as a
    # failure (campaigns would dial the person again as a new attempt): ElevenLabs is asked after
    # the settle time, and only when no conversation carries the attempt is it placed, once.
    path = "^/v1/convai/twilio/outbound-call$"
    fault = {"method": "POST", "path_regex": path, "status": status, "count": 1}
    (await harness.sim.post("/_sim/faults", json=fault)).raise_for_status()
    command = _call(agent_id, twilio_phone_id)
    event = await harness.one(command)
    assert event["type"] == "call.placed"
    assert await harness.dials(command.to_number) == 1
    posts = await _dial_requests(harness)
    assert [r["status"] for r in posts] == [status, 200]
    lookups = (await harness.sim_get("/_sim/requests", method="GET", path="/v1/convai/conversations"))[
        "requests"
    ]
    user_id = domain.attempt_user_id(command.message_id)
    mine = [r["id"] for r in lookups if r["query"].get("user_id") == user_id]
    assert mine and all(posts[0]["id"] < i < posts[1]["id"] for i in mine)


async def test_dial_unknown_twice_and_absent_upstream_is_call_dial_failed(
    harness: Harness, agent_id: str, twilio_phone_id: str
) -> None:
    path = "^/v1/convai/twilio/outbound-call$"
    fault = {"method": "POST", "path_regex": path, "status": 503, "count": 2}
    (await harness.sim.post("/_sim/faults", json=fault)).raise_for_status()
    command = _call(agent_id, twilio_phone_id)
    event = await harness.one(command)
    assert (event["type"], event["status_code"], event["error"]) == (
        "call.dial_failed",
        502,
        "Call could not be placed",
    )
    assert [r["status"] for r in await _dial_requests(harness)] == [503, 503]
    assert await harness.dials(command.to_number) == 0


@pytest.mark.parametrize("lookup_status", [500, 503, 429])
async def test_dial_answered_5xx_during_a_lookup_outage_is_adopted_not_dead_lettered(
    harness: Harness, agent_id: str, twilio_phone_id: str, lookup_status: int
) -> None:
    """ElevenLabs placed the call and lost the answer, then could not list conversations for a
    while (an outage rarely hits one endpoint alone). The dial waits for the lookup, backing off,
    and adopts the call: before, four quick bus retries dead-lettered it, and the person who was
    called had no call record and no outcome."""
    dial = {"method": "POST", "path_regex": "^/v1/convai/twilio/outbound-call$", "status": 500, "after": True}
    # More failures than the client's retries times the bus's attempts (4 x 4) took before.
    outage = {
        "method": "GET",
        "path_regex": "^/v1/convai/conversations$",
        "status": lookup_status,
        "count": 24,
    }
    if lookup_status == 429:
        outage["retry_after"] = 0.05
    for fault in (dial | {"count": 1}, outage):
        (await harness.sim.post("/_sim/faults", json=fault)).raise_for_status()
    command = _call(agent_id, twilio_phone_id)
    event = await harness.one(command)
    assert event["type"] == "call.placed", event
    calls = (await harness.sim_get("/_sim/calls", to_number=command.to_number))["calls"]
    assert [c["conversation_id"] for c in calls] == [event["conversation_id"]]
    assert await harness.dials(command.to_number) == 1
    lookups = (await harness.sim_get("/_sim/requests", method="GET", path="/v1/convai/conversations"))[
        "requests"
    ]
    assert [r["status"] for r in lookups].count(lookup_status) == 24


async def test_a_lookup_outage_longer_than_the_patience_holds_dials_for_it_once_not_per_delivery(
    harness: Harness,
    container: Container,
    agent_id: str,
    twilio_phone_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dials are handled one at a time, so a dial waiting for the lookup holds every other dial.
    The patience is counted from the dial's first delivery: the redeliveries after it ask once
    each, and the dial is dead-lettered after about the patience, not BUS_MAX_ATTEMPTS times it
    (before: each delivery waited the whole patience again)."""
    patience = 1.0
    monkeypatch.setattr(container.settings, "lookup_patience_s", patience)
    dial = {"method": "POST", "path_regex": "^/v1/convai/twilio/outbound-call$", "status": 500, "after": True}
    outage = {"method": "GET", "path_regex": "^/v1/convai/conversations$", "status": 503, "count": 10_000}
    for fault in (dial | {"count": 1}, outage):
        (await harness.sim.post("/_sim/faults", json=fault)).raise_for_status()
    command = _call(agent_id, twilio_phone_id)
    dead: list[dict] = []
    dlq = container.settings.topic(topics.dead_letter(topics.TELEPHONY_COMMANDS))
    with structlog.testing.capture_logs() as logs:
        async with collecting(container.settings.kafka_bootstrap_servers, {dlq: dead}):
            await harness.publish(command)
            await wait_until(
                lambda: any(r.get("message_id") == command.message_id for r in dead),
                "the dial dead-lettered after the lookup outage outlasted the patience",
            )
    events = [e["event"] for e in logs]
    first_redelivery = events.index("telephony.command.recovering")
    assert "telephony.call.lookup_failed" in events[:first_redelivery], "the first delivery did not wait"
    # Past the patience a redelivery asks once and gives up at once: no backing off again.
    assert "telephony.call.lookup_failed" not in events[first_redelivery:], events[first_redelivery:]
    assert events.count("telephony.command.recovering") == container.settings.bus_max_attempts - 1
    assert await harness.dials(command.to_number) == 1


async def test_dial_placed_but_answered_5xx_is_adopted_not_redialled(
    harness: Harness, agent_id: str, twilio_phone_id: str
) -> None:
    # ElevenLabs placed the call, then the answer was lost (a 500 after the work was done).
    path = "^/v1/convai/twilio/outbound-call$"
    fault = {"method": "POST", "path_regex": path, "status": 500, "count": 1, "after": True}
    (await harness.sim.post("/_sim/faults", json=fault)).raise_for_status()
    command = _call(agent_id, twilio_phone_id)
    event = await harness.one(command)
    assert event["type"] == "call.placed"
    calls = (await harness.sim_get("/_sim/calls", to_number=command.to_number))["calls"]
    assert [c["conversation_id"] for c in calls] == [event["conversation_id"]]
    assert [r["status"] for r in await _dial_requests(harness)] == [500]
