"""Batch jobs once submitted (api-v1.md 10.2-10.5; beyond it pause, resume, a CSV export and the
do-not-call list): read from the read model, controlled through commands to the campaigns service.
Submission and validation are `gateway.batch`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from contracts import topics
from contracts.campaigns import AddDoNotCall, CancelCampaign, PauseCampaign, RemoveDoNotCall, ResumeCampaign
from gateway import domain, results, views
from gateway.domain import Outcome
from gateway.models import Agent, Campaign, DoNotCall
from gateway.service import GatewayService

JOB_NOT_FOUND = "Batch job not found"


def export_file_name(job_id: str) -> str:
    """The CSV export's file name (without `.csv`): the job id with anything a Content-Disposition
    header would need quoted replaced by `_`."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id)


@dataclass(frozen=True)
class Export:
    """A job's results as CSV: `lines` stream a page of recipients at a time."""

    file_name: str
    lines: AsyncIterator[str]


class BatchJobs:
    """The use cases behind `/batch-calling/{id}...` and `/do-not-call`."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service

    async def job(self, job_id: str) -> dict[str, Any]:
        """The job (`views.job_detail_view`) with its agent's name. NotFound."""
        campaign = await self.service.get(Campaign, job_id, JOB_NOT_FOUND)
        agent = await self.service.find(Agent, campaign.agent_id)
        return views.job_detail_view(campaign, agent.name if agent else None)

    async def calls(
        self,
        job_id: str,
        cursor: str | None,
        page_size: int,
        status: Sequence[str] | None,
        outcome: Sequence[str] | None,
    ) -> dict[str, Any]:
        """A page of the job's recipients in submission order (`results.recipient_view`). NotFound."""
        await self.service.get(Campaign, job_id, JOB_NOT_FOUND)
        rows, next_cursor = await self.service.results_page(job_id, cursor, page_size, status, outcome)
        return {"calls": [results.recipient_view(r) for r in rows], "cursor": next_cursor}

    async def export(
        self, job_id: str, status: Sequence[str] | None, outcome: Sequence[str] | None
    ) -> Export:
        """Every recipient (filtered) as a CSV row: the fixed columns (`results.FIXED_COLUMNS`), then
        `data_collection.<id>` per data collection id of the campaign's analyses and
        `dynamic_variables.<name>` per submitted variable. NotFound."""
        campaign = await self.service.get(Campaign, job_id, JOB_NOT_FOUND)
        collected, variables = await self.service.result_columns(job_id)
        lines = results.csv_lines(
            results.csv_header(collected, variables),
            self.service.all_results(job_id, status, outcome),
            collected,
            variables,
        )
        return Export(export_file_name(campaign.campaign_id), lines)

    async def control(self, command: CancelCampaign | PauseCampaign | ResumeCampaign) -> Outcome:
        """Cancel, pause or resume the command's job. NotFound."""
        await self.service.get(Campaign, command.campaign_id, JOB_NOT_FOUND)
        return await self.service.execute(command, topic=topics.CAMPAIGN_COMMANDS, key=command.campaign_id)

    async def add_do_not_call(self, phone_number: str, reason: str | None) -> Outcome:
        """List a number (E.164, else BadRequest) as added through the API."""
        number = domain.e164(phone_number)
        command = AddDoNotCall(phone_number=number, reason=reason, source="api")
        return await self.service.execute(command, topic=topics.CAMPAIGN_COMMANDS, key=number)

    async def remove_do_not_call(self, phone_number: str) -> Outcome:
        """NotFound when the number is not listed."""
        await self.service.get(DoNotCall, phone_number, "Number not on the do-not-call list")
        command = RemoveDoNotCall(phone_number=phone_number)
        return await self.service.execute(command, topic=topics.CAMPAIGN_COMMANDS, key=phone_number)
