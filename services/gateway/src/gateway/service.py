"""What every gateway use case builds on: writes become commands answered from their outcome
(`execute`), reads come from the read models (typed by model). `gateway.projection` keeps those read
models up to date from events. The use cases live per resource: `gateway.agents`, `calls`, `batch`,
`batch_jobs`, `knowledge_base`, `phone_numbers`, `email_templates`, `sessions`, `webhooks`; API keys
in `gateway.auth`, retention in `gateway.retention`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog

from bus.context import current_correlation_id
from contracts import topics
from contracts.base import Command
from gateway import domain
from gateway.domain import Outcome
from gateway.errors import Conflict, NotFound
from gateway.idempotency import command_id_for_request
from gateway.models import (
    CallAnalysis,
    CampaignChange,
    WebhookDelivery,
    WebhookDeliveryAttempt,
)
from gateway.repository import R, RecipientResult
from gateway.settings import Settings
from gateway.uow import UnitOfWork
from gateway.waiter import OperationWaiter

log = structlog.get_logger("gateway")


class Accepted(Outcome):
    """The deadline passed before the outcome: the caller polls the operation."""


class GatewayService:
    def __init__(self, settings: Settings, uow: Callable[[], UnitOfWork], waiter: OperationWaiter) -> None:
        self.settings = settings
        self.uow = uow
        self.waiter = waiter

    # ---- writes ------------------------------------------------------------------------------

    async def execute(
        self,
        command: Command,
        *,
        key: str | None = None,
        topic: str = topics.PROVISIONING_COMMANDS,
        followers: Sequence[Command] = (),
        stage: Callable[[UnitOfWork, Command], Awaitable[Command | None]] | None = None,
    ) -> Outcome:
        """Publish `command` (with its pending operation, atomically) and answer with its outcome.

        Under an Idempotency-Key the command id is derived from the key, so a retry after a crash
        finds the same operation and never publishes a second, different command. `followers` are
        published after it in the same transaction (e.g. a campaign's further recipient chunks);
        `stage(uow, command)` writes whatever else must commit with the command (it may publish
        followers itself, caused by `command`: `update_for_follower`) and may return the command's
        final version (same id), which replaces it in the outbox, still ahead of its followers.
        Nothing is written when `stage` raises.
        """
        update: dict[str, Any] = {"correlation_id": current_correlation_id()}
        if (derived := command_id_for_request.get()) is not None:
            update["message_id"] = derived
        command = command.model_copy(update=update)
        op_id = command.message_id
        self.waiter.register(op_id)
        try:
            async with self.uow() as uow:
                if await uow.operations.add_pending_once(op_id, command.type):
                    queued = await uow.publish_replaceable(command, key or op_id, topic=topic)
                    for follower in followers:
                        await uow.publish(
                            follower.model_copy(update=update_for_follower(command)), key, topic=topic
                        )
                    if stage is not None and (final := await stage(uow, command)) is not None:
                        final = final.model_copy(update=update | {"message_id": op_id})
                        await uow.replace_queued(queued, final, key or op_id, topic=topic)
            deadline = time.monotonic() + self.settings.reply_timeout_s
            while True:
                remaining = deadline - time.monotonic()
                await self.waiter.wait(op_id, max(0.0, min(self.waiter.poll_interval, remaining)))
                outcome = await self.operation_outcome(op_id)
                if outcome is not None:
                    return outcome
                if time.monotonic() >= deadline:
                    return self._accepted(op_id)
        finally:
            self.waiter.forget(op_id)

    def _accepted(self, op_id: str) -> Outcome:
        return Accepted(
            202,
            {
                "success": True,
                "message": "Accepted; the operation is still running",
                "operation_id": op_id,
                "status": "pending",
                "status_url": f"/api/v1/operations/{op_id}",
            },
        )

    async def operation_outcome(self, op_id: str) -> Outcome | None:
        async with self.uow() as uow:
            op = await uow.operations.get(op_id)
        if op is None or op.status == "pending" or op.status_code is None or op.response is None:
            return None
        return Outcome(op.status_code, op.response)

    async def operation(self, op_id: str) -> dict[str, Any]:
        async with self.uow() as uow:
            op = await uow.operations.get(op_id)
            if op is None:
                raise NotFound(f"Operation not found: {op_id}")
            return {
                "operation_id": op.operation_id,
                "type": op.command_type,
                "status": op.status,
                "status_code": op.status_code,
                "result": op.response,
            }

    # ---- reads -------------------------------------------------------------------------------

    async def get(self, model: type[R], resource_id: str, not_found: str) -> R:
        """The live row of `model` with this id; NotFound (404, `not_found: id`) when there is none."""
        async with self.uow() as uow:
            row = await uow.read_models.get(model, resource_id)
        if row is None:
            raise NotFound(f"{not_found}: {resource_id}")
        return row

    async def transcript(self, conversation_id: str) -> list[dict[str, Any]] | None:
        """The call's turns `[{role, message, time_in_call_secs}]` once all parts arrived, else None."""
        async with self.uow() as uow:
            text = await uow.transcripts.text(conversation_id)
        if text is None:
            return None
        # Off the event loop: a transcript can be megabytes.
        turns: list[dict[str, Any]] = await asyncio.to_thread(json.loads, text)
        return turns

    async def page(
        self, model: type[R], cursor: str | None, page_size: int, filters: dict[str, Any] | None = None
    ) -> tuple[list[R], str | None]:
        """A page of `model`'s live rows, newest first (`ReadModels.page`), and the next page's cursor."""
        after = domain.decode_cursor(cursor)
        async with self.uow() as uow:
            rows, has_more = await uow.read_models.page(
                model, after_position=after, page_size=page_size, filters=filters
            )
        return rows, domain.encode_cursor(rows[-1].position) if has_more and rows else None

    async def find(self, model: type[R], resource_id: str) -> R | None:
        async with self.uow() as uow:
            return await uow.read_models.get(model, resource_id)

    async def active_campaigns_using(
        self, *, agent_id: str | None = None, phone_number_id: str | None = None
    ) -> list[str]:
        """Campaigns not yet final that use the agent or the number (`ReadModels.active_campaigns_using`)."""
        async with self.uow() as uow:
            return await uow.read_models.active_campaigns_using(
                agent_id=agent_id, phone_number_id=phone_number_id
            )

    async def exists(self, model: type[R], resource_id: str) -> bool:
        return await self.find(model, resource_id) is not None

    async def results_page(
        self,
        campaign_id: str,
        cursor: str | None,
        page_size: int,
        status: Sequence[str] | None,
        outcome: Sequence[str] | None,
        search: str | None = None,
        recipient_id: str | None = None,
    ) -> tuple[list[RecipientResult], str | None]:
        """A page of a campaign's per-recipient results (`Results.page`) and the next page's cursor."""
        after = domain.decode_cursor(cursor)
        async with self.uow() as uow:
            rows, has_more = await uow.results.page(
                campaign_id,
                after_position=after,
                page_size=page_size,
                status=status,
                outcome=outcome,
                search=search,
                recipient_id=recipient_id,
            )
        next_cursor = rows[-1].recipient.position if has_more and rows else None
        return rows, domain.encode_cursor(next_cursor) if next_cursor is not None else None

    async def all_results(
        self,
        campaign_id: str,
        status: Sequence[str] | None,
        outcome: Sequence[str] | None,
        page_size: int = 1000,
    ) -> AsyncIterator[list[RecipientResult]]:
        """Every recipient's results, a page at a time, each page read in a short transaction of its
        own (no transaction or connection held while the client reads)."""
        after: int | None = None
        while True:
            async with self.uow() as uow:
                rows, has_more = await uow.results.page(
                    campaign_id, after_position=after, page_size=page_size, status=status, outcome=outcome
                )
            if rows:
                yield rows
            if not has_more or not rows:
                return
            after = rows[-1].recipient.position

    async def changes_after(
        self, change_id: int, campaign_id: str | None, limit: int = 500
    ) -> list[CampaignChange]:
        """The campaign changes after `change_id` (of one campaign, or all), oldest first."""
        async with self.uow() as uow:
            return await uow.changes.after(change_id, campaign_id, limit)

    async def last_change_id(self) -> int:
        async with self.uow() as uow:
            return await uow.changes.last_id()

    async def highest_change_id_taken(self) -> int:
        """The highest change id ever handed out (`Changes.highest_id_taken`): a stream resuming
        after a larger one would wait for ever."""
        async with self.uow() as uow:
            return await uow.changes.highest_id_taken()

    async def status_counts(self, campaign_id: str) -> dict[str, int]:
        """{recipient status: count} of one campaign (`Results.status_counts`)."""
        async with self.uow() as uow:
            return await uow.results.status_counts(campaign_id)

    async def result_columns(self, campaign_id: str) -> tuple[list[str], list[str]]:
        """(data collection ids, dynamic variable names) of a campaign's export, each sorted."""
        async with self.uow() as uow:
            return (
                await uow.results.data_collection_keys(campaign_id),
                await uow.results.dynamic_variable_keys(campaign_id),
            )

    async def analysis(self, conversation_id: str) -> CallAnalysis | None:
        async with self.uow() as uow:
            return await uow.analyses.get(conversation_id)

    async def webhook_deliveries(
        self, webhook_id: str, cursor: str | None, page_size: int, status: str | None
    ) -> tuple[list[tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]], str | None]:
        """A webhook's deliveries, newest first, each with every attempt."""
        after = domain.decode_cursor(cursor)
        async with self.uow() as uow:
            rows, has_more = await uow.webhook_deliveries.page(
                webhook_id, after_position=after, page_size=page_size, status=status
            )
            attempts = await uow.webhook_deliveries.attempts([r.delivery_id for r in rows])
        next_cursor = domain.encode_cursor(rows[-1].position) if has_more and rows else None
        return [(r, attempts[r.delivery_id]) for r in rows], next_cursor

    async def webhook_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        async with self.uow() as uow:
            return await uow.webhook_deliveries.get(delivery_id)

    async def missing_ids(self, model: type[R], ids: list[str]) -> list[str]:
        if not ids:
            return []
        async with self.uow() as uow:
            found = await uow.read_models.existing_ids(model, ids)
        return [i for i in ids if i not in found]


def update_for_follower(command: Command) -> dict[str, Any]:
    """Followers share the leading command's correlation and are caused by it."""
    return {"correlation_id": command.correlation_id, "causation_id": command.message_id}


async def refuse_if_in_use(
    service: GatewayService, what: str, *, agent_id: str | None = None, phone_number_id: str | None = None
) -> None:
    """Conflict (409) naming the campaigns not yet final that use the agent or number: deleting it
    under them failed every recipient left ("404 Not found") and the campaign still read as
    completed. The read model may lag a submission by a moment; campaigns then fail those
    recipients with the upstream's reason, as before."""
    using = await service.active_campaigns_using(agent_id=agent_id, phone_number_id=phone_number_id)
    if using:
        raise Conflict(
            f"The {what} is used by an active campaign",
            f"Campaigns not finished use this {what}: {', '.join(using)}. Cancel them "
            f"(POST /api/v1/batch-calling/{{job_id}}/cancel) or let them finish, then delete it",
        )
