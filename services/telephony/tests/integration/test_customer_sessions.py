"""Customer sessions: stored, replaced, deleted; deleting an unknown one fails with 404."""

from __future__ import annotations

import uuid

import pytest

from contracts.telephony import CustomerInfo, DeleteCustomerSession, StoreCustomerSession

from .conftest import Harness

pytestmark = pytest.mark.integration


async def test_store_replace_and_delete(harness: Harness) -> None:
    conversation_id = f"conv_{uuid.uuid4().hex}"
    info = CustomerInfo(name="Ana", email="ana@example.com")
    stored = await harness.one(
        StoreCustomerSession(conversation_id=conversation_id, customer_info=info, correlation_id="c1")
    )
    assert stored["type"] == "customer_session.stored"
    assert stored["customer_info"] == {"name": "Ana", "email": "ana@example.com", "phone": None}

    replaced = await harness.one(
        StoreCustomerSession(
            conversation_id=conversation_id, customer_info=CustomerInfo(name="Ana B"), correlation_id="c2"
        )
    )
    assert replaced["customer_info"]["name"] == "Ana B"

    deleted = await harness.one(DeleteCustomerSession(conversation_id=conversation_id, correlation_id="c3"))
    assert deleted == {**deleted, "type": "customer_session.deleted", "conversation_id": conversation_id}

    missing = await harness.one(DeleteCustomerSession(conversation_id=conversation_id, correlation_id="c4"))
    assert (missing["type"], missing["status_code"], missing["error"]) == (
        "command.failed",
        404,
        f"Session not found: {conversation_id}",
    )


async def test_redelivered_store_has_one_outcome(harness: Harness) -> None:
    command = StoreCustomerSession(
        conversation_id=f"conv_{uuid.uuid4().hex}", customer_info=CustomerInfo(name="Bo"), correlation_id="c"
    )
    outcomes = await harness.deliver(command, command)
    assert [e["type"] for e in outcomes[command.message_id]] == ["customer_session.stored"]
