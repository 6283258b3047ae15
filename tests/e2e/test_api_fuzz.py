"""Schemathesis against the gateway's and tool-webhooks' own OpenAPI documents, on the whole stack
(simulator upstream): no request a client (or ElevenLabs) can send gets a 5xx, every 4xx is in the
contract's error format, and every answer matches what the document declares (status, content
type, body schema). The stateful phase follows the links it infers from the document (POST /agents
answers `agent_id`, which GET/PATCH/DELETE /agents/{agent_id} take).

Deterministic for CI: a fixed seed, no example database, a bounded number of examples per operation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devinfra.stack import Stack
from devinfra.standins.stores import WOO_KEY, WOO_SECRET, StoreState
from tests.e2e.conftest import FUZZ_WEBHOOK_SECRET, poll
from tests.e2e.test_tool_tokens import _token_of
from tool_webhooks.domain import ORDERS_ROUTE, PRODUCTS_ROUTE, TOOL_TOKEN_HEADER, email_route

REPO = Path(__file__).parents[2]
#: Left out, for the rest of the suite shares this stack: registering the post-call webhook
#: re-points where the simulator delivers every call's outcome, and revoking a key (one a listing
#: named) could take another test's. The event streams never end (each case would wait out the
#: request timeout); tests/e2e/test_campaign_results_and_progress.py follows them.
EXCLUDED = [
    "POST /api/v1/admin/webhooks/post-call",
    "DELETE /api/v1/api-keys/{key_id}",
    "GET /api/v1/batch-calling/events",
    "GET /api/v1/batch-calling/{job_id}/events",
]
MAX_EXAMPLES = 8
#: Methods the coverage phase tries on each path besides its own (the default is every method).
CONFIG = """
[phases.coverage]
unexpected-methods = ["OPTIONS", "TRACE"]
"""
SEED = 20261130


def schemathesis_run(
    schema_url: str, args: list[str], report_dir: Path, env: dict[str, str] | None = None
) -> str:
    """`st run` (every phase: examples, coverage, fuzzing, stateful) with our contract check loaded
    (tests/e2e/fuzz_hooks.py); fails the test with schemathesis' report (each failure with a curl
    line to reproduce it) unless every check passed. The report is also kept in `report_dir`."""
    config = report_dir / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("st")),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        schema_url,
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
        *args,
    ]
    result = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks", **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    (report_dir / "output.txt").write_text(output)
    assert result.returncode == 0, output[-20000:]
    return output


@pytest.mark.timeout(900)
def test_gateway_never_answers_a_client_with_a_server_error(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    # A key of its own, without a rate limit: the run's requests come faster than a client's.
    key = api.post("/api/v1/api-keys", json={"name": "schemathesis", "scope": "admin", "rate_limit_per_s": 0})
    assert key.status_code == 201, key.text
    schemathesis_run(
        f"{stack.url('gateway')}/openapi.json",
        [
            "--header",
            f"X-API-Key: {key.json()['api_key']}",
            *[arg for name in EXCLUDED for arg in ("--exclude-name", name)],
            # Data the schema allows may still name an agent that does not exist (404) or break a
            # rule the schema cannot express (422): a refusal in the error format is right.
            "--exclude-checks",
            "positive_data_acceptance",
        ],
        tmp_path,
    )


@pytest.fixture(scope="module")
def tool_call(
    api: httpx.Client, sim: httpx.Client, stack: Stack, woo: tuple[str, StoreState]
) -> dict[str, str]:
    """What the fuzzed tool calls name, so the code behind them runs: the e-commerce and an e-mail
    template's tools with the tokens provisioning gave ElevenLabs, and a placed call with store
    credentials and a customer session."""
    webhook_base = f"{stack.url('tool-webhooks')}/api/v1"
    tools = api.post("/api/v1/tools/ecommerce", json={"webhook_base_url": webhook_base})
    assert tools.status_code == 200, tools.text
    template = api.post(
        "/api/v1/email-templates",
        json={
            "name": f"fuzz_{SEED}",
            "description": "Fuzzed",
            "subject_template": "About {{topic}}",
            "body_template": "Dear {{customer_name}}, {{topic}}.",
            "parameters": [{"name": "topic", "required": True}],
            "webhook_base_url": webhook_base,
        },
    )
    assert template.status_code == 200, template.text
    template_id = template.json()["template_id"]
    tool_ids = {
        PRODUCTS_ROUTE: tools.json()["products_tool_id"],
        ORDERS_ROUTE: tools.json()["orders_tool_id"],
        email_route(template_id): template.json()["tool_id"],
    }
    tokens = {route: _token_of(sim, api.get(f"/api/v1/tools/{i}").json()) for route, i in tool_ids.items()}
    agent = api.post("/api/v1/agents", json={"name": "Fuzz agent"}).json()["agent_id"]
    phone = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550142", "label": "fuzz", "sid": "AC" + "5" * 32, "token": "t"},
    ).json()["phone_number_id"]
    call = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": agent,
            "agent_phone_number_id": phone,
            "to_number": "+14155550143",
            "ecommerce_credentials": {
                "platform": "woocommerce",
                "base_url": woo[0],
                "api_key": WOO_KEY,
                "api_secret": WOO_SECRET,
            },
            "customer_info": {"name": "Fuzz Caller", "email": "fuzz.caller@example.com"},
        },
    )
    assert call.status_code == 200, call.text
    conversation_id = call.json()["conversation_id"]

    def store_known() -> bool:
        # tool-webhooks learns the call's store and the tools' tokens from the bus.
        answer = httpx.post(
            f"{webhook_base}/webhook/ecommerce/products",
            json={"conversation_id": conversation_id, "query": "mug"},
            headers={TOOL_TOKEN_HEADER: tokens[PRODUCTS_ROUTE]},
            timeout=10,
        )
        return answer.status_code == 200 and answer.json().get("error") != "no_store"

    poll(store_known)
    return {
        "conversation_id": conversation_id,
        "template_id": template_id,
        "tokens": json.dumps(tokens),
    }


@pytest.mark.timeout(900)
def test_tool_webhooks_never_answer_elevenlabs_with_a_server_error(
    stack: Stack, tool_call: dict[str, str], tmp_path: Path
) -> None:
    """Tool calls and post-call webhooks, each authenticated (tool token, signature over the bytes
    sent), with fuzzed bodies against a real call's store and session."""
    schemathesis_run(
        f"{stack.url('tool-webhooks')}/openapi.json",
        [
            # The tools answer whatever the LLM sends with something the agent can say (200), by
            # design: a body the schema would refuse is not refused.
            "--exclude-checks",
            "negative_data_rejection",
        ],
        tmp_path,
        env={
            "FUZZ_TOOL_TOKENS": tool_call["tokens"],
            "FUZZ_WEBHOOK_SECRET": FUZZ_WEBHOOK_SECRET,
            "FUZZ_CONVERSATION_ID": tool_call["conversation_id"],
            "FUZZ_TEMPLATE_ID": tool_call["template_id"],
        },
    )


@pytest.mark.timeout(900)
def test_tool_webhooks_refuse_fuzzed_credentials_in_the_error_format(stack: Stack, tmp_path: Path) -> None:
    """The same routes with the tool token and signature headers fuzzed (missing, empty, malformed):
    401 in the error format before a body is read, never a 5xx."""
    schemathesis_run(
        f"{stack.url('tool-webhooks')}/openapi.json",
        [
            "--phases",
            "coverage,fuzzing",
            "--exclude-checks",
            "negative_data_rejection,positive_data_acceptance",
        ],
        tmp_path,
    )
