"""Webhooks without I/O: which URLs may use plain http (`gateway.webhooks.allowlisted_http`) and the
shapes a webhook and a delivery are shown in (`gateway.views`), the same from the notifier's event as
from the read model's row."""

from __future__ import annotations

from contracts.notifier import WebhookDeliveryUpdated, WebhookSubscriptionRecord, WebhookSubscriptionUpdated
from gateway import views
from gateway.domain import outcome_of
from gateway.models import Webhook, WebhookDelivery, WebhookDeliveryAttempt
from gateway.webhooks import allowlisted_http

ALLOW = frozenset({"receiver.internal", "10.0.0.5:8080"})


def test_http_is_allowed_only_to_an_allowlisted_host_or_host_and_port() -> None:
    assert allowlisted_http("http://receiver.internal/hook", ALLOW)
    assert allowlisted_http("http://RECEIVER.internal:9000/hook", ALLOW)  # any port of a listed host
    assert allowlisted_http("http://10.0.0.5:8080/hook", ALLOW)
    assert not allowlisted_http("http://10.0.0.5:8081/hook", ALLOW)  # only the listed port
    assert not allowlisted_http("http://example.com/hook", ALLOW)
    assert not allowlisted_http("http:///hook", ALLOW)  # no host at all


def test_a_webhook_reads_back_as_its_event_answered_it() -> None:
    record = WebhookSubscriptionRecord(
        subscription_id="whk_1",
        url="https://example.com/hook",
        event_types=["call.finished"],
        status="active",
        created_at_unix=3,
    )
    answer = outcome_of(WebhookSubscriptionUpdated(subscription=record)).body
    assert answer["webhook_id"] == "whk_1"
    assert "signing_secret" not in answer
    # The projection stores the answer's shape as the row.
    assert views.webhook_view(Webhook(**answer)) == answer


def test_a_listed_delivery_is_the_resend_answer_plus_its_attempts() -> None:
    event = WebhookDeliveryUpdated(
        delivery_id="d1",
        subscription_id="whk_1",
        event_id="e1",
        event_type="call.finished",
        status="pending",
        attempts=1,
        next_attempt_at_unix=10,
        created_at_unix=3,
    )
    answer = outcome_of(event).body
    assert answer["webhook_id"] == "whk_1"
    row = WebhookDelivery(**answer)
    attempt = WebhookDeliveryAttempt(
        delivery_id="d1",
        attempt=1,
        started_at_ms=5,
        duration_ms=120,
        status_code=503,
        response_excerpt="busy",
        error=None,
        manual=False,
    )
    assert views.delivery_log_view(row, [attempt]) == answer | {
        "attempt_log": [
            {
                "attempt": 1,
                "started_at_ms": 5,
                "duration_ms": 120,
                "status_code": 503,
                "response_excerpt": "busy",
                "error": None,
                "manual": False,
            }
        ]
    }
