"""tool-webhooks retention: conversations, customer sessions and e-mail invocations of old calls go;
recent ones stay, and a cached store binding does not outlive its pruned row."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from bus.secrets import column_context
from devinfra.standins.stores import WOO_KEY, WOO_SECRET
from tool_webhooks.bootstrap import Container
from tool_webhooks.models import Conversation, CustomerSession, EmailInvocation, KeptDelivery

from .conftest import Stores

pytestmark = pytest.mark.integration


def _ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def _insert(container: Container, model: Any, rows: list[dict[str, Any]]) -> None:
    async with container.engine.begin() as connection:
        await connection.execute(insert(model), rows)


async def _present(container: Container, column: Any, ids: list[str]) -> set[str]:
    async with container.engine.connect() as connection:
        return set((await connection.scalars(select(column).where(column.in_(ids)))).all())


def _conversation(
    container: Container, conversation_id: str, updated: datetime, store_url: str
) -> dict[str, Any]:
    credentials = {
        "platform": "woocommerce",
        "base_url": store_url,
        "api_key": WOO_KEY,
        "api_secret": WOO_SECRET,
    }
    context = column_context(Conversation.ecommerce_credentials_encrypted, conversation_id)
    return {
        "conversation_id": conversation_id,
        "agent_id": "agent",
        "ecommerce_platform": "woocommerce",
        "ecommerce_credentials_encrypted": container.settings.keyring.encrypt(
            json.dumps(credentials), context=context
        ),
        "sender_email": None,
        "updated_at": updated,
    }


def _session(conversation_id: str, updated: datetime) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "name": "Jo",
        "email": "jo@example.com",
        "phone": None,
        "sender_email": None,
        "updated_at": updated,
    }


async def test_prune_deletes_old_call_data_and_keeps_recent(container: Container, stores: Stores) -> None:
    tag = uuid.uuid4().hex[:8]
    old, recent = f"{tag}-old", f"{tag}-recent"
    await _insert(
        container,
        Conversation,
        [
            _conversation(container, old, _ago(hours=200), stores.woo_url),
            _conversation(container, recent, _ago(hours=2), stores.woo_url),
        ],
    )
    await _insert(
        container, CustomerSession, [_session(old, _ago(hours=200)), _session(recent, _ago(hours=2))]
    )
    await _insert(
        container,
        EmailInvocation,
        [
            {"key_hash": f"{tag}-inv-old", "first_seen": _ago(hours=200), "message_id": "m1"},
            {"key_hash": f"{tag}-inv-recent", "first_seen": _ago(minutes=5), "message_id": "m2"},
        ],
    )

    await _insert(
        container,
        KeptDelivery,
        [
            {
                "reason": "r",
                "size_bytes": 1,
                "sha256": f"{tag}-kept-{age}-".ljust(64, "0"),
                "truncated": False,
                "body": b"x",
                "correlation_id": None,
                "received_at": _ago(hours=age),
            }
            for age in (200, 2)
        ],
    )

    pruned = await container.tools.prune_expired()

    assert min(pruned.values()) >= 1
    assert await _present(
        container, KeptDelivery.sha256, [f"{tag}-kept-{age}-".ljust(64, "0") for age in (200, 2)]
    ) == {f"{tag}-kept-2-".ljust(64, "0")}
    assert await _present(container, Conversation.conversation_id, [old, recent]) == {recent}
    assert await _present(container, CustomerSession.conversation_id, [old, recent]) == {recent}
    assert await _present(container, EmailInvocation.key_hash, [f"{tag}-inv-old", f"{tag}-inv-recent"]) == {
        f"{tag}-inv-recent"
    }


async def test_an_invocation_is_kept_for_its_whole_dedupe_window(container: Container) -> None:
    tag = uuid.uuid4().hex[:8]
    window_h = 400  # longer than the conversation retention (168 h): the window wins
    settings = container.settings  # the object the service reads, restored below
    original = settings.email_dedupe_window_s
    settings.email_dedupe_window_s = window_h * 3600
    try:
        await _insert(
            container,
            EmailInvocation,
            [
                {"key_hash": f"{tag}-in-window", "first_seen": _ago(hours=200), "message_id": "m1"},
                {
                    "key_hash": f"{tag}-past-window",
                    "first_seen": _ago(hours=window_h + 1),
                    "message_id": "m2",
                },
            ],
        )
        await container.tools.prune_expired()
    finally:
        settings.email_dedupe_window_s = original
    assert await _present(
        container, EmailInvocation.key_hash, [f"{tag}-in-window", f"{tag}-past-window"]
    ) == {f"{tag}-in-window"}


async def test_a_cached_store_binding_does_not_outlive_its_pruned_row(
    container: Container, stores: Stores
) -> None:
    conversation_id = f"{uuid.uuid4().hex[:8]}-cached"
    await _insert(
        container, Conversation, [_conversation(container, conversation_id, _ago(hours=100), stores.woo_url)]
    )
    found = await container.tools.products({"conversation_id": conversation_id, "query": "mug"})
    assert "error" not in found, found  # the binding is now cached in memory

    # Seen from 70 h later the row is past the 168 h retention: pruned, and forgotten here too.
    await container.tools.prune_expired(now=datetime.now(UTC) + timedelta(hours=70))
    assert not await _present(container, Conversation.conversation_id, [conversation_id])
    gone = await container.tools.products({"conversation_id": conversation_id, "query": "mug"})
    assert gone["error"] == "no_store"
