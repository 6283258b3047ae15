"""A NUL character (U+0000) anywhere a client sends text is a 422 at the edge (`contracts.text`).

Found by a fresh user's trial: PostgreSQL cannot store it, so a NUL in an agent's name, a
number's label, a campaign's name, a recipient's name, a dynamic variable, a spreadsheet cell or an
id in the path was accepted and failed later: 500s, operations pending for good, an agent created in
ElevenLabs that the API never showed, events dead-lettered. Real request path, real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.models import outbox

from .conftest import API_KEY, seed_agent_and_number

pytestmark = pytest.mark.integration

AGENT = "agent_nul"
PHONE = "pn_nul"
NUL = "\x00"
CAMPAIGN = {"call_name": "c", "agent_id": AGENT, "phone_number_id": PHONE}
TO = "+14155552671"


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    await seed_agent_and_number(
        container, agent_id=AGENT, name="Nul", first_message="Hello", phone_number_id=PHONE, label="nul"
    )
    async with container.engine.begin() as connection:
        await connection.execute(delete(outbox))
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"X-API-Key": API_KEY}, timeout=60
    ) as client:
        yield client


async def _queued(container: Container) -> int:
    async with container.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(outbox))).scalar_one())


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("POST", "/api/v1/agents", {"name": f"x{NUL}y"}, "name"),
        ("PATCH", f"/api/v1/agents/{AGENT}/prompt", {"system_prompt": f"a{NUL}b"}, "system_prompt"),
        (
            "POST",
            "/api/v1/phone-numbers",
            {"phone_number": "+14155550199", "label": f"a{NUL}b", "sid": "AC" + "1" * 32, "token": "t"},
            "label",
        ),
        (
            "POST",
            "/api/v1/batch-calling/submit",
            CAMPAIGN | {"call_name": f"N{NUL}", "recipients": [{"phone_number": TO}]},
            "call_name",
        ),
        (
            "POST",
            "/api/v1/batch-calling/submit",
            CAMPAIGN | {"recipients": [{"phone_number": TO, "name": f"a{NUL}b"}]},
            "name",
        ),
        ("POST", "/api/v1/api-keys", {"name": f"k{NUL}"}, "name"),
        ("POST", "/api/v1/do-not-call", {"phone_number": TO, "reason": f"r{NUL}"}, "reason"),
        (
            "POST",
            "/api/v1/tools/webhook",
            {"name": "t", "description": f"d{NUL}", "webhook_url": "https://api.example.com/hook"},
            "description",
        ),
        (
            "POST",
            "/api/v1/phone-numbers/twilio/outbound-call",
            {
                "agent_id": AGENT,
                "agent_phone_number_id": PHONE,
                "to_number": TO,
                "dynamic_variables": {"x": f"a{NUL}b"},
            },
            "dynamic_variables.x",
        ),
        (
            "POST",
            "/api/v1/email-templates/sessions",
            {"conversation_id": "conv_1", "customer_info": {"name": f"A{NUL}", "email": "a@example.com"}},
            "name",
        ),
    ],
)
async def test_a_nul_in_any_text_of_a_body_is_a_422_naming_where(
    api: httpx.AsyncClient, container: Container, method: str, path: str, body: dict[str, Any], where: str
) -> None:
    response = await api.request(method, path, json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["success"] is False
    detail = answer["detail"] if isinstance(answer["detail"], str) else str(answer["detail"])
    assert "NUL" in detail and where in detail, detail
    assert await _queued(container) == 0  # nothing was sent anywhere


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (f"/api/v1/agents/{AGENT}%00", 404),  # no stored id holds one (repository.ReadModels.get)
        ("/api/v1/calls/conv%00x", 404),
        ("/api/v1/agents?cursor=%00", 400),
        ("/api/v1/batch-calling?status=completed%00", 422),
    ],
)
async def test_a_nul_in_the_path_or_query_is_a_client_error(
    api: httpx.AsyncClient, url: str, status: int
) -> None:
    response = await api.get(url)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False and response.json()["detail"]


async def test_a_nul_in_a_spreadsheet_cell_is_a_problem_of_its_row(
    api: httpx.AsyncClient, container: Container
) -> None:
    content = f"phone,name,note\n{TO},Ana,ok\n+14155552672,B{NUL}n,fine\n+14155552673,Cy,x{NUL}\n".encode()
    data = {k: str(v) for k, v in CAMPAIGN.items()}
    for route in ("validate", "submit"):
        response = await api.post(
            f"/api/v1/batch-calling/{route}",
            files={"file": ("list.csv", content, "text/csv")},
            data=data,
        )
        body = response.json()
        problems = body["problems"] if route == "validate" else body["detail"]
        assert [(p["row"], p["header"]) for p in problems] == [(3, "name"), (4, "note")], problems
        assert all("NUL" in p["error"] for p in problems)
        if route == "validate":
            assert response.status_code == 200 and body["valid"] is False
        else:
            assert response.status_code == 422
    assert await _queued(container) == 0


async def test_a_json_recipient_with_a_nul_is_a_problem_of_its_index(
    api: httpx.AsyncClient, container: Container
) -> None:
    recipients = [
        {"phone_number": TO},
        {"phone_number": "+14155552672", "dynamic_variables": {f"k{NUL}": "v"}},
    ]
    response = await api.post("/api/v1/batch-calling/validate", json=CAMPAIGN | {"recipients": recipients})
    assert response.status_code == 200 and response.json()["valid"] is False
    [problem] = response.json()["problems"]
    assert problem["index"] == 1 and "dynamic_variables" in problem["error"] and "NUL" in problem["error"]
    assert await _queued(container) == 0
