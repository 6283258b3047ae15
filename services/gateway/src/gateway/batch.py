"""Batch calling intake (api-v1.md 10.1; beyond it: spreadsheets and `/batch-calling/validate`).

Recipients come as a stream (JSON items, or rows of a spreadsheet read from its spooled upload),
are checked by `intake.Intake` in a worker thread one chunk ahead of the database work, and matched
against the do-not-call list chunk by chunk. A submission is written in the request's one
transaction: its `campaign.submit` command is queued first (so it is relayed first and answered
fast), each further chunk follows as `campaign.add_recipients` as soon as it is checked, and the
submit is completed with the first chunk and the chunk count once the last row has been read. Any
problem anywhere rolls all of it back: a submission is created whole or not at all, and never more
than a chunk of recipients is in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from bus.limits import HEADERS_ALLOWANCE_BYTES, RECORD_OVERHEAD_BYTES
from contracts import topics
from contracts.base import Command
from contracts.campaigns import (
    AddCampaignRecipients,
    AnalysisRule,
    CallingWindow,
    CampaignRecipient,
    RetryDelays,
    SubmitCampaign,
)
from contracts.quiet_hours import RULES_FILE, load_rules
from elevenlabs_client import dynamic_variables as variables
from gateway import domain
from gateway.domain import Outcome
from gateway.errors import ApiError, PayloadTooLarge, Unprocessable
from gateway.intake import (
    ESTIMATE_ASSUMES,
    Accepted,
    AgentNeeds,
    Callability,
    GroupKey,
    Intake,
    RecipientTooLarge,
    estimate,
)
from gateway.models import Agent, PhoneNumber, Tool
from gateway.numbers import NumberReader
from gateway.schemas import BatchOptions
from gateway.service import GatewayService, update_for_follower
from gateway.spreadsheets import Entry, SheetError
from gateway.uow import UnitOfWork

log = structlog.get_logger("gateway.batch")


@dataclass
class Submission:
    """What a request gave: the options, its recipients as a lazy stream, where they came from."""

    options: BatchOptions
    entries: Iterator[Entry]
    source: Literal["json", "file"]
    blank_rows: Callable[[], int] = lambda: 0
    size: int | None = None  # recipients of a JSON submission, known before any is read


def sheet_error(exc: SheetError) -> ApiError:
    return ApiError(exc.error, exc.problems, status_code=exc.status_code)


async def _in_thread(chunks: Iterator[list[Accepted]]) -> AsyncIterator[list[Accepted]]:
    """`chunks`, each computed in a worker thread while the caller works on the one before (the
    event loop keeps serving other requests while a large file is parsed)."""
    pending = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
    try:
        while (chunk := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
            yield chunk
    except SheetError as exc:
        raise sheet_error(exc) from None
    except RecipientTooLarge as exc:
        raise PayloadTooLarge("Payload too large", str(exc)) from None
    finally:
        if not pending.done():  # the caller stopped early: let the thread finish with the file
            with contextlib.suppress(Exception):
                await pending


def no_recipients(submission: Submission) -> str:
    """Why a submission without a problem has no recipient: what `submit` says, and `validate`."""
    if submission.source == "json":
        return "The submission has no recipients"
    blank = submission.blank_rows()
    skipped = f" ({blank} blank rows skipped)" if blank else ""
    return f"The file has a header row but no data rows{skipped}"


def _problems_detail(intake: Intake) -> list[dict[str, Any]]:
    detail = list(intake.problems)
    if (more := intake.problem_count - len(intake.problems)) > 0:
        detail.append(
            {"more_problems": more, "error": f"{more} more problems are not listed (BATCH_REPORT_ROWS)"}
        )
    return detail


class BatchCalling:
    """The use cases behind `POST /batch-calling/submit` and `/batch-calling/validate`."""

    def __init__(self, service: GatewayService, numbers: NumberReader) -> None:
        self.service = service
        self.settings = service.settings
        self.numbers = numbers

    async def _needs(self, agent: Agent) -> AgentNeeds:
        """What the agent's config (the read model: ElevenLabs' GET agent answer) and its known tools
        need; telephony checks again against ElevenLabs right before each dial."""
        config = {"conversation_config": agent.conversation_config}
        tools = [
            tool.tool_config
            for tool_id in variables.tool_ids(config)
            if (tool := await self.service.find(Tool, tool_id)) is not None
        ]
        return AgentNeeds(variables.required(config, tools), variables.defaults(config))

    async def _intake(self, options: BatchOptions, budget: int) -> tuple[Intake, PhoneNumber]:
        agent = await self.service.get(Agent, options.agent_id, "Agent not found")
        phone = await self.service.get(PhoneNumber, options.phone_number_id, "Phone number not found")
        for pool_number in options.phone_number_ids:
            await self.service.get(PhoneNumber, pool_number, "Phone number not found")
        intake = Intake(
            needs=await self._needs(agent),
            default_region=options.default_region,
            campaign_zone=options.timezone,
            chunk_size=self.settings.batch_chunk_size,
            budget=budget,
            max_listed=self.settings.batch_report_rows,
        )
        return intake, phone

    def _check_size(self, submission: Submission) -> None:
        limit = self.settings.batch_max_recipients
        if submission.size is not None and submission.size > limit:
            raise Unprocessable("Too many recipients", f"At most {limit} recipients per submission")

    def _limited(self, submission: Submission) -> Iterator[Entry]:
        if submission.source != "file":
            yield from submission.entries
            return
        limit = self.settings.batch_file_max_rows
        for count, item in enumerate(submission.entries, start=1):
            if count > limit:
                raise SheetError(
                    "Too many recipients",
                    [item.ref | {"error": f"At most {limit} recipients per file (BATCH_FILE_MAX_ROWS)"}],
                )
            yield item

    # ---- submit --------------------------------------------------------------------------------

    async def submit(self, submission: Submission) -> Outcome:
        """Create the campaign, answering with its outcome and a `report` of what was read."""
        options = submission.options
        campaign_id = f"batch_{uuid.uuid4().hex}"
        credentials = options.ecommerce_credentials
        command = SubmitCampaign(
            campaign_id=campaign_id,
            call_name=options.call_name,
            agent_id=options.agent_id,
            phone_number_id=options.phone_number_id,
            recipients=[],
            recipient_chunks=1,
            scheduled_time_unix=options.scheduled_time_unix,
            timezone=options.timezone,
            retry_count=options.retry_count,
            retry_delays=RetryDelays(**options.retry_delays.model_dump()) if options.retry_delays else None,
            concurrency_limit=options.concurrency_limit,
            calling_window=CallingWindow(**options.calling_window.model_dump())
            if options.calling_window
            else None,
            max_daily_attempts_per_number=options.max_daily_attempts_per_number,
            phone_number_ids=options.phone_number_ids,
            phone_number_daily_caps=options.phone_number_daily_caps,
            max_total_minutes=options.max_total_minutes,
            **domain.ecommerce_fields(self.settings.keyring, credentials),
            sender_email=options.sender_email,
            analysis_rules=[AnalysisRule(**rule.model_dump()) for rule in options.analysis_rules or []],
        )
        # Every chunk travels with at most the submission's envelope (the first one does).
        envelope = len(command.model_dump_json().encode()) + 64  # + the provider, set below
        budget = (
            self.settings.bus_max_message_bytes - RECORD_OVERHEAD_BYTES - HEADERS_ALLOWANCE_BYTES - envelope
        )
        self._check_size(submission)
        intake, phone = await self._intake(options, budget)
        command = command.model_copy(update={"phone_provider": phone.provider})
        entries = self._limited(submission)
        blocked: list[dict[str, Any]] = []
        blocked_count = 0
        callability = self._callability(options)
        never: list[dict[str, Any]] = []
        never_count = 0
        now = datetime.now(UTC)

        async def stage(uow: UnitOfWork, lead: Command) -> Command:
            nonlocal blocked_count, never_count
            started = time.monotonic()
            first: list[CampaignRecipient] | None = None
            chunk_index = 0
            position = 0
            async for chunk in _in_thread(intake.chunks(entries, self.numbers)):
                listed = await uow.read_models.do_not_call([a.recipient.phone_number for a in chunk])
                blocked_count += self._mark_do_not_call(chunk, listed, blocked)
                never_count += self._mark_not_callable(chunk, listed, callability, now, never)[1]
                if not intake.ok:
                    continue  # read on, to report every problem; nothing more is written
                recipients = [a.recipient for a in chunk]
                await uow.recipients.add_scheduled(campaign_id, position, recipients)
                position += len(chunk)
                if first is None:
                    first = recipients  # travels with the submit, which is completed last
                else:
                    follower = AddCampaignRecipients(
                        campaign_id=campaign_id, chunk_index=chunk_index, recipients=recipients
                    )
                    await uow.publish(
                        follower.model_copy(update=update_for_follower(lead)),
                        campaign_id,
                        topic=topics.CAMPAIGN_COMMANDS,
                    )
                chunk_index += 1
            log.info(
                "gateway.batch.read",
                campaign_id=campaign_id,
                source=submission.source,
                rows=intake.rows,
                recipients=intake.accepted,
                problems=intake.problem_count,
                chunks=chunk_index,
                seconds=round(time.monotonic() - started, 3),
            )
            if not intake.ok:
                raise Unprocessable("Invalid recipients", _problems_detail(intake))
            if first is None:
                raise Unprocessable("No recipients", no_recipients(submission))
            return lead.model_copy(update={"recipients": first, "recipient_chunks": chunk_index})

        outcome = await self.service.execute(
            command, topic=topics.CAMPAIGN_COMMANDS, key=campaign_id, stage=stage
        )
        if intake.rows == 0:  # a retry answered from its first attempt's operation: nothing was read
            return outcome
        report = self._report(intake, submission, blocked, blocked_count, never, never_count)
        return Outcome(outcome.status_code, outcome.body | {"report": report})

    def _mark_do_not_call(
        self, chunk: list[Accepted], listed: dict[str, str | None], blocked: list[dict[str, Any]]
    ) -> int:
        """Note the chunk's recipients on the do-not-call list (the campaign skips them); how many."""
        found = 0
        for accepted in chunk:
            number = accepted.recipient.phone_number
            if number not in listed:
                continue
            found += 1
            if accepted.listed is not None:
                accepted.listed["do_not_call"] = True
            if len(blocked) < self.settings.batch_report_rows:
                blocked.append(accepted.ref | {"phone_number": number, "reason": listed[number]})
        return found

    def _callability(self, options: BatchOptions) -> Callability:
        window = CallingWindow(**options.calling_window.model_dump()) if options.calling_window else None
        return Callability(window, load_rules(self.settings.quiet_hours_file or RULES_FILE))

    def _mark_not_callable(
        self,
        chunk: list[Accepted],
        listed: dict[str, str | None],
        callability: Callability,
        now: datetime,
        found: list[dict[str, Any]],
    ) -> tuple[list[GroupKey], int]:
        """Note the chunk's recipients that neither the calling window nor the quiet hours ever
        let be rung (the campaign fails them when they come due, with the same reason:
        `contracts.quiet_hours.never_callable_reason`). Answers the group of every recipient not
        skipped for the do-not-call list, callable or not, and how many are not."""
        groups: list[GroupKey] = []
        never = 0
        for accepted in chunk:
            number = accepted.recipient.phone_number
            if number in listed:
                continue  # skipped before any hours are looked at
            key = callability.key(accepted.place, accepted.time_zones)
            groups.append(key)
            reason = callability.never_reason(key, now)
            if reason is None:
                continue
            never += 1
            if accepted.listed is not None:
                accepted.listed["not_callable"] = reason
            if len(found) < self.settings.batch_report_rows:
                found.append(accepted.ref | {"phone_number": number, "error": f"Not callable: {reason}"})
        return groups, never

    def _report(
        self,
        intake: Intake,
        submission: Submission,
        blocked: list[dict[str, Any]],
        blocked_count: int,
        never: list[dict[str, Any]],
        never_count: int,
    ) -> dict[str, Any]:
        counts = intake.counts() | {"do_not_call": blocked_count, "not_callable": never_count}
        if submission.source == "file":
            counts["blank_rows"] = submission.blank_rows()
        return {
            "counts": counts,
            "recipients": intake.listed,
            "do_not_call": blocked,
            "not_callable": never,
            "time_zones": intake.time_zones(),
        }

    # ---- validate ------------------------------------------------------------------------------

    async def validate(self, submission: Submission, now: datetime | None = None) -> dict[str, Any]:
        """What `submit` would make of the submission, creating nothing: counts, every problem,
        what each number became and its zones, do-not-call matches, and an estimated duration."""
        options = submission.options
        budget = self.settings.bus_max_message_bytes - RECORD_OVERHEAD_BYTES - HEADERS_ALLOWANCE_BYTES - 4096
        self._check_size(submission)
        intake, _ = await self._intake(options, budget)
        blocked: list[dict[str, Any]] = []
        blocked_count = 0
        callability = self._callability(options)
        never: list[dict[str, Any]] = []
        never_count = 0
        now = now or datetime.now(UTC)
        groups: Counter[GroupKey] = Counter()
        async with self.service.uow() as uow:
            async for chunk in _in_thread(intake.chunks(self._limited(submission), self.numbers)):
                listed = await uow.read_models.do_not_call([a.recipient.phone_number for a in chunk])
                blocked_count += self._mark_do_not_call(chunk, listed, blocked)
                keys, count = self._mark_not_callable(chunk, listed, callability, now, never)
                groups.update(keys)
                never_count += count
            mean, calls = await uow.read_models.call_seconds(options.agent_id)
            scope = "this agent's"
            if not calls:
                mean, calls = await uow.read_models.call_seconds(None)
                scope = "all agents'"
        if mean is None:
            call_s = self.settings.batch_assumed_call_s
            source = f"assumed: no call has finished yet (BATCH_ASSUMED_CALL_S = {call_s:g} s)"
        else:
            call_s = mean
            source = f"the average of {scope} {calls} finished calls so far"
        concurrency = min(
            options.concurrency_limit or self.settings.campaigns_default_concurrency,
            self.settings.campaigns_global_concurrency,
        )
        start = now
        if options.scheduled_time_unix is not None:
            start = max(now, datetime.fromtimestamp(options.scheduled_time_unix, UTC))
        forecast = estimate(
            groups, concurrency=concurrency, call_s=call_s, start=start, callability=callability
        )
        report = self._report(intake, submission, blocked, blocked_count, never, never_count)
        problems = _problems_detail(intake)
        if intake.ok and intake.accepted == 0:  # invalid for want of a row: say so, as submit does
            problems.append({"error": no_recipients(submission)})
        return {
            "valid": intake.ok and intake.accepted > 0,
            "counts": report["counts"],
            "problems": problems,
            **{k: v for k, v in report.items() if k != "counts"},
            "estimate": forecast
            | {
                "concurrency": concurrency,
                "average_call_seconds": round(call_s, 1),
                "average_call_source": source,
                "assumes": ESTIMATE_ASSUMES,
            },
        }
