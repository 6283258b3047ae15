"""Phone numbers end to end: secrets reach ElevenLabs (the simulator) and nowhere else."""

from __future__ import annotations

import json
import uuid

import pytest

from bus.secrets import Keyring, message_context, new_key
from contracts.telephony import (
    DeletePhoneNumber,
    ImportSipTrunkNumber,
    ImportTwilioNumber,
    SipCredentials,
    TrunkConfig,
    UpdatePhoneNumber,
)
from telephony.bootstrap import Container

from .conftest import Harness, encrypt, new_number, pretend_crashed

pytestmark = pytest.mark.integration


def _cid() -> str:
    return uuid.uuid4().hex


async def _assert_nowhere_but_upstream(harness: Harness, *canaries: str) -> None:
    published = json.dumps(harness.events)
    stored = await harness.table_text()
    for canary in canaries:
        assert canary not in published
        assert canary not in stored


async def test_import_twilio_number_sends_the_token_only_upstream(harness: Harness) -> None:
    canary = f"twilio-canary-{uuid.uuid4().hex}"
    command = ImportTwilioNumber(
        phone_number=new_number("1"),
        label="Main line",
        sid="AC" + "1" * 32,
        token_encrypted=encrypt(canary),
        correlation_id=_cid(),
    )
    event = await harness.one(command)

    assert event["type"] == "phone_number.imported"
    phone = event["phone"]
    assert (phone["phone_number"], phone["label"], phone["provider"]) == (
        command.phone_number,
        "Main line",
        "twilio",
    )
    secrets = await harness.sim_get(f"/_sim/phone-numbers/{phone['phone_number_id']}/secrets")
    assert (secrets["sid"], secrets["token"]) == (command.sid, canary)
    await _assert_nowhere_but_upstream(harness, canary)


async def test_import_sip_trunk_number_with_credentials(harness: Harness) -> None:
    inbound_pw, outbound_pw = f"in-canary-{uuid.uuid4().hex}", f"out-canary-{uuid.uuid4().hex}"
    command = ImportSipTrunkNumber(
        phone_number=new_number("2"),
        label="SIP line",
        supports_inbound=True,
        outbound_trunk_config=TrunkConfig(
            address="sip.example.com",
            transport="tls",
            media_encryption="required",
            headers={"X-Tenant": "acme"},
            credentials=SipCredentials(
                username="alice", password_encrypted=encrypt(outbound_pw, "password_encrypted")
            ),
        ),
        inbound_trunk_config=TrunkConfig(
            credentials=SipCredentials(
                username="alice-in", password_encrypted=encrypt(inbound_pw, "password_encrypted")
            )
        ),
        correlation_id=_cid(),
    )
    event = await harness.one(command)

    assert event["type"] == "phone_number.imported"
    phone = event["phone"]
    assert (phone["provider"], phone["sip_username"]) == ("sip_trunk", "alice")
    secrets = await harness.sim_get(f"/_sim/phone-numbers/{phone['phone_number_id']}/secrets")
    assert secrets["outbound_credentials"] == {"username": "alice", "password": outbound_pw}
    assert secrets["inbound_credentials"] == {"username": "alice-in", "password": inbound_pw}
    sent = (await harness.sim_get("/_sim/requests", method="POST", path="/v1/convai/phone-numbers"))[
        "requests"
    ]
    outbound = sent[-1]["json"]["outbound_trunk_config"]
    assert outbound["address"] == "sip.example.com" and outbound["headers"] == {"X-Tenant": "acme"}
    assert "password_encrypted" not in json.dumps(sent[-1]["json"])
    await _assert_nowhere_but_upstream(harness, inbound_pw, outbound_pw)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-fernet-token",
        encrypt("t", "password_encrypted"),  # made for another field
        Keyring(new_key()).encrypt("t", context=message_context("token_encrypted")),  # another deployment
    ],
    ids=["garbage", "other-field", "other-key"],
)
async def test_undecryptable_secret_fails_the_command(harness: Harness, token: str) -> None:
    command = ImportTwilioNumber(phone_number=new_number("1"), label="x", sid="AC1", token_encrypted=token)
    event = await harness.one(command)
    assert (event["type"], event["status_code"]) == ("command.failed", 422)


async def test_update_and_delete_phone_number(harness: Harness, agent_id: str) -> None:
    imported = await harness.one(
        ImportTwilioNumber(
            phone_number=new_number("3"),
            label="Old",
            sid="AC1",
            token_encrypted=encrypt("t"),
            correlation_id=_cid(),
        )
    )
    phone_id = imported["phone"]["phone_number_id"]

    updated = await harness.one(
        UpdatePhoneNumber(phone_number_id=phone_id, agent_id=agent_id, label="New", correlation_id=_cid())
    )
    assert updated["type"] == "phone_number.updated"
    assert (updated["phone"]["agent_id"], updated["phone"]["label"]) == (agent_id, "New")
    assert updated["phone"]["created_at_unix"] == imported["phone"]["created_at_unix"]

    deleted = await harness.one(DeletePhoneNumber(phone_number_id=phone_id, correlation_id=_cid()))
    assert deleted == {**deleted, "type": "phone_number.deleted", "phone_number_id": phone_id}

    for command in (
        DeletePhoneNumber(phone_number_id=phone_id, correlation_id=_cid()),
        UpdatePhoneNumber(phone_number_id=phone_id, label="again", correlation_id=_cid()),
    ):
        missing = await harness.one(command)
        assert (missing["type"], missing["status_code"], missing["error"]) == (
            "command.failed",
            404,
            f"Phone number not found: {phone_id}",
        )


async def test_upstream_error_echoing_the_secret_is_redacted(harness: Harness) -> None:
    canary = f"echo-canary-{uuid.uuid4().hex}"
    body = {"detail": [{"loc": ["body", "token"], "msg": "bad", "type": "value_error", "input": canary}]}
    (
        await harness.sim.post(
            "/_sim/faults",
            json={
                "method": "POST",
                "path_regex": "^/v1/convai/phone-numbers$",
                "status": 422,
                "count": 1,
                "body": body,
            },
        )
    ).raise_for_status()
    command = ImportTwilioNumber(
        phone_number=new_number("1"),
        label="x",
        sid="AC1",
        token_encrypted=encrypt(canary),
        correlation_id=_cid(),
    )
    event = await harness.one(command)
    assert (event["type"], event["status_code"]) == ("command.failed", 422)
    assert "***" in event["detail"]
    await _assert_nowhere_but_upstream(harness, canary)


async def test_recovery_adopts_number_imported_before_a_crash(harness: Harness, container: Container) -> None:
    command = ImportTwilioNumber(
        phone_number=new_number("4"),
        label="Rec",
        sid="AC1",
        token_encrypted=encrypt("t"),
        correlation_id=_cid(),
    )
    await pretend_crashed(container, command)
    # the earlier delivery got as far as importing the number upstream
    phone_id = await container.elevenlabs.create_phone_number(
        {
            "provider": "twilio",
            "phone_number": command.phone_number,
            "label": "Rec",
            "sid": "AC1",
            "token": "t",
        }
    )
    await harness.sim.delete("/_sim/requests")

    event = await harness.one(command)
    assert event["type"] == "phone_number.imported"
    assert event["phone"]["phone_number_id"] == phone_id
    assert (await harness.sim_get("/_sim/requests", method="POST", path="/v1/convai/phone-numbers"))[
        "requests"
    ] == []
