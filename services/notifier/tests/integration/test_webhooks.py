"""Signed webhooks to a real local receiver: failures (503, a timeout) then 200, the signature checked
as a receiver would; leases across workers; a worker that loses its state; disable and re-enable;
resend by hand; delete."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bus.secrets import Keyring, Undecryptable, column_context, message_context
from contracts import topics
from contracts.base import Command
from contracts.campaigns import (
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignSnapshot,
    CampaignUpdated,
    ClosedRecipient,
    StagedRecipient,
)
from contracts.notifier import (
    CreateWebhookSubscription,
    DeleteWebhookSubscription,
    EnableWebhookSubscription,
    ResendWebhookDelivery,
)
from contracts.telephony import CallStatusChanged
from devinfra.bus_harness import BusHarness, wait_until
from devinfra.standins.webhook_receiver import BODY_BYTES, Receiver, serve_receiver
from notifier.bootstrap import Container, bootstrap
from notifier.models import WebhookDelivery, WebhookSubscription
from notifier.uow import UnitOfWork
from notifier.webhook_service import WebhookService

from .conftest import WEBHOOK_SECRET_KEY, WEBHOOK_TIMEOUT_S, Harness

pytestmark = pytest.mark.integration


# ---- a real receiver, verifying like the README's example ----------------------------------------


def receiver_verifies(secret: str, header: str, raw_body: bytes, tolerance_s: int = 300) -> bool:
    """The README's receiver check, written out independently of the notifier's code."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    timestamp, given = parts["t"], parts["v1"]
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serve_receiver(hang_s=WEBHOOK_TIMEOUT_S * 3) as recv:
        yield recv


# ---- helpers ---------------------------------------------------------------------------------------


async def command(harness: Harness, cmd: Command) -> dict[str, Any]:
    """The one outcome of a webhook command."""
    await harness.publish(cmd, key="webhooks")  # type: ignore[arg-type]
    return await harness.wait_for(lambda e: e.get("causation_id") == cmd.message_id, what=cmd.type)


async def subscribe(harness: Harness, receiver: Receiver, *types: str) -> tuple[str, str, str]:
    """(subscription id, its secret, its receiver path)."""
    secret = "whsec_" + uuid.uuid4().hex
    sid = "whk_" + uuid.uuid4().hex
    path = f"/hooks/{sid}"
    event = await command(
        harness,
        CreateWebhookSubscription(
            subscription_id=sid,
            url=receiver.url(path),
            event_types=list(types or ("call.finished",)),  # type: ignore[arg-type]
            signing_secret_encrypted=Keyring(WEBHOOK_SECRET_KEY).encrypt(
                secret, context=message_context("signing_secret_encrypted")
            ),
            correlation_id=uuid.uuid4().hex,
        ),
    )
    assert event["type"] == "webhook_subscription.updated"
    assert event["subscription"]["status"] == "active"
    return sid, secret, path


def finished_call(conversation_id: str | None = None, **fields: Any) -> CallStatusChanged:
    values: dict[str, Any] = {
        "conversation_id": conversation_id or f"conv_{uuid.uuid4().hex[:12]}",
        "status": "completed",
        "duration_seconds": 61,
        "outcome": "appointment_confirmed",
        "to_number": "+14155550123",
        "agent_id": "agent_1",
        "phone_number_id": "phnum_1",
        "started_at_unix": 1700000000,
        "ended_at_unix": 1700000061,
    }
    return CallStatusChanged(**(values | fields))


async def publish_event(harness: Harness, event: Any, topic: str) -> None:
    await BusHarness.publish(harness, event, topic=topic, key=getattr(event, "conversation_id", "k"))


def deliveries(harness: Harness, sid: str) -> list[dict[str, Any]]:
    return harness.matching(type="webhook_delivery.updated", subscription_id=sid)


async def delivery_rows(container: Container, sid: str) -> list[WebhookDelivery]:
    async with container.sessionmaker() as session:
        result = await session.execute(select(WebhookDelivery).where(WebhookDelivery.subscription_id == sid))
        return list(result.scalars())


@pytest.fixture
async def paused_dispatcher(container: Container) -> AsyncIterator[None]:
    """The service's own dispatcher stopped for a test that drives workers by hand."""
    await container.dispatcher.stop()
    try:
        yield
    finally:
        container.dispatcher.start()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def worker(container: Container, clock: Clock, **settings: Any) -> WebhookService:
    """Another worker on the same database: its own state, its own clock."""
    return WebhookService(
        lambda: UnitOfWork(container.sessionmaker, container.bus),
        container.webhooks._outbound,
        container.settings.model_copy(update=settings),
        clock=clock,
    )


# ---- tests -----------------------------------------------------------------------------------------


async def test_503_then_a_timeout_then_200_delivers_the_same_signed_event(
    harness: Harness, receiver: Receiver
) -> None:
    sid, secret, path = await subscribe(harness, receiver)
    receiver.scripts[path] = [(503, {"Retry-After": "1"}), ("hang", {})]
    call = finished_call()
    await publish_event(harness, call, topics.TELEPHONY_EVENTS)

    done = await harness.wait_for(
        lambda e: (
            e["type"] == "webhook_delivery.updated"
            and e["subscription_id"] == sid
            and e["status"] == "delivered"
        ),
        what="delivered",
    )
    requests = receiver.at(path)
    assert len(requests) == 3
    bodies = {r.body for r in requests}
    assert len(bodies) == 1  # the very same bytes every time
    for number, request in enumerate(requests, start=1):
        assert receiver_verifies(secret, request.headers["Switchboard-Signature"], request.body)
        assert request.headers["Switchboard-Event-Id"] == request.json["id"] == done["event_id"]
        assert request.headers["Switchboard-Delivery-Attempt"] == str(number)
        assert request.headers["Content-Type"] == "application/json"
    body = requests[0].json
    assert body["type"] == "call.finished"
    assert body["data"]["conversation_id"] == call.conversation_id
    assert (body["data"]["to_number"], body["data"]["status"], body["data"]["duration_seconds"]) == (
        "+14155550123",
        "completed",
        61,
    )
    assert not receiver_verifies(
        "whsec_wrong", requests[0].headers["Switchboard-Signature"], requests[0].body
    )

    first, second, third = deliveries(harness, sid)
    assert first["last_attempt"]["status_code"] == 503 and first["status"] == "pending"
    assert '"status": 503' in first["last_attempt"]["response_excerpt"]
    # Retry-After: 1 was honoured.
    assert first["next_attempt_at_unix"] >= first["last_attempt"]["started_at_ms"] // 1000 + 1
    assert requests[1].at - requests[0].at >= 1.0
    assert second["last_attempt"]["status_code"] is None
    assert second["last_attempt"]["error"].startswith("timeout")
    assert second["last_attempt"]["duration_ms"] >= WEBHOOK_TIMEOUT_S * 1000 * 0.9
    assert third["last_attempt"]["status_code"] == 200 and third["attempts"] == 3
    assert third["next_attempt_at_unix"] is None

    # The same call told again (a redelivery, or reconciliation after the webhook): nothing new.
    await publish_event(harness, finished_call(call.conversation_id), topics.TELEPHONY_EVENTS)
    marker = finished_call()
    await publish_event(harness, marker, topics.TELEPHONY_EVENTS)
    await wait_until(
        lambda: any(r.json["data"]["conversation_id"] == marker.conversation_id for r in receiver.at(path)),
        "marker",
    )
    assert len([r for r in receiver.at(path) if r.json["id"] == done["event_id"]]) == 3


async def test_a_reply_past_the_size_cap_keeps_its_status_and_a_2xx_one_is_delivered(
    harness: Harness, receiver: Receiver
) -> None:
    """A receiver that answers with a body past WEBHOOKS_MAX_RESPONSE_BYTES: its status was
    dropped (`status_code: null`, only "too_large"), and a 2xx counted as a failure to retry."""
    sid, _, path = await subscribe(harness, receiver)
    big = str(2_000_000)
    receiver.script(path, (500, {BODY_BYTES: big}), (200, {BODY_BYTES: big}))
    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    await harness.wait_for(
        lambda e: (
            e["type"] == "webhook_delivery.updated"
            and e["subscription_id"] == sid
            and e["status"] == "delivered"
        ),
        what="delivered",
    )
    first, second = deliveries(harness, sid)
    assert first["status"] == "pending"
    assert first["last_attempt"]["status_code"] == 500
    assert first["last_attempt"]["error"].startswith("too_large")
    assert second["last_attempt"]["status_code"] == 200 and second["last_attempt"]["error"] is None
    assert second["attempts"] == 2 and len(receiver.at(path)) == 2


async def test_a_worker_that_loses_its_state_mid_retry_loses_nothing(
    harness: Harness, receiver: Receiver, container: Container
) -> None:
    """The delivery waits in the database: a new worker (a restarted process) sends it."""
    sid, secret, path = await subscribe(harness, receiver)
    receiver.scripts[path] = [(503, {"Retry-After": "2"})]
    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    await harness.wait_for(
        lambda e: e["type"] == "webhook_delivery.updated" and e["subscription_id"] == sid,
        what="first attempt",
    )
    await container.dispatcher.stop()  # the process "dies" between attempts
    restarted = bootstrap(container.settings)
    try:
        restarted.dispatcher.start()  # a fresh process: only the database carries over
        done = await harness.wait_for(
            lambda e: (
                e["type"] == "webhook_delivery.updated"
                and e["subscription_id"] == sid
                and e["status"] == "delivered"
            ),
            what="delivered after the restart",
        )
    finally:
        await restarted.dispatcher.stop()
        await restarted.engine.dispose()
        await restarted.http.aclose()
        container.dispatcher.start()
    assert done["attempts"] == 2
    assert [r.headers["Switchboard-Delivery-Attempt"] for r in receiver.at(path)] == ["1", "2"]
    assert all(
        receiver_verifies(secret, r.headers["Switchboard-Signature"], r.body) for r in receiver.at(path)
    )


async def test_a_stalled_worker_that_wakes_up_sends_nothing_twice(
    harness: Harness, receiver: Receiver, container: Container, paused_dispatcher: None
) -> None:
    sid, _, path = await subscribe(harness, receiver)
    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    await wait_until(lambda: _has_rows(container, sid), "queued")
    clock_a, clock_b = Clock(), Clock()
    a, b = worker(container, clock_a), worker(container, clock_b)
    [held_by_a] = [c for c in await a.claim(50) if c.subscription_id == sid]
    assert [c for c in await b.claim(50) if c.subscription_id == sid] == []  # leased: B skips it
    clock_b.now += timedelta(seconds=container.settings.webhooks_lease_s + 1)  # A stalls past its lease
    [taken_by_b] = [c for c in await b.claim(50) if c.subscription_id == sid]
    await b.deliver(taken_by_b)
    assert len(receiver.at(path)) == 1
    await a.deliver(held_by_a)  # A wakes up: its lease is gone, so it neither sends nor records
    assert len(receiver.at(path)) == 1
    [row] = await delivery_rows(container, sid)
    assert (row.status, row.attempts) == ("delivered", 1)


async def _has_rows(container: Container, sid: str) -> bool:
    return bool(await delivery_rows(container, sid))


async def test_a_failing_subscription_is_disabled_holds_its_deliveries_and_is_re_enabled(
    harness: Harness, receiver: Receiver, container: Container, paused_dispatcher: None
) -> None:
    sid, secret, path = await subscribe(harness, receiver)
    receiver.scripts[path] = [(500, {})] * 50
    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    await wait_until(lambda: _has_rows(container, sid), "queued")
    clock = Clock()
    # The default rule (10 failures over 12 h) scaled down to the suite's 10-minute retry window.
    w = worker(container, clock, webhooks_disable_after_s=300)
    rule = w.disable_rule
    for attempt in range(1, rule.failures + 1):
        claimed = [c for c in await w.claim(50) if c.subscription_id == sid]
        assert len(claimed) == 1, f"attempt {attempt}: {await delivery_rows(container, sid)}"
        await w.deliver(claimed[0])
        clock.now += timedelta(seconds=rule.after_s / (rule.failures - 1) + 3)  # past the next retry
        disabled = harness.matching(
            lambda e: (
                e["type"] == "webhook_subscription.updated"
                and e["subscription"]["subscription_id"] == sid
                and e["subscription"]["status"] == "disabled"
            )
        )
        if attempt < rule.failures:
            assert not disabled, f"disabled after {attempt} failures"
    event = await harness.wait_for(
        lambda e: (
            e["type"] == "webhook_subscription.updated"
            and e["subscription"]["subscription_id"] == sid
            and e["subscription"]["status"] == "disabled"
        ),
        what="disabled",
    )
    assert "consecutive failed attempts" in event["subscription"]["disabled_reason"]
    clock.now += timedelta(days=1)
    assert [c for c in await w.claim(50) if c.subscription_id == sid] == []  # held while disabled

    # While disabled, a new event is not queued for it.
    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    receiver.scripts[path] = []  # the receiver is fixed
    enabled = await command(harness, EnableWebhookSubscription(subscription_id=sid))
    assert enabled["subscription"]["status"] == "active"
    assert enabled["subscription"]["consecutive_failures"] == 0
    container.dispatcher.start()
    done = await harness.wait_for(
        lambda e: (
            e["type"] == "webhook_delivery.updated"
            and e["subscription_id"] == sid
            and e["status"] == "delivered"
        ),
        what="held delivery sent after re-enabling",
    )
    assert done["attempts"] == rule.failures + 1
    assert len(await delivery_rows(container, sid)) == 1
    assert receiver_verifies(
        secret, receiver.at(path)[-1].headers["Switchboard-Signature"], receiver.at(path)[-1].body
    )


async def test_a_delivery_is_resent_by_hand(harness: Harness, receiver: Receiver) -> None:
    sid, _, path = await subscribe(harness, receiver)
    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    done = await harness.wait_for(
        lambda e: (
            e["type"] == "webhook_delivery.updated"
            and e["subscription_id"] == sid
            and e["status"] == "delivered"
        ),
        what="delivered",
    )
    queued = await command(
        harness, ResendWebhookDelivery(subscription_id=sid, delivery_id=done["delivery_id"])
    )
    assert (queued["type"], queued["status"], queued["last_attempt"]) == (
        "webhook_delivery.updated",
        "pending",
        None,
    )
    again = await harness.wait_for(
        lambda e: (
            e["type"] == "webhook_delivery.updated"
            and e["delivery_id"] == done["delivery_id"]
            and e["attempts"] == 2
        ),
        what="resent",
    )
    assert again["status"] == "delivered" and again["last_attempt"]["manual"] is True
    first, second = receiver.at(path)
    assert first.body == second.body and second.headers["Switchboard-Delivery-Attempt"] == "2"

    unknown = await command(harness, ResendWebhookDelivery(subscription_id=sid, delivery_id="dlv_nope"))
    assert (unknown["type"], unknown["status_code"]) == ("command.failed", 404)


async def test_campaign_status_changes_and_end_are_delivered_once_each(
    harness: Harness, receiver: Receiver
) -> None:
    _, _, path = await subscribe(harness, receiver, "campaign.status_changed", "campaign.finished")
    campaign_id = "batch_" + uuid.uuid4().hex
    for status, finished in [("running", 0), ("running", 1), ("paused", 1), ("running", 2), ("completed", 4)]:
        snapshot = CampaignSnapshot(
            campaign_id=campaign_id,
            name="Reminders",
            agent_id="agent_1",
            phone_number_id="phnum_1",
            status=status,  # type: ignore[arg-type]
            created_at_unix=1700000000,
            retry_count=0,
            total_calls_scheduled=4,
            total_calls_dispatched=finished,
            total_calls_finished=finished,
            last_updated_at_unix=1700000000 + finished,
        )
        update = CampaignUpdated(campaign=snapshot)
        await BusHarness.publish(harness, update, topic=topics.CAMPAIGN_EVENTS, key=campaign_id)  # type: ignore[arg-type]
        await BusHarness.publish(
            harness, update, topic=topics.CAMPAIGN_EVENTS, key=campaign_id
        )  # redelivered
    await wait_until(lambda: len(receiver.at(path)) >= 5, "five webhooks")
    got = [
        (r.json["type"], r.json["data"]["status"], r.json["data"]["previous_status"])
        for r in receiver.at(path)
    ]
    assert sorted(got, key=str) == sorted(
        [
            ("campaign.status_changed", "running", None),
            ("campaign.status_changed", "paused", "running"),
            ("campaign.status_changed", "running", "paused"),
            ("campaign.status_changed", "completed", "running"),
            ("campaign.finished", "completed", "running"),
        ],
        key=str,
    )


async def test_recipients_closed_in_bulk_each_get_one_recipient_finished(
    harness: Harness, receiver: Receiver
) -> None:
    """One `campaign.recipient.finished` per recipient a cancel closed in bulk (or staged already
    final), signed like any other; a redelivered bulk event, or the same fact announced one by
    one, sends nothing twice."""
    sid, secret, path = await subscribe(harness, receiver, "campaign.recipient.finished")
    campaign_id = "batch_" + uuid.uuid4().hex

    def number(i: int) -> str:
        return f"+1415555{i:04d}"

    def one_by_one(i: int, status: str) -> CampaignRecipientUpdated:
        return CampaignRecipientUpdated(
            campaign_id=campaign_id,
            recipient_id=f"r{i}",
            position=i,
            to_number=number(i),
            status=status,  # type: ignore[arg-type]
            reason="Campaign cancelled" if status == "cancelled" else None,
        )

    staged = CampaignRecipientsStaged(
        campaign_id=campaign_id,
        part_index=0,
        part_count=1,
        recipients=[
            StagedRecipient(recipient_id=f"r{i}", position=i, to_number=number(i), status="scheduled")
            for i in range(4)
        ]
        + [StagedRecipient(recipient_id="r4", position=4, to_number="12", status="failed", reason="Invalid")],
    )
    closed = CampaignRecipientsClosed(
        campaign_id=campaign_id,
        status="cancelled",
        reason="Campaign cancelled",
        part_index=0,
        part_count=1,
        recipients=[
            ClosedRecipient(recipient_id=f"r{i}", position=i, to_number=number(i), retry_count=i)
            for i in (1, 2, 3)
        ],
    )
    for event in (staged, closed, closed, one_by_one(2, "cancelled"), one_by_one(0, "completed")):
        await BusHarness.publish(harness, event, topic=topics.CAMPAIGN_EVENTS, key=campaign_id)  # type: ignore[arg-type]

    async def all_delivered() -> bool:
        rows = await delivery_rows(harness.container, sid)
        return len(rows) == 5 and all(r.status == "delivered" for r in rows)

    await wait_until(all_delivered, "five deliveries, all answered")
    got = receiver.at(path)
    assert sorted(r.json["data"]["recipient_id"] for r in got) == ["r0", "r1", "r2", "r3", "r4"]
    assert len({r.json["id"] for r in got}) == 5
    by_id = {r.json["data"]["recipient_id"]: r for r in got}
    assert by_id["r3"].json["data"] | {"time_zones": None} == {
        "campaign_id": campaign_id,
        "recipient_id": "r3",
        "position": 3,
        "to_number": number(3),
        "status": "cancelled",
        "conversation_id": None,
        "duration_seconds": None,
        "outcome": None,
        "retry_count": 3,
        "reason": "Campaign cancelled",
        "time_zones": None,
    }
    assert (by_id["r4"].json["data"]["status"], by_id["r0"].json["data"]["status"]) == ("failed", "completed")
    for request in got:
        assert receiver_verifies(secret, request.headers["Switchboard-Signature"], request.body)


async def test_delete_stops_deliveries_and_unknown_ids_are_404(harness: Harness, receiver: Receiver) -> None:
    sid, _, path = await subscribe(harness, receiver)
    deleted = await command(harness, DeleteWebhookSubscription(subscription_id=sid))
    assert deleted["type"] == "webhook_subscription.deleted"
    again = await command(harness, DeleteWebhookSubscription(subscription_id=sid))
    assert (again["type"], again["status_code"]) == ("command.failed", 404)
    missing = await command(harness, EnableWebhookSubscription(subscription_id="whk_missing"))
    assert (missing["type"], missing["status_code"]) == ("command.failed", 404)
    _, _, other_path = await subscribe(harness, receiver)
    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    await wait_until(lambda: len(receiver.at(other_path)) == 1, "the live subscription's delivery")
    assert receiver.at(path) == []


async def test_the_signing_secret_is_stored_and_sent_only_encrypted(
    harness: Harness, receiver: Receiver
) -> None:
    _, secret, _ = await subscribe(harness, receiver)
    assert secret not in await harness.table_text()
    assert all(secret not in json.dumps(e) for e in harness.events)


async def test_the_stored_signing_secret_is_bound_to_its_subscription(
    harness: Harness, receiver: Receiver
) -> None:
    """Kept re-bound to the subscription's row: readable there only, not as the command's field nor
    in another subscription's row; a command whose ciphertext is not the field's is refused."""
    sid, secret, _ = await subscribe(harness, receiver)
    other, _, _ = await subscribe(harness, receiver)
    async with harness.container.sessionmaker() as session:
        stored = (await session.get(WebhookSubscription, sid)).signing_secret_encrypted  # type: ignore[union-attr]
    keyring = harness.settings.keyring
    assert (
        keyring.decrypt(stored, context=column_context(WebhookSubscription.signing_secret_encrypted, sid))
        == secret
    )
    for context in (
        message_context("signing_secret_encrypted"),
        column_context(WebhookSubscription.signing_secret_encrypted, other),
    ):
        with pytest.raises(Undecryptable):
            keyring.decrypt(stored, context=context)

    wrong_field = keyring.encrypt(secret, context=message_context("token_encrypted"))
    refused = await command(
        harness,
        CreateWebhookSubscription(
            subscription_id="whk_" + uuid.uuid4().hex,
            url=receiver.url("/hooks/refused"),
            event_types=["call.finished"],
            signing_secret_encrypted=wrong_field,
            correlation_id=uuid.uuid4().hex,
        ),
    )
    assert (refused["type"], refused["status_code"], refused["error"]) == (
        "command.failed",
        422,
        "Invalid encrypted secret",
    )


async def test_the_failure_streak_is_published_as_it_starts_grows_and_resets(
    harness: Harness, receiver: Receiver, container: Container, paused_dispatcher: None
) -> None:
    """The gateway's read model shows `consecutive_failures` and `failing_since_unix` from
    `webhook_subscription.updated`: one after every attempt that changes them, none otherwise."""
    sid, _, path = await subscribe(harness, receiver)
    receiver.scripts[path] = [(400, {}), (500, {})]  # then 200

    def updates() -> list[dict[str, Any]]:
        return [
            e["subscription"]
            for e in harness.matching(type="webhook_subscription.updated")
            if e["subscription"]["subscription_id"] == sid
        ]

    async def attempt(w: WebhookService, clock: Clock, expected_updates: int) -> None:
        claimed = [c for c in await w.claim(50) if c.subscription_id == sid]
        assert len(claimed) == 1, (expected_updates, await delivery_rows(container, sid), clock.now)
        await w.deliver(claimed[0])
        clock.now += timedelta(seconds=40)  # past the next retry, within the retry window
        await wait_until(lambda: len(updates()) >= expected_updates, f"{expected_updates} updates")

    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    await wait_until(lambda: _has_rows(container, sid), "queued")
    clock = Clock()  # after the delivery was queued (by the real clock): it is due
    w = worker(container, clock)
    first_at = int(clock.now.timestamp())
    await attempt(w, clock, 2)  # the 400: created, then the streak starts
    await attempt(w, clock, 3)  # the 500: it grows, since the first failure
    await attempt(w, clock, 4)  # the 200: it resets
    shown = [(u["consecutive_failures"], u["failing_since_unix"], u["status"]) for u in updates()]
    assert shown == [
        (0, None, "active"),
        (1, first_at, "active"),
        (2, first_at, "active"),
        (0, None, "active"),
    ]

    # A success without a streak changes nothing shown: nothing published.
    await publish_event(harness, finished_call(), topics.TELEPHONY_EVENTS)
    await wait_until(lambda: _pending(container, sid), "queued again")
    clock.now = datetime.now(UTC)
    claimed = [c for c in await w.claim(50) if c.subscription_id == sid]
    await w.deliver(claimed[0])
    marker = await command(harness, EnableWebhookSubscription(subscription_id=sid))  # publishes one
    assert marker["subscription"]["consecutive_failures"] == 0
    assert len(updates()) == 5, updates()


async def _pending(container: Container, sid: str) -> bool:
    return any(row.status == "pending" for row in await delivery_rows(container, sid))
