"""The bus runtime: Kafka in and out, a transactional outbox relay, bounded retries, dead letters.

Delivery is at-least-once end to end:
- producers write messages to the outbox table in the same transaction as their state change;
  a relay publishes committed rows to Kafka (acks=all) and deletes them only after the broker acked;
- consumers commit their Kafka offset only after the handler's transaction committed
  (FastStream's Kafka default, ACK_FIRST, is at-most-once and is never used here);
- handlers deduplicate on the message id with the inbox table, so a redelivery has no second effect;
  inbox rows older than BUS_INBOX_RETENTION_HOURS (longer than Kafka keeps a message) are pruned;
- a batch subscription (`batch=True`) runs the handlers of the messages fetched together in one
  database transaction and commits the offsets after it; if any of them fails, that transaction
  is rolled back and each message is handled again on its own (own transaction, retries, dead
  letter), in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
)
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.subscriber.usecase import BatchSubscriber, DefaultSubscriber
from faststream_outbox import ExponentialRetry, OutboxBroker, OutboxMessage
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bus import batch as batch_tx
from bus import claims, inbox, metrics, queued
from bus.context import bind_correlation_id, current_correlation_id
from bus.db import count_work
from bus.kafka_security import kafka_client_kwargs, kafka_security
from bus.limits import MessageTooLarge, check_fits
from bus.logs import describe_error, error_trace
from bus.pacing import FetchPacing
from bus.periodic import Periodic
from bus.settings import BusSettings
from bus.tracing import TRACE_HEADERS, attached, consuming, current_trace_headers
from contracts.base import Message
from contracts.topics import DEAD_LETTER_SUFFIX, dead_letter

log = structlog.get_logger("bus")

Handler = Callable[[Any], Awaitable[None]]
#: Called when the relay gives up on an outbox row for good: (topic, message headers, error).
RelayFailureHook = Callable[[str, dict[str, str], BaseException], Awaitable[None]]

#: Errors after which publishing the same record again can never succeed: the relay stops retrying
#: the row (aiokafka raises MessageSizeTooLargeError itself over `max_request_size`).
PERMANENT_PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
)
#: What a dead letter's headers may add to the original record (error, trace, origin): the producer
#: accepts this much over BUS_MAX_MESSAGE_BYTES, and the broker's limit is checked against both.
DEAD_LETTER_HEADROOM_BYTES = 16 * 1024
# Original headers kept on a dead letter only up to this size (a poison message may carry huge ones).
_MAX_KEPT_HEADER_BYTES = 8 * 1024
_BUS_HEADERS = frozenset({"message_id", "type", "version", "correlation_id", "causation_id"})
_ESSENTIAL_DLQ_HEADERS = frozenset(
    {
        "x-reason",
        "x-error",
        "x-original-topic",
        "x-original-partition",
        "x-original-offset",
        "x-attempts",
        "x-failed-by",
    }
)

# The outbox rows' queue (and the payload of the NOTIFY their INSERT sends). Every service's table
# is `outbox` in its own schema, so every relay LISTENs on the same channel (`outbox_outbox`) and
# filters wake-ups by this payload: one queue name shared by all services woke all of them (and
# each ran an empty claim transaction) for every row any service queued. Each outbox has its own
# queue now (`kafka-relay:<schema>.outbox`); rows queued under the old shared name by an older
# release are still relayed.
_LEGACY_RELAY_QUEUE = "kafka-relay"
#: The relay's shortest wait between claims (faststream-outbox's `min_fetch_interval`), and how
#: long after a claim that found fewer rows than it asked for it claims again only on a NOTIFY
#: (`bus.claims`).
_RELAY_MIN_FETCH_INTERVAL_S = 0.05
_TOPIC_HEADER = "x-topic"
_KEY_HEADER = "x-key"
# Inbox rows deleted per transaction: short transactions, and no long lock on a busy table.
INBOX_PRUNE_BATCH = 1000


def message_headers(message: Message) -> dict[str, str]:
    headers = {"message_id": message.message_id, "type": message.type, "version": str(message.version)}
    if message.correlation_id:
        headers["correlation_id"] = message.correlation_id
    if message.causation_id:
        headers["causation_id"] = message.causation_id
    return headers


class Bus:
    """One per service process. Build it in `bootstrap`, start/stop it in the app lifespan."""

    def __init__(
        self,
        settings: BusSettings,
        *,
        service: str,
        engine: AsyncEngine,
        outbox_table: Table,
        inbox_table: Table | None = None,
    ) -> None:
        """`inbox_table`: the service's inbox; given, its old rows are pruned while the bus runs."""
        self.settings = settings
        self.service = service
        self._engine = engine
        count_work(engine, service)
        self._outbox_table = outbox_table
        self._outbox_writer = queued.OutboxWriter(outbox_table)
        self._inbox = inbox_table
        self._relay_failure_hooks: list[RelayFailureHook] = []
        self._relay_queue = f"{_LEGACY_RELAY_QUEUE}:{outbox_table.fullname}"
        self._inbox_retention: Periodic | None = None
        if inbox_table is not None and settings.bus_inbox_retention_hours > 0:
            self._inbox_retention = Periodic(
                "bus.inbox_retention", settings.bus_retention_interval_s, self._prune_expired_inbox
            )
        self._outbox_age = Periodic(
            "bus.outbox_age", settings.bus_outbox_age_interval_s, self.measure_outbox_age
        )
        # FastStream's own lines (per message at DEBUG; consumer and publish errors at ERROR) go
        # through the service's structured logging instead of nowhere.
        broker_log = logging.getLogger("bus.faststream")
        self.kafka = KafkaBroker(
            settings.kafka_bootstrap_servers,
            security=kafka_security(settings),  # TLS/SASL of managed Kafka (KAFKA_SECURITY_PROTOCOL)
            client_id=service,
            acks="all",
            enable_idempotence=settings.kafka_enable_idempotence,
            # Room for a dead letter's headers on top of the largest message we let in.
            max_request_size=max(1024 * 1024, settings.bus_max_message_bytes + DEAD_LETTER_HEADROOM_BYTES),
            graceful_timeout=15.0,
            logger=broker_log,
            log_level=logging.DEBUG,
            # Spans for every publish and consume, linked through Kafka headers (W3C traceparent).
            middlewares=[KafkaTelemetryMiddleware()],
            # No dependency injection: our subscribers take the raw body and read the message from
            # the broker's context. FastDepends resolved `msg: KafkaMessage` with a sync getter run
            # in a worker thread, several thread hops per message (bench/bus_cost.py, profiled).
            apply_types=False,
        )
        self.outbox = OutboxBroker(
            engine,
            outbox_table=outbox_table,
            graceful_timeout=15.0,
            logger=broker_log,
            log_level=logging.DEBUG,
            apply_types=False,  # as for self.kafka: the relay reads its row from the context
            metrics_recorder=self._record_relay_event,
        )
        self._claim_gate = claims.ClaimGate(window_s=_RELAY_MIN_FETCH_INTERVAL_S)
        self._register_relay()

    def on_relay_failure(self, hook: RelayFailureHook) -> None:
        """Run `hook(topic, headers, error)` when the relay drops a row it can never publish.

        The hook runs before the row is deleted; if it raises, the row is retried later.
        """
        self._relay_failure_hooks.append(hook)

    # ---- producing ---------------------------------------------------------------------------

    async def publish_later(
        self, session: AsyncSession, topic: str, message: Message, *, key: str | None = None
    ) -> None:
        """Queue `message` for `topic` in the caller's transaction; it is sent once that commits.
        Its outbox row is written with the transaction's other queued rows, in one INSERT just
        before the COMMIT (`bus.queued`); refused at once if it is too large."""
        body, headers = self._outgoing(topic, message, key)
        row = queued.OutboxWriter.row(self._relay_queue, body, headers, message.correlation_id)
        await queued.queue(session, self._outbox_writer, row)

    async def publish_replaceable(
        self, session: AsyncSession, topic: str, message: Message, *, key: str | None = None
    ) -> int:
        """Like `publish_later`, but its row is written now, after any queued before it; returns
        the row's id (for `replace_queued`)."""
        body, headers = self._outgoing(topic, message, key)
        await queued.flush(session)
        row_id = await self.outbox.publish(
            body,
            queue=self._relay_queue,
            session=session,
            headers=headers,
            correlation_id=message.correlation_id,
        )
        assert row_id is not None  # None only for a timer_id conflict; we never pass one
        return row_id

    async def replace_queued(
        self, session: AsyncSession, row_id: int, topic: str, message: Message, *, key: str | None = None
    ) -> None:
        """Replace, in the same still-open transaction, a message queued by `publish_replaceable`.

        For a leading message whose content is known only after its followers were queued (a
        campaign's chunk count once its file has been read): it keeps its place, so it is still
        relayed before them. The relay never sees the first version: it reads committed rows only.
        """
        body, headers = self._outgoing(topic, message, key)
        await session.execute(
            update(self._outbox_table)
            .where(self._outbox_table.c.id == row_id)
            .values(payload=body, headers=headers)
        )

    def _outgoing(self, topic: str, message: Message, key: str | None) -> tuple[bytes, dict[str, str]]:
        headers = (
            message_headers(message) | current_trace_headers() | {_TOPIC_HEADER: self.settings.topic(topic)}
        )
        if key is not None:
            headers[_KEY_HEADER] = key
        body = message.model_dump_json().encode()
        # Refused here, in the writer's transaction, rather than retried for ever by the relay.
        check_fits(
            body,
            headers,  # our routing headers (topic, key) travel as the key and topic: counted generously
            limit=self.settings.bus_max_message_bytes,
            what=f"{message.type} message",
        )
        return body, headers

    async def publish_now(
        self, topic: str, body: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await self.kafka.publish(
            body,
            topic=topic,
            key=key,
            headers=headers,
            correlation_id=headers.get("correlation_id"),
        )

    def _register_relay(self) -> None:
        queues = [self._relay_queue, _LEGACY_RELAY_QUEUE]
        subscriber = self.outbox.subscriber(
            queues,
            max_workers=1,  # one worker keeps per-key order as written
            fetch_batch_size=50,
            # Relayed rows are deleted in one statement per batch (when 50 are done or none is
            # waiting), not one DELETE each. A row stays leased until then, so no other fetch takes
            # it; a crash before the delete relays it again (at-least-once; consumers dedupe).
            terminal_flush_batch_size=50,
            min_fetch_interval=_RELAY_MIN_FETCH_INTERVAL_S,
            max_fetch_interval=1.0,
            # Rows a dead relay leased wait this long for another; a live relay publishes a fetched
            # batch in milliseconds and deletes within half of it (the library's buffer age).
            lease_ttl_seconds=self.settings.bus_relay_lease_s,
            retry_strategy=ExponentialRetry(
                initial_delay_seconds=0.2, max_delay_seconds=10.0, max_attempts=None
            ),
        )
        # No claim straight after a short one unless a NOTIFY came: half the claims (bus.claims).
        claims.install(self.outbox.client, subscriber, queues, self._claim_gate)

        @subscriber
        async def relay(body: Any) -> None:
            message: OutboxMessage = self.outbox.context.get_local("message")
            headers = {k: str(v) for k, v in (message.headers or {}).items()}
            topic = headers.pop(_TOPIC_HEADER, "")
            key = headers.pop(_KEY_HEADER, None)
            if not topic:  # not written by publish_later: no retry will ever find where it goes
                await self._relay_gave_up(
                    "?", headers, len(message.body), ValueError("outbox row without x-topic")
                )
                return
            trace_headers = {k: v for k, v in headers.items() if k in TRACE_HEADERS}
            headers = {
                k: v
                for k, v in headers.items()
                if k in {"message_id", "type", "version", "correlation_id", "causation_id"}
            }
            bind_correlation_id(headers.get("correlation_id"))
            try:
                with attached(trace_headers):  # continue the trace of the transaction that wrote the row
                    await self.publish_now(
                        topic, bytes(message.body), key=key.encode() if key else None, headers=headers
                    )
            except PERMANENT_PUBLISH_ERRORS as exc:
                await self._relay_gave_up(topic, headers, len(message.body), exc)
                return  # acked: the row is deleted, never retried
            except Exception as exc:
                metrics.RELAY_FAILED.labels(self.service, topic, "transient").inc()
                log.warning(
                    "bus.outbox.relay_failed",
                    topic=topic,
                    message_id=headers.get("message_id"),
                    type=headers.get("type"),
                    error=describe_error(exc),
                    will_retry=True,
                )
                raise  # nacked: the row is retried with backoff
            metrics.RELAYED.labels(self.service, topic).inc()

    def _record_relay_event(self, event: str, tags: Any) -> None:
        """faststream_outbox's metrics hook (per claim and per row): counts the claims."""
        if event == "fetched":
            # The library reports a claim the gate skipped as one that found nothing.
            empty = "skipped" if self._claim_gate.last_skipped else "empty"
            metrics.RELAY_FETCHES.labels(self.service, "rows" if tags.get("count") else empty).inc()

    async def _relay_gave_up(
        self, topic: str, headers: dict[str, str], size: int, exc: BaseException
    ) -> None:
        log.error(
            "bus.outbox.relay_dropped",
            topic=topic,
            message_id=headers.get("message_id"),
            type=headers.get("type"),
            bytes=size,
            limit=self.settings.bus_max_message_bytes,
            error=describe_error(exc),
        )
        for hook in self._relay_failure_hooks:
            await hook(topic, headers, exc)
        metrics.RELAY_FAILED.labels(self.service, topic, "permanent").inc()

    async def measure_outbox_age(self) -> float:
        """Set and return the age in seconds of the oldest outbox row not yet relayed (0 when empty)."""
        async with self._engine.connect() as connection:
            oldest = await connection.scalar(
                select(func.extract("epoch", func.now() - func.min(self._outbox_table.c.created_at)))
            )
        age = max(0.0, float(oldest or 0.0))
        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)
        return age

    # ---- consuming ---------------------------------------------------------------------------

    def subscribe(
        self,
        topic: str,
        schema: Any,
        handler: Handler,
        *,
        group_id: str | None = "",
        from_latest: bool = False,
        unknown_types: UnknownTypes | None = None,
        batch: bool = False,
        alone: Callable[[Any], bool] | None = None,
    ) -> None:
        """Handle every message of `topic` whose `type` is in `schema` (a discriminated union).

        `group_id=""` means the service's consumer group; `None` means no group (every replica
        sees every message, e.g. for request/reply). A handler failure is retried with backoff
        `BUS_MAX_ATTEMPTS` times, then the message goes to `<topic>.dlq` with the error. A message
        that cannot be decoded or routed (not UTF-8 JSON, not an object, no string `type`, fields
        the schema refuses) goes to `<topic>.dlq` at once with the reason in `x-reason`, and the
        partition moves on. See `UnknownTypes` for a well-formed message of a type not in `schema`.

        `batch=True`: the messages fetched together (up to `BUS_BATCH_MAX_RECORDS`, whatever is
        waiting; no waiting for more; cut into runs of at most `BUS_BATCH_MAX_BYTES` of bodies,
        one message always) share ONE database transaction per run: every `TransactionScope`
        the handler opens joins it (`bus.batch`), and the offsets are committed once, after it
        committed. If a handler raises, the batch's transaction is rolled back and each of its
        messages is handled again alone, in order, as without `batch` (its own transaction,
        retries, dead letter): a poison message fails alone and the others take effect once. Only
        for handlers whose every effect is in that transaction (no HTTP call, no other commit).
        `alone(message)` True: that message is never part of a batch (its handler calls out); the
        batch is cut there, what came before it committed first, so the order is kept.
        """
        self.subscribe_many(
            {topic: schema},
            handler,
            group_id=group_id,
            from_latest=from_latest,
            unknown_types=unknown_types,
            batch=batch,
            alone=alone,
        )

    def subscribe_many(
        self,
        schemas: dict[str, Any],
        handler: Handler,
        *,
        group_id: str | None = "",
        from_latest: bool = False,
        unknown_types: UnknownTypes | None = None,
        batch: bool = False,
        alone: Callable[[Any], bool] | None = None,
    ) -> None:
        """Like `subscribe`, for several topics served by ONE consumer (each with its schema).

        Each consumer polls the broker on its own, so a service that listens to many topics
        with the same handler should use one consumer for them.
        """
        routes: dict[str, _Route] = {}
        for topic, schema in schemas.items():
            adapter: TypeAdapter[Any] = TypeAdapter(schema)
            routes[self.settings.topic(topic)] = _Route(
                adapter, _literal_types(adapter), unknown_types or default_unknown_types(topic)
            )
        options: dict[str, Any] = dict(
            # The prefix names the consumer group too: deployments (and test sessions) sharing a
            # cluster must never share a group, or one's stale member stalls the other's joins.
            group_id=self.settings.topic(self.service) if group_id == "" else group_id,
            auto_offset_reset="latest" if from_latest else "earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            no_reply=True,
            # Bytes in, bytes out: decoding is ours, so bad bytes reach the dead-letter path
            # instead of raising inside FastStream and being redelivered for ever.
            decoder=_raw_body,
        )
        if not batch:
            subscriber: DefaultSubscriber = self.kafka.subscriber(*routes, parser=_tolerant_parser, **options)
            one_pacing = self._pacing()

            async def fetch_one(consumer: Any) -> Any:
                # FastStream's own fetch (`getone`) waits for ever at one pace (bus.pacing).
                records = await one_pacing.fetch(consumer, max_records=1)
                return records[0] if records else None

            subscriber.get_msg = fetch_one  # type: ignore[method-assign]

            @subscriber
            async def consume(body: Any) -> None:
                msg: KafkaMessage = self.kafka.context.get_local("message")
                delivery = _Delivery.of_message(msg)
                await self._consume(delivery, routes[delivery.topic], handler)

            return

        max_records = self.settings.bus_batch_max_records
        batch_subscriber: BatchSubscriber = self.kafka.subscriber(
            *routes, parser=_tolerant_batch_parser, batch=True, max_records=max_records, **options
        )

        batch_pacing = self._pacing()

        async def fetch_waiting(consumer: Any) -> tuple[Any, ...]:
            # What the fetcher holds, as soon as it holds anything. FastStream's own batch fetch
            # sleeps another `batch_timeout_ms` after an empty wait, which would delay the next
            # message after any idle second by up to that long.
            return tuple(await batch_pacing.fetch(consumer, max_records=max_records))

        batch_subscriber.get_msg = fetch_waiting  # type: ignore[method-assign]

        @batch_subscriber
        async def consume_batch(body: Any) -> None:
            msg: KafkaMessage = self.kafka.context.get_local("message")
            deliveries = [_Delivery.of_record(record) for record in msg.raw_message]
            await self._consume_batch(deliveries, routes, handler, alone)

    def _pacing(self) -> FetchPacing:
        return FetchPacing(
            self.settings.kafka_fetch_max_wait_ms,
            self.settings.kafka_idle_fetch_max_wait_ms,
            self.settings.kafka_idle_after_ms,
        )

    async def _consume(self, delivery: _Delivery, route: _Route, handler: Handler) -> None:
        message = await self._decode(delivery, route)
        if message is not None:
            await self._handle(delivery, message, handler)

    async def _decode(self, delivery: _Delivery, route: _Route) -> Any | None:
        """The message, or None when it was skipped or dead-lettered as unroutable."""
        bind_correlation_id(delivery.headers.get("correlation_id"))
        try:
            return route.decode(delivery.raw)
        except Unroutable as exc:
            if exc.reason == "type-unknown" and route.unknown_types == "skip":
                log.debug("bus.message.skipped", topic=delivery.topic, type=exc.detail)
                return None
            await self._unroutable(delivery, exc)
            return None

    async def _consume_batch(
        self,
        deliveries: list[_Delivery],
        routes: dict[str, _Route],
        handler: Handler,
        alone: Callable[[Any], bool] | None,
    ) -> None:
        run: list[tuple[_Delivery, Any]] = []
        run_bytes = 0
        max_bytes = self.settings.bus_batch_max_bytes
        for delivery in deliveries:
            if run and run_bytes + len(delivery.raw) > max_bytes:
                # Cut before a message that would pass the cap: what a run holds decoded (and
                # what its handlers build from it) is bounded by bytes, not only by count.
                await self._handle_run(run, handler)
                run, run_bytes = [], 0
            message = await self._decode(delivery, routes[delivery.topic])
            if message is None:
                continue
            if alone is not None and alone(message):
                # Cut the batch here: the messages before it take effect first, then it alone.
                await self._handle_run(run, handler)
                run, run_bytes = [], 0
                await self._handle_run([(delivery, message)], handler)
            else:
                run.append((delivery, message))
                run_bytes += len(delivery.raw)
        await self._handle_run(run, handler)

    async def _handle_run(self, decoded: list[tuple[_Delivery, Any]], handler: Handler) -> None:
        """Messages of a batch in one shared transaction; one message, or a batch that failed,
        each in its own."""
        if len(decoded) > 1 and await self._handle_together(decoded, handler):
            return
        # One message, or a batch that failed (rolled back): each on its own, in order.
        for delivery, message in decoded:
            with consuming(delivery.headers, delivery.topic):
                await self._handle(delivery, message, handler)

    async def _handle_together(self, decoded: list[tuple[_Delivery, Any]], handler: Handler) -> bool:
        """Run every handler in one shared transaction and commit it. False if any failed (then
        nothing of the batch took effect)."""
        started = time.perf_counter()
        shared = batch_tx.SharedTransaction()
        shared.message_ids = [message.message_id for _, message in decoded]
        token = batch_tx.enter(shared)
        failing: Any = None  # the message whose handler raised; None for the commit
        try:
            for delivery, message in decoded:
                bind_correlation_id(message.correlation_id or delivery.headers.get("correlation_id"))
                structlog.contextvars.bind_contextvars(
                    message_id=message.message_id, message_type=message.type
                )
                # Each message continues its own trace (the middleware's span covers the batch).
                failing = message
                with consuming(delivery.headers, delivery.topic):
                    await handler(message)
            failing = None
            await shared.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            topic = decoded[0][0].topic
            log.warning(
                "bus.batch.fallback",
                topic=topic,
                messages=len(decoded),
                failed_message_id=failing.message_id if failing is not None else None,
                error=describe_error(exc),
            )
            metrics.BATCH_FALLBACKS.labels(self.service, topic).inc()
            return False
        finally:
            batch_tx.leave(token)
            await shared.close()
            structlog.contextvars.unbind_contextvars("message_id", "message_type")
        share = (time.perf_counter() - started) / len(decoded)
        for delivery, message in decoded:
            metrics.HANDLED.labels(self.service, delivery.topic, message.type, "ok").inc()
            metrics.HANDLE_SECONDS.labels(self.service, delivery.topic).observe(share)
        return True

    async def _handle(self, delivery: _Delivery, message: Any, handler: Handler) -> None:
        """Run `handler` in its own transaction(s), with retries, then the dead-letter topic."""
        topic = delivery.topic
        started = time.perf_counter()
        bind_correlation_id(message.correlation_id or delivery.headers.get("correlation_id"))
        structlog.contextvars.bind_contextvars(message_id=message.message_id, message_type=message.type)
        try:
            for attempt in range(1, self.settings.bus_max_attempts + 1):
                try:
                    await handler(message)
                except asyncio.CancelledError:
                    raise
                except MessageTooLarge as exc:
                    # What the handler wants to publish will be just as big next time: no retries.
                    await self._dead_letter(delivery, exc, attempts=attempt, reason="too-large")
                    return
                except Exception as exc:
                    if attempt == self.settings.bus_max_attempts:
                        await self._dead_letter(delivery, exc, attempts=attempt, reason="handler-failed")
                        return
                    delay = self.settings.bus_retry_backoff_ms / 1000 * 2 ** (attempt - 1)
                    log.warning(
                        "bus.handler.retry",
                        topic=topic,
                        attempt=attempt,
                        delay_s=delay,
                        error=describe_error(exc),
                    )
                    await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
                else:
                    metrics.HANDLED.labels(self.service, topic, message.type, "ok").inc()
                    return
        finally:
            metrics.HANDLE_SECONDS.labels(self.service, topic).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("message_id", "message_type")

    async def _unroutable(self, delivery: _Delivery, exc: Unroutable) -> None:
        topic = delivery.topic
        if topic.endswith(DEAD_LETTER_SUFFIX):
            # Never dead-letter a dead letter: it is already where an operator looks, and the
            # service that put it there logged and counted it (a poison command reaches the
            # gateway's dead-letter reader this way: expected, hence info).
            record = delivery.record
            log.info(
                "bus.dead_letter.unreadable",
                topic=topic,
                partition=record.partition,
                offset=record.offset,
                reason=exc.reason,
                error=exc.detail,
            )
            metrics.HANDLED.labels(self.service, topic, "?", "unreadable").inc()
            return
        await self._dead_letter(delivery, exc, attempts=0, reason=exc.reason)

    async def _dead_letter(
        self, delivery: _Delivery, exc: BaseException, *, attempts: int, reason: str
    ) -> None:
        topic, record, raw, headers = delivery.topic, delivery.record, delivery.raw, delivery.headers
        log.error(
            "bus.message.dead_lettered",
            topic=topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
            attempts=attempts,
            error=describe_error(exc)[:500],
        )
        kept = {k: v for k, v in headers.items() if not k.startswith("x-")}
        if sum(len(k) + len(v) for k, v in kept.items()) > _MAX_KEPT_HEADER_BYTES:
            # A poison message's huge headers would not fit next to ours: keep the bus's own, bounded.
            kept = {k: v[:200] for k, v in kept.items() if k in _BUS_HEADERS}
            kept["x-headers-dropped"] = "true"
        dlq_headers = kept | {
            "x-reason": reason,
            "x-error": describe_error(exc)[:2000],
            "x-error-trace": error_trace(exc)[-4000:],
            "x-original-topic": topic,
            "x-original-partition": str(record.partition),
            "x-original-offset": str(record.offset),
            "x-attempts": str(attempts),
            "x-failed-by": self.service,
        }
        # Publishing directly (not via the outbox): the offset is committed only after this returns.
        try:
            await self.publish_now(dead_letter(topic), raw, key=record.key, headers=dlq_headers)
        except PERMANENT_PUBLISH_ERRORS:
            # A record already at the broker's limit has no room for our headers: keep the origin
            # and the reason, and if even that is too big, the head of the body, so the partition
            # still moves on (the full record stays readable at its original offset until retention).
            essential = {k: v for k, v in dlq_headers.items() if k in _ESSENTIAL_DLQ_HEADERS}
            essential["x-error"] = essential["x-error"][:300]
            try:
                await self.publish_now(dead_letter(topic), raw, key=record.key, headers=essential)
            except PERMANENT_PUBLISH_ERRORS:
                head = raw[: self.settings.bus_max_message_bytes // 2]
                essential["x-body-truncated"] = f"{len(head)} of {len(raw)} bytes"
                await self.publish_now(dead_letter(topic), head, key=record.key, headers=essential)
        metrics.DEAD_LETTERED.labels(self.service, topic, reason).inc()
        metrics.HANDLED.labels(self.service, topic, headers.get("type", "?")[:100], "dead_lettered").inc()

    # ---- retention ---------------------------------------------------------------------------

    async def prune_inbox(self, cutoff: datetime, *, batch: int = INBOX_PRUNE_BATCH) -> int:
        """Delete inbox rows processed before `cutoff`, one short transaction per batch."""
        if self._inbox is None:
            return 0
        pruned = 0
        while True:
            async with self._engine.begin() as connection:
                deleted = await inbox.prune_batch(connection, self._inbox, cutoff, batch)
            pruned += deleted
            if deleted < batch:
                break
        if pruned:
            metrics.PRUNED.labels(self.service, self._inbox.name).inc(pruned)
        log.info("bus.inbox.pruned", rows=pruned, cutoff=cutoff.isoformat())
        return pruned

    async def _prune_expired_inbox(self) -> None:
        retention = timedelta(hours=self.settings.bus_inbox_retention_hours)
        await self.prune_inbox(datetime.now(UTC) - retention)

    @property
    def inbox_retention_running(self) -> bool:
        return self._inbox_retention is not None and self._inbox_retention.running

    # ---- lifecycle ---------------------------------------------------------------------------

    async def ensure_topics(self, names: list[str]) -> None:
        """Create topics (with their dead-letter topics) if missing, so consumers and producers
        never race topic auto-creation. Production clusters may pre-create them instead."""
        full = [self.settings.topic(n) for n in names]
        full += [dead_letter(t) for t in full]
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(self.settings))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in full if t not in existing]
            if missing:
                # Another replica may win the race to create them.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                t,
                                self.settings.kafka_topic_partitions,
                                self.settings.kafka_replication_factor,
                            )
                            for t in missing
                        ]
                    )
        finally:
            await admin.close()

    async def check_broker_limit(self, topics: list[str] | None = None) -> int | None:
        """The smallest record size the broker (and `topics`) accept, checked against ours.

        Reads `message.max.bytes` of every broker and `max.message.bytes` of each topic (Kafka
        DescribeConfigs). Raises `RuntimeError` when BUS_MAX_MESSAGE_BYTES plus a dead letter's
        headroom exceeds it: messages we accept would be refused by the broker for ever. None
        when the broker reports no limit (the embedded Tansu broker reports no configs).
        """
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(self.settings))
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            resources = [
                ConfigResource(ConfigResourceType.BROKER, str(b["node_id"])) for b in cluster["brokers"]
            ]
            resources += [
                ConfigResource(ConfigResourceType.TOPIC, self.settings.topic(t)) for t in topics or ()
            ]
            limits: list[int] = []
            for resource in resources:
                responses = await admin.describe_configs([resource])
                for response in responses:
                    for *_, entries in response.resources:
                        for name, value, *_ in entries:
                            if name in {"message.max.bytes", "max.message.bytes"} and value:
                                limits.append(int(value))
        finally:
            await admin.close()
        broker_limit = min(limits) if limits else None
        needed = self.settings.bus_max_message_bytes + DEAD_LETTER_HEADROOM_BYTES
        if broker_limit is None:
            log.info("bus.broker_limit.unknown", our_limit=self.settings.bus_max_message_bytes)
        elif needed > broker_limit:
            raise RuntimeError(
                f"BUS_MAX_MESSAGE_BYTES={self.settings.bus_max_message_bytes} (+{DEAD_LETTER_HEADROOM_BYTES} "
                f"for dead-letter headers) exceeds the broker's limit of {broker_limit} bytes "
                "(message.max.bytes / max.message.bytes): lower it or raise the broker's"
            )
        else:
            log.info(
                "bus.broker_limit.ok",
                broker_limit=broker_limit,
                our_limit=self.settings.bus_max_message_bytes,
            )
        return broker_limit

    async def start(self, topics: list[str] | None = None) -> None:
        if topics:
            await self.ensure_topics(topics)
        await self.check_broker_limit(topics)
        await self.kafka.start()
        self._claim_gate.reset()  # a restarted relay's first claim runs (rows queued while stopped)
        await self.outbox.start()
        if self._inbox_retention is not None:
            self._inbox_retention.start()
        self._outbox_age.start()

    async def stop(self) -> None:
        await self._outbox_age.stop()
        if self._inbox_retention is not None:
            await self._inbox_retention.stop()  # a prune cut short just leaves rows for next time
        # Stop intake first; in-flight handlers finish and commit offsets (graceful_timeout).
        await self.kafka.stop()
        await self.outbox.stop()

    async def ping(self) -> bool:
        try:
            return bool(await self.kafka.ping(timeout=2.0))
        except Exception:
            return False


UnknownTypes = Literal["skip", "dead_letter"]
"""What a subscription does with a well-formed message whose `type` its schema does not know.

`skip` (events topics): many services read one events topic, each for a few types, and a newer
producer must not break an older reader. `dead_letter` (commands topics): a commands topic has one
reader that must know every command; an unknown one cannot be routed and would otherwise leave its
sender waiting for ever, so it goes to `<topic>.dlq` (replay it once the reader knows the type).
"""


def default_unknown_types(topic: str) -> UnknownTypes:
    """`dead_letter` for a `*.commands` topic, `skip` for any other (events, dead-letter topics)."""
    return "dead_letter" if topic.endswith(".commands") else "skip"


class Unroutable(Exception):
    """A message that cannot be decoded or routed; `reason` is the short code in `x-reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class _Route:
    adapter: TypeAdapter[Any]
    known_types: set[str]
    unknown_types: UnknownTypes

    def decode(self, raw: bytes) -> Any:
        """The message `raw` holds, or `Unroutable` saying why not."""
        if not raw:
            raise Unroutable("empty", "the record has no value (empty or a tombstone)")
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise Unroutable("not-utf8", str(exc)[:500]) from None
        except ValueError as exc:  # json.JSONDecodeError, and the recursion limits of deep nesting
            raise Unroutable("not-json", str(exc)[:500]) from None
        except RecursionError:
            raise Unroutable("not-json", "nested too deeply") from None
        if not isinstance(value, dict):
            raise Unroutable("not-an-object", f"the JSON is a {type(value).__name__}, not an object")
        if "type" not in value:
            raise Unroutable("type-missing", "the object has no `type`")
        msg_type = value["type"]
        if not isinstance(msg_type, str):
            raise Unroutable("type-invalid", f"`type` is a {type(msg_type).__name__}, not a string")
        if msg_type not in self.known_types:
            raise Unroutable("type-unknown", msg_type[:200])
        try:
            return self.adapter.validate_json(raw)
        except ValidationError as exc:
            # Which fields and why, never their values (a customer's e-mail, a token).
            raise Unroutable("schema-invalid", describe_error(exc)[:2000]) from None


def _readable_headers(record: Any) -> Any:
    """The record with headers FastStream can read: not UTF-8 → replaced, no value → empty."""
    headers = [
        (str(k), (v or b"").decode("utf-8", errors="replace").encode()) for k, v in (record.headers or ())
    ]
    return dataclasses.replace(record, headers=headers)


async def _tolerant_parser(record: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    return await original(_readable_headers(record))


async def _tolerant_batch_parser(records: tuple[Any, ...], original: Callable[[Any], Awaitable[Any]]) -> Any:
    return await original(tuple(_readable_headers(record) for record in records))


@dataclasses.dataclass(frozen=True, slots=True)
class _Delivery:
    """One consumed record: the aiokafka ConsumerRecord, its value (b"" for none) and headers."""

    record: Any
    raw: bytes
    headers: dict[str, str]

    @property
    def topic(self) -> str:
        return str(self.record.topic)

    @classmethod
    def of_message(cls, msg: KafkaMessage) -> _Delivery:
        headers = {k: str(v) for k, v in (msg.headers or {}).items()}
        return cls(msg.raw_message, msg.body or b"", headers)

    @classmethod
    def of_record(cls, record: Any) -> _Delivery:
        """`record` as `_tolerant_batch_parser` left it (headers UTF-8)."""
        return cls(record, record.value or b"", {k: v.decode() for k, v in record.headers})


async def _raw_body(msg: Any) -> Any:
    return msg.body


def _literal_types(adapter: TypeAdapter[Any]) -> set[str]:
    schema = adapter.json_schema()
    models = schema.get("$defs", {}).values() if "$defs" in schema else [schema]
    out = set()
    for model in models:
        const = model.get("properties", {}).get("type", {}).get("const")
        if const:
            out.add(const)
    return out


__all__ = ["Bus", "current_correlation_id", "message_headers"]
