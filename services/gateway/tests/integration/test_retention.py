"""Gateway retention: old idempotency keys, uploads, finished operations and finished webhook
deliveries go; in-use rows stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import insert, select, update

from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.models import IdempotencyKey, Operation, Upload, WebhookDelivery, WebhookDeliveryAttempt
from gateway.retention import UPLOAD_PRUNE_BATCH, Retention

from .conftest import API_KEY

pytestmark = pytest.mark.integration


def _ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def _insert(container: Container, model: Any, rows: list[dict[str, Any]]) -> None:
    async with container.engine.begin() as connection:
        await connection.execute(insert(model), rows)


async def _present(container: Container, column: Any, ids: list[str]) -> set[str]:
    async with container.engine.connect() as connection:
        return set((await connection.scalars(select(column).where(column.in_(ids)))).all())


def _pruned(table: str) -> float:
    return (
        REGISTRY.get_sample_value("switchboard_rows_pruned_total", {"service": "gateway", "table": table})
        or 0
    )


def _key(name: str, created: datetime) -> dict[str, Any]:
    return {"key": name, "request_hash": "h", "status": "done", "created_at": created, "updated_at": created}


def _upload(upload_id: str, created: datetime) -> dict[str, Any]:
    return {
        "upload_id": upload_id,
        "file_name": "f.txt",
        "content_type": "text/plain",
        "sha256": "0" * 64,
        "content": b"x",
        "created_at": created,
    }


def _operation(op_id: str, status: str, finished: datetime) -> dict[str, Any]:
    return {
        "operation_id": op_id,
        "command_type": "agent.create",
        "status": status,
        "status_code": None if status == "pending" else 200,
        "response": None if status == "pending" else {"success": True},
        "created_at": finished,
        "updated_at": finished,
    }


async def test_prune_deletes_what_is_past_its_use_and_keeps_the_rest(container: Container) -> None:
    tag = uuid.uuid4().hex[:8]
    old_keys, new_keys = [f"{tag}-key-old"], [f"{tag}-key-new"]
    await _insert(
        container, IdempotencyKey, [_key(old_keys[0], _ago(hours=25)), _key(new_keys[0], _ago(hours=1))]
    )
    # More old uploads than one batch, so the use case has to come back for the rest.
    old_uploads = [f"{tag}-up-old-{i}" for i in range(UPLOAD_PRUNE_BATCH + 5)]
    new_uploads = [f"{tag}-up-new"]
    await _insert(
        container,
        Upload,
        [_upload(u, _ago(hours=25)) for u in old_uploads] + [_upload(new_uploads[0], _ago(hours=2))],
    )
    old_ops = [f"{tag}-op-ok", f"{tag}-op-failed"]
    kept_ops = [f"{tag}-op-pending", f"{tag}-op-recent"]
    await _insert(
        container,
        Operation,
        [
            _operation(old_ops[0], "succeeded", _ago(days=8)),
            _operation(old_ops[1], "failed", _ago(days=8)),
            _operation(kept_ops[0], "pending", _ago(days=8)),  # in flight, however old: never pruned
            _operation(kept_ops[1], "succeeded", _ago(days=6)),
        ],
    )
    uploads_before = _pruned("uploads")

    pruned = await Retention(container.settings, container.uow).prune_expired()

    assert (
        pruned["idempotency_keys"] >= 1
        and pruned["uploads"] >= len(old_uploads)
        and pruned["operations"] >= 2
    )
    assert _pruned("uploads") - uploads_before == pruned["uploads"]
    assert await _present(container, IdempotencyKey.key, old_keys + new_keys) == set(new_keys)
    assert await _present(container, Upload.upload_id, old_uploads + new_uploads) == set(new_uploads)
    assert await _present(container, Operation.operation_id, old_ops + kept_ops) == set(kept_ops)


def _delivery(delivery_id: str, status: str, changed: datetime) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "webhook_id": "whk_retention",
        "event_id": "evt_" + delivery_id,
        "event_type": "call.finished",
        "status": status,
        "attempts": 1,
        "created_at_unix": int(changed.timestamp()),
        "last_event_at": changed,
    }


async def test_finished_webhook_deliveries_and_their_attempts_go_after_their_window(
    container: Container,
) -> None:
    tag = uuid.uuid4().hex[:8]
    window = timedelta(hours=container.settings.webhook_delivery_retention_hours)
    old = [f"{tag}-delivered", f"{tag}-failed"]
    kept = [f"{tag}-pending", f"{tag}-recent"]  # a retry still to come, however old; a fresh one
    await _insert(
        container,
        WebhookDelivery,
        [
            _delivery(old[0], "delivered", _ago(hours=1) - window),
            _delivery(old[1], "failed", _ago(hours=1) - window),
            _delivery(kept[0], "pending", _ago(hours=1) - window),
            _delivery(kept[1], "delivered", _ago(hours=1)),
        ],
    )
    await _insert(
        container,
        WebhookDeliveryAttempt,
        [
            {"delivery_id": d, "attempt": 1, "started_at_ms": 0, "duration_ms": 5, "status_code": 200}
            for d in old + kept
        ],
    )
    before = _pruned("webhook_deliveries")

    pruned = await Retention(container.settings, container.uow).prune_expired()

    assert pruned["webhook_deliveries"] >= 2
    assert _pruned("webhook_deliveries") - before == pruned["webhook_deliveries"]
    assert await _present(container, WebhookDelivery.delivery_id, old + kept) == set(kept)
    assert await _present(container, WebhookDeliveryAttempt.delivery_id, old + kept) == set(kept)


async def test_an_upload_is_kept_while_its_signed_url_still_works(container: Container) -> None:
    settings = container.settings.model_copy(
        update={"upload_retention_hours": 1, "upload_url_ttl_s": 2 * 3600, "operation_retention_hours": 0}
    )
    retention = Retention(settings, container.uow)
    tag = uuid.uuid4().hex[:8]
    in_use, expired = f"{tag}-in-use", f"{tag}-expired"
    await _insert(container, Upload, [_upload(in_use, _ago(minutes=90)), _upload(expired, _ago(hours=3))])

    pruned = await retention.prune_expired()

    assert "operations" not in pruned  # 0 keeps operations forever
    assert await _present(container, Upload.upload_id, [in_use, expired]) == {in_use}


async def test_after_its_window_an_idempotency_key_starts_a_new_request(container: Container) -> None:
    app = create_app(container)  # lifespan not run: only the request path is exercised
    key = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key}
    body = {"name": f"retention-{key[:8]}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as api:

        async def create() -> httpx.Response:
            response = await api.post("/api/v1/agents", json=body, headers=headers)
            assert response.status_code == 202, response.text  # nothing answers commands here
            return response

        async def age_key() -> None:
            async with container.engine.begin() as connection:
                await connection.execute(
                    update(IdempotencyKey)
                    .where(IdempotencyKey.created_at > _ago(hours=1))
                    .values(created_at=_ago(hours=25))
                )

        first = await create()
        replayed = await create()
        assert replayed.headers.get("Idempotent-Replayed") == "true"
        assert replayed.json()["operation_id"] == first.json()["operation_id"]

        # Past the window and pruned: the key is new again, and so is its command (not a redelivery).
        await age_key()
        assert (await Retention(container.settings, container.uow).prune_expired())["idempotency_keys"] >= 1
        second = await create()
        assert "Idempotent-Replayed" not in second.headers
        assert second.json()["operation_id"] != first.json()["operation_id"]

        # Past the window but not pruned yet: the same.
        await age_key()
        third = await create()
        assert "Idempotent-Replayed" not in third.headers
        assert third.json()["operation_id"] not in {
            first.json()["operation_id"],
            second.json()["operation_id"],
        }
