"""A resource whose id the client chooses (a session's conversation id, a do-not-call number, a
template's name) can be created again after it was deleted, and reads then show it.

Found by schemathesis' stateful run: a session stored again after its delete answered 200, then every
read and the delete said 404 (the read model kept the row's tombstone). A late event older than the
delete still cannot bring the row back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from contracts.campaigns import DoNotCallAdded, DoNotCallRemoved
from contracts.provisioning import EmailTemplateCreated, EmailTemplateDeleted, EmailTemplateRecord, ToolRecord
from contracts.telephony import CustomerInfo, CustomerSessionDeleted, CustomerSessionStored
from gateway.app import create_app
from gateway.bootstrap import Container

from .conftest import API_KEY

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"X-API-Key": API_KEY}
    ) as client:
        yield client


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_a_session_stored_again_after_its_delete_is_readable(
    container: Container, api: httpx.AsyncClient
) -> None:
    cid = f"conv_{uuid.uuid4().hex}"
    path = f"/api/v1/email-templates/sessions/{cid}"

    def stored(at: int, name: str) -> CustomerSessionStored:
        return CustomerSessionStored(
            conversation_id=cid, customer_info=CustomerInfo(name=name), occurred_at=_at(at)
        )

    await container.projection.project(stored(0, "First"))
    await container.projection.project(CustomerSessionDeleted(conversation_id=cid, occurred_at=_at(1)))
    assert (await api.get(path)).status_code == 404
    await container.projection.project(stored(2, "Again"))
    response = await api.get(path)
    assert response.status_code == 200, response.text
    assert response.json()["customer_info"] == {"name": "Again"}
    # A late copy of an event from before the delete changes nothing.
    await container.projection.project(stored(0, "First"))
    assert (await api.get(path)).json()["customer_info"] == {"name": "Again"}


async def test_a_number_added_again_to_the_do_not_call_list_is_listed(
    container: Container, api: httpx.AsyncClient
) -> None:
    number = f"+1415{uuid.uuid4().int % 10**7:07d}"
    await container.projection.project(
        DoNotCallAdded(phone_number=number, added_at_unix=1, occurred_at=_at(0))
    )
    await container.projection.project(DoNotCallRemoved(phone_number=number, occurred_at=_at(1)))
    await container.projection.project(
        DoNotCallAdded(phone_number=number, reason="asked again", added_at_unix=3, occurred_at=_at(2))
    )
    numbers = (await api.get("/api/v1/do-not-call", params={"page_size": 100})).json()["numbers"]
    assert {
        "phone_number": number,
        "reason": "asked again",
        "added_at_unix": 3,
        "source": None,  # the event names no source (added by a producer that predates it)
        "conversation_id": None,
    } in numbers
    removed = await api.delete(f"/api/v1/do-not-call/{number}")
    # The gateway finds it again (the delete itself then waits for campaigns: here a 202).
    assert removed.status_code == 202, removed.text


async def test_a_listed_number_added_again_keeps_its_entry_and_a_reason_not_given_again(
    container: Container, api: httpx.AsyncClient
) -> None:
    # Found by a fresh user's trial: POST /do-not-call again without a reason showed `reason: null`
    # and a new `added_at_unix`. The campaigns service now sends the entry as kept; the read model
    # keeps it too, whatever an event says (one from before that fix, a replay).
    number = f"+1415{uuid.uuid4().int % 10**7:07d}"

    async def listed() -> dict[str, object]:
        numbers = (await api.get("/api/v1/do-not-call", params={"page_size": 100})).json()["numbers"]
        (entry,) = [n for n in numbers if n["phone_number"] == number]
        return dict(entry)

    def added(at: int, reason: str | None, **fields: str) -> DoNotCallAdded:
        return DoNotCallAdded(
            phone_number=number, reason=reason, added_at_unix=1000 + at, occurred_at=_at(at), **fields
        )

    first = {"phone_number": number, "reason": "asked", "added_at_unix": 1000, "source": "api"}
    await container.projection.project(added(0, "asked", source="api"))
    await container.projection.project(added(1, None, source="api"))
    assert await listed() == first | {"conversation_id": None}
    # The callee opting out during a call: a new reason; the entry still dates from the first add.
    await container.projection.project(
        added(2, "Opted out by voice", source="voice", conversation_id="conv_1")
    )
    assert await listed() == first | {"reason": "Opted out by voice", "conversation_id": None}
    await container.projection.project(added(3, None, source="api"))
    assert (await listed())["reason"] == "Opted out by voice"
    # Off the list and on again: a new entry.
    await container.projection.project(DoNotCallRemoved(phone_number=number, occurred_at=_at(4)))
    await container.projection.project(added(5, None, source="voice", conversation_id="conv_2"))
    assert await listed() == {
        "phone_number": number,
        "reason": None,
        "added_at_unix": 1005,
        "source": "voice",
        "conversation_id": "conv_2",
    }


async def test_a_template_created_again_under_its_name_is_readable(
    container: Container, api: httpx.AsyncClient
) -> None:
    name = f"tpl_{uuid.uuid4().hex[:12]}"

    def created(at: int, tool_id: str) -> EmailTemplateCreated:
        template = EmailTemplateRecord(
            template_id=name,
            name=name,
            description="d",
            subject_template="s",
            body_template="b",
            tool_id=tool_id,
            created_at=_at(at).isoformat(),
        )
        tool = ToolRecord(tool_id=tool_id, name=name, purpose="email", created_at_unix=at)
        return EmailTemplateCreated(template=template, tool=tool, occurred_at=_at(at))

    await container.projection.project(created(0, "tool_a"))
    await container.projection.project(
        EmailTemplateDeleted(template_id=name, tool_id="tool_a", occurred_at=_at(1))
    )
    await container.projection.project(created(2, "tool_b"))
    response = await api.get(f"/api/v1/email-templates/{name}")
    assert response.status_code == 200, response.text
    assert response.json()["tool_id"] == "tool_b"
