"""Campaign results and live progress over the whole stack (issue 13): a campaign followed by
Server-Sent Events across a reconnect with Last-Event-ID (nothing missed, nothing twice, checked
against a full replay of the change log), then its per-recipient results with the post-call
analysis ElevenLabs (the simulator) sent for the agent's evaluation criteria and data collection,
as JSON and CSV; and the README's curl examples, run as written."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devinfra.numbers import outcome_numbers
from devinfra.stack import SANDBOX_API_KEY, Stack
from tests.e2e.conftest import API_KEY, poll

README = Path(__file__).parents[2] / "README.md"


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Events of a text/event-stream as {id, event, data}; heartbeat comments skipped."""
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if line == "":
            if "event" in current:
                yield current
            current = {}
            continue
        name, _, value = line.partition(":")
        if name in ("id", "event"):
            current[name] = value.removeprefix(" ")
        elif name == "data":
            current["data"] = json.loads(value.removeprefix(" "))


def _until_finished(events: Iterator[dict[str, Any]], seen: list[dict[str, Any]]) -> None:
    for event in events:
        seen.append(event)
        if event["event"] == "campaign" and event["data"]["status"] in {"completed", "failed", "cancelled"}:
            return
    raise AssertionError("the stream ended before the campaign finished")


@pytest.fixture(scope="module")
def campaign(api: httpx.Client, sim: httpx.Client) -> dict[str, Any]:
    agent = api.post("/api/v1/agents", json={"name": "Results Agent"}).json()["agent_id"]
    # What the agent asks ElevenLabs to analyse, set as in ElevenLabs' own dashboard.
    patched = sim.patch(
        f"/v1/convai/agents/{agent}",
        headers={"xi-api-key": SANDBOX_API_KEY},
        json={
            "platform_settings": {
                "data_collection": {"visit_date": {"type": "string", "description": "The date booked"}},
                "evaluation": {
                    "criteria": [
                        {"id": "goal", "name": "Goal", "type": "prompt", "conversation_goal_prompt": "Book"}
                    ]
                },
            }
        },
    )
    assert patched.status_code == 200, patched.text
    phone = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550177", "label": "results", "sid": "AC" + "7" * 32, "token": "t"},
    ).json()["phone_number_id"]
    numbers = outcome_numbers([1, 5, 2, 3])
    submitted = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": "Results",
            "agent_id": agent,
            "phone_number_id": phone,
            "recipients": [
                {"phone_number": n, "name": f"Customer {i}", "dynamic_variables": {"customer_name": f"C{i}"}}
                for i, n in enumerate(numbers)
            ],
        },
    )
    assert submitted.status_code == 200, submitted.text
    return {"id": submitted.json()["id"], "numbers": numbers}


def test_progress_streams_across_a_reconnect_then_the_results_show_the_analysis(
    stack: Stack, campaign: dict[str, Any]
) -> None:
    job, numbers = campaign["id"], campaign["numbers"]
    url = f"{stack.url('gateway')}/api/v1/batch-calling/{job}/events"
    headers = {"X-API-Key": API_KEY}
    seen: list[dict[str, Any]] = []
    with httpx.Client(timeout=httpx.Timeout(30, read=120)) as client:
        # Without Last-Event-ID: the job as it is now, whatever has already happened.
        with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            opening = next(_events(response))
            assert opening["event"] == "campaign" and opening["data"]["id"] == job
        # From the log's start (the calls may all be over by now): two events, then drop the
        # connection and resume after the last one received.
        with client.stream("GET", url, headers=headers | {"Last-Event-ID": "0"}) as response:
            stream = _events(response)
            seen += [next(stream), next(stream)]
        with client.stream("GET", url, headers=headers | {"Last-Event-ID": seen[-1]["id"]}) as response:
            _until_finished(_events(response), seen)
        # The log replayed from its start: exactly what the two connections delivered.
        replay: list[dict[str, Any]] = []
        with client.stream("GET", url, headers=headers | {"Last-Event-ID": "0"}) as response:
            _until_finished(_events(response), replay)
    assert [e["id"] for e in seen] == [e["id"] for e in replay]
    assert [int(e["id"]) for e in seen] == sorted({int(e["id"]) for e in seen})
    finals = {e["data"]["to_number"]: e["data"]["status"] for e in seen if e["event"] == "recipient"}
    assert finals == {
        numbers[0]: "completed",
        numbers[1]: "busy",
        numbers[2]: "completed",
        numbers[3]: "completed",
    }

    with httpx.Client(base_url=stack.url("gateway"), headers=headers, timeout=30) as api:
        calls = api.get(f"/api/v1/batch-calling/{job}/calls").json()["calls"]
        first = calls[0]
        assert (first["to_number"], first["status"], first["outcome"]) == (
            numbers[0],
            "completed",
            "appointment_confirmed",
        )
        assert first["dynamic_variables"] == {"customer_name": "C0"} and first["name"] == "Customer 0"
        assert [a["status"] for a in first["attempts"]] == ["completed"]
        assert first["attempts"][0]["conversation_id"] == first["conversation_id"]
        assert first["attempts"][0]["termination_reason"]
        analysis = first["analysis"]
        assert analysis["call_successful"] == "success" and analysis["transcript_summary"]
        assert analysis["data_collection_results"] == {
            "visit_date": f"visit_date of {numbers[0]}",
            "outcome": "appointment_confirmed",
        }
        assert analysis["evaluation_criteria_results"]["goal"]["result"] == "success"
        busy = calls[1]
        assert (busy["status"], busy["analysis"]) == ("busy", None)
        assert [
            c["to_number"]
            for c in api.get(f"/api/v1/batch-calling/{job}/calls", params={"status": "busy"}).json()["calls"]
        ] == [numbers[1]]

        exported = api.get(f"/api/v1/batch-calling/{job}/calls.csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["to_number"] for r in rows] == numbers
        assert rows[0]["data_collection.visit_date"] == f"visit_date of {numbers[0]}"
        assert rows[0]["dynamic_variables.customer_name"] == "C0"
        assert rows[1]["data_collection.visit_date"] == ""


def _readme_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Campaign results and live progress") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_results_and_progress_examples_work_verbatim(
    stack: Stack, api: httpx.Client, campaign: dict[str, Any], tmp_path: Path
) -> None:
    # The README's JOB is the newest campaign: this module's, once it has run.
    poll(
        lambda: api.get(f"/api/v1/batch-calling/{campaign['id']}").json()["status"] == "completed",
        timeout=120,
    )
    (tmp_path / ".devstack").mkdir()
    (tmp_path / ".devstack" / "api-key").write_text(API_KEY + "\n")  # what `make up` generates
    host = stack.url("gateway").removeprefix("http://")
    results, follow, replay = (block.replace("localhost:8000", host) for block in _readme_blocks())
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", results], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    decoder = json.JSONDecoder()
    completed, end = decoder.raw_decode(ran.stdout)
    rest = ran.stdout[end:].lstrip()
    confirmed, end = decoder.raw_decode(rest)
    negotiated = rest[end:]  # the last command's CSV (the one before it wrote results.csv)
    assert completed["calls"] and {c["status"] for c in completed["calls"]} == {"completed"}, completed
    assert confirmed["calls"] and {c["outcome"] for c in confirmed["calls"]} == {"appointment_confirmed"}
    assert negotiated.startswith("recipient_id,position,to_number"), negotiated[:200]
    assert (tmp_path / "results.csv").read_text() == negotiated

    # The SSE examples stream until stopped: read until the campaign shows, then stop them.
    setup = results.split("\ncurl", 1)[0]  # KEY, API and JOB
    for block, expected in ((follow, f'"id":"{campaign["id"]}"'), (replay, "event: recipient")):
        # (The stream of JOB opens with the job itself; the replay starts with the oldest change.)
        output = _stream_until(f"{setup}\n{block}", tmp_path, expected)
        assert "id: " in output and "event: campaign" in output, output[:500]


def _stream_until(script: str, cwd: Path, expected: str, timeout: float = 60) -> str:
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while expected.encode() not in output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, output.decode(errors="replace")[:500]
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, "the stream ended: " + output.decode(errors="replace")[:500]
                output += chunk
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    return output.decode()
