"""The bus runtime: Kafka in and out, a transactional outbox relay, bounded retries, dead letters.

Delivery is at-least-once end to end:
- producers write messages to the outbox table in the same transaction as their state change;
  a relay publishes committed rows to Kafka (acks=all) and deletes them only after the broker acked;
- consumers commit their Kafka offset only after the handler's transaction committed
  (FastStream's Kafka default, ACK_FIRST, is at-most-once and is never used here);
- handlers deduplicate on the message id with the inbox table, so a redelivery has no second effect;
  inbox rows older than BUS_INBOX_RETENTION_HOURS (longer than Kafka keeps a message) are pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream_outbox import ExponentialRetry, OutboxBroker, OutboxMessage
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bus import inbox, metrics
from bus.context import bind_correlation_id, current_correlation_id
from bus.periodic import Periodic
from bus.settings import BusSettings
from bus.tracing import TRACE_HEADERS, attached, current_trace_headers
from contracts.base import Message
from contracts.topics import dead_letter

log = structlog.get_logger("bus")

Handler = Callable[[Any], Awaitable[None]]

_RELAY_QUEUE = "kafka-relay"
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
        self._inbox = inbox_table
        self._inbox_retention: Periodic | None = None
        if inbox_table is not None and settings.bus_inbox_retention_hours > 0:
            self._inbox_retention = Periodic(
                "bus.inbox_retention", settings.bus_retention_interval_s, self._prune_expired_inbox
            )
        self.kafka = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=service,
            acks="all",
            enable_idempotence=settings.kafka_enable_idempotence,
            graceful_timeout=15.0,
            logger=None,
            # Spans for every publish and consume, linked through Kafka headers (W3C traceparent).
            middlewares=[KafkaTelemetryMiddleware()],
        )
        self.outbox = OutboxBroker(engine, outbox_table=outbox_table, graceful_timeout=15.0, logger=None)
        self._register_relay()

    # ---- producing ---------------------------------------------------------------------------

    async def publish_later(
        self, session: AsyncSession, topic: str, message: Message, *, key: str | None = None
    ) -> None:
        """Queue `message` for `topic` in the caller's transaction; it is sent once that commits."""
        headers = (
            message_headers(message) | current_trace_headers() | {_TOPIC_HEADER: self.settings.topic(topic)}
        )
        if key is not None:
            headers[_KEY_HEADER] = key
        await self.outbox.publish(
            message.model_dump_json().encode(),
            queue=_RELAY_QUEUE,
            session=session,
            headers=headers,
            correlation_id=message.correlation_id,
        )

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
        @self.outbox.subscriber(
            _RELAY_QUEUE,
            max_workers=1,  # one worker keeps per-key order as written
            fetch_batch_size=50,
            min_fetch_interval=0.05,
            max_fetch_interval=1.0,
            retry_strategy=ExponentialRetry(
                initial_delay_seconds=0.2, max_delay_seconds=10.0, max_attempts=None
            ),
        )
        async def relay(body: Any, message: OutboxMessage = Context("message")) -> None:
            headers = {k: str(v) for k, v in (message.headers or {}).items()}
            topic = headers.pop(_TOPIC_HEADER)
            key = headers.pop(_KEY_HEADER, None)
            trace_headers = {k: v for k, v in headers.items() if k in TRACE_HEADERS}
            headers = {
                k: v
                for k, v in headers.items()
                if k in {"message_id", "type", "version", "correlation_id", "causation_id"}
            }
            with attached(trace_headers):  # continue the trace of the transaction that wrote the row
                await self.publish_now(
                    topic, bytes(message.body), key=key.encode() if key else None, headers=headers
                )
            metrics.RELAYED.labels(self.service, topic).inc()

    # ---- consuming ---------------------------------------------------------------------------

    def subscribe(
        self,
        topic: str,
        schema: Any,
        handler: Handler,
        *,
        group_id: str | None = "",
        from_latest: bool = False,
    ) -> None:
        """Handle every message of `topic` whose `type` is in `schema` (a discriminated union).

        `group_id=""` means the service's consumer group; `None` means no group (every replica
        sees every message, e.g. for request/reply). Unknown message types are skipped so newer
        producers never break older consumers. A handler failure is retried with backoff
        `BUS_MAX_ATTEMPTS` times, then the message goes to `<topic>.dlq` with the error.
        """
        self.subscribe_many({topic: schema}, handler, group_id=group_id, from_latest=from_latest)

    def subscribe_many(
        self,
        schemas: dict[str, Any],
        handler: Handler,
        *,
        group_id: str | None = "",
        from_latest: bool = False,
    ) -> None:
        """Like `subscribe`, for several topics served by ONE consumer (each with its schema).

        Each consumer polls the broker on its own, so a service that listens to many topics
        with the same handler should use one consumer for them.
        """
        adapters: dict[str, tuple[TypeAdapter[Any], set[str]]] = {}
        for topic, schema in schemas.items():
            adapter: TypeAdapter[Any] = TypeAdapter(schema)
            adapters[self.settings.topic(topic)] = (adapter, _literal_types(adapter))
        subscriber = self.kafka.subscriber(
            *adapters,
            group_id=self.service if group_id == "" else group_id,
            auto_offset_reset="latest" if from_latest else "earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            no_reply=True,
        )

        @subscriber
        async def consume(body: Any, msg: KafkaMessage) -> None:
            record: Any = msg.raw_message
            adapter, known_types = adapters[record.topic]
            await self._consume(record.topic, msg, adapter, known_types, handler)

    async def _consume(
        self,
        topic: str,
        msg: KafkaMessage,
        adapter: TypeAdapter[Any],
        known_types: set[str],
        handler: Handler,
    ) -> None:
        raw: bytes = msg.body
        headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in (msg.headers or {}).items()}
        bind_correlation_id(headers.get("correlation_id"))
        msg_type = headers.get("type") or _peek_type(raw)
        if msg_type not in known_types:
            log.debug("bus.message.skipped", topic=topic, type=msg_type)
            return
        started = time.perf_counter()
        try:
            message = adapter.validate_json(raw)
        except ValidationError as exc:
            await self._dead_letter(topic, msg, raw, headers, exc, attempts=0)
            return
        bind_correlation_id(message.correlation_id or headers.get("correlation_id"))
        structlog.contextvars.bind_contextvars(message_id=message.message_id, message_type=message.type)
        try:
            for attempt in range(1, self.settings.bus_max_attempts + 1):
                try:
                    await handler(message)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if attempt == self.settings.bus_max_attempts:
                        await self._dead_letter(topic, msg, raw, headers, exc, attempts=attempt)
                        return
                    delay = self.settings.bus_retry_backoff_ms / 1000 * 2 ** (attempt - 1)
                    log.warning(
                        "bus.handler.retry", topic=topic, attempt=attempt, delay_s=delay, error=repr(exc)
                    )
                    await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
                else:
                    metrics.HANDLED.labels(self.service, topic, message.type, "ok").inc()
                    return
        finally:
            metrics.HANDLE_SECONDS.labels(self.service, topic).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("message_id", "message_type")

    async def _dead_letter(
        self,
        topic: str,
        msg: KafkaMessage,
        raw: bytes,
        headers: dict[str, str],
        exc: BaseException,
        *,
        attempts: int,
    ) -> None:
        record: Any = msg.raw_message  # a ConsumerRecord: subscribers here are never batch
        log.error("bus.message.dead_lettered", topic=topic, attempts=attempts, error=repr(exc))
        dlq_headers = headers | {
            "x-error": repr(exc)[:2000],
            "x-error-trace": "".join(traceback.format_exception(exc))[-4000:],
            "x-original-topic": topic,
            "x-original-partition": str(record.partition),
            "x-original-offset": str(record.offset),
            "x-attempts": str(attempts),
            "x-failed-by": self.service,
        }
        # Publishing directly (not via the outbox): the offset is committed only after this returns.
        await self.publish_now(dead_letter(topic), raw, key=record.key, headers=dlq_headers)
        metrics.DEAD_LETTERED.labels(self.service, topic).inc()
        metrics.HANDLED.labels(self.service, topic, headers.get("type", "?"), "dead_lettered").inc()

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
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers)
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

    async def start(self, topics: list[str] | None = None) -> None:
        if topics:
            await self.ensure_topics(topics)
        await self.kafka.start()
        await self.outbox.start()
        if self._inbox_retention is not None:
            self._inbox_retention.start()

    async def stop(self) -> None:
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


def _peek_type(raw: bytes) -> str | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value.get("type") if isinstance(value, dict) else None


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
