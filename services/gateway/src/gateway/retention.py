"""Retention: the gateway's rows past their use are deleted in the background (`bootstrap`'s
periodic task, every BUS_RETENTION_INTERVAL_S), one short transaction per batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog

from bus import metrics
from gateway.settings import Settings
from gateway.uow import UnitOfWork

log = structlog.get_logger("gateway")

# Rows deleted per transaction by retention: short transactions on tables requests write to.
PRUNE_BATCH = 500
# Uploads hold up to KB_MAX_UPLOAD_BYTES each: fewer per transaction.
UPLOAD_PRUNE_BATCH = 20
# An upload URL's expiry is computed just after its row is written and replicas' clocks differ:
# an upload is kept this much longer than its URL lives.
UPLOAD_URL_SLACK = timedelta(minutes=10)


class Retention:
    """What the gateway deletes and when: the settings' retention windows over the unit of work."""

    def __init__(self, settings: Settings, uow: Callable[[], UnitOfWork]) -> None:
        self.settings = settings
        self.uow = uow

    async def prune_expired(self, now: datetime | None = None) -> dict[str, int]:
        """Delete rows past their use, one short transaction per batch; rows deleted per table.

        - idempotency keys whose replay window (GATEWAY_IDEMPOTENCY_RETENTION_HOURS) is over: the
          middleware already treats them as new requests;
        - uploads older than GATEWAY_UPLOAD_RETENTION_HOURS and than the life of their signed URL
          (the only way to fetch one, so none an in-flight command can still use goes early);
        - finished operations older than GATEWAY_OPERATION_RETENTION_HOURS; pending ones stay;
        - campaign changes (the live progress log) older than GATEWAY_CHANGE_RETENTION_HOURS: a
          stream resuming from before then has missed what was pruned;
        - finished webhook deliveries (and their attempts) unchanged for
          GATEWAY_WEBHOOK_DELIVERY_RETENTION_HOURS; pending ones stay.
        """
        now = now or datetime.now(UTC)
        settings = self.settings
        idempotency_cutoff = now - settings.idempotency_window
        pruned = {
            "idempotency_keys": await self._prune_in_batches(
                lambda uow, n: uow.idempotency.prune(idempotency_cutoff, n), PRUNE_BATCH
            )
        }
        if settings.upload_retention_hours:
            keep = max(
                timedelta(hours=settings.upload_retention_hours),
                timedelta(seconds=settings.upload_url_ttl_s) + UPLOAD_URL_SLACK,
            )
            pruned["uploads"] = await self._prune_in_batches(
                lambda uow, n: uow.uploads.prune(now - keep, n), UPLOAD_PRUNE_BATCH
            )
        if settings.operation_retention_hours:
            finished_cutoff = now - timedelta(hours=settings.operation_retention_hours)
            pruned["operations"] = await self._prune_in_batches(
                lambda uow, n: uow.operations.prune_finished(finished_cutoff, n), PRUNE_BATCH
            )
        if settings.change_retention_hours:
            changes_cutoff = now - timedelta(hours=settings.change_retention_hours)
            pruned["campaign_changes"] = await self._prune_in_batches(
                lambda uow, n: uow.changes.prune(changes_cutoff, n), PRUNE_BATCH
            )
        if settings.webhook_delivery_retention_hours:
            deliveries_cutoff = now - timedelta(hours=settings.webhook_delivery_retention_hours)
            pruned["webhook_deliveries"] = await self._prune_in_batches(
                lambda uow, n: uow.webhook_deliveries.prune_finished(deliveries_cutoff, n), PRUNE_BATCH
            )
        for table, rows in pruned.items():
            if rows:
                metrics.PRUNED.labels("gateway", table).inc(rows)
        log.info("gateway.retention.pruned", **pruned)
        return pruned

    async def _prune_in_batches(self, batch: Callable[[UnitOfWork, int], Awaitable[int]], size: int) -> int:
        total = 0
        while True:
            async with self.uow() as uow:
                deleted = await batch(uow, size)
            total += deleted
            if deleted < size:
                return total
