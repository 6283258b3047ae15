"""The README's API-keys example, run as written against the whole stack (issue 12, API keys): a
read-only key reads and is refused a write (403), listed without its secret, revoked (401)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from devinfra.stack import Stack
from tests.e2e.conftest import API_KEY

README = Path(__file__).parents[2] / "README.md"


def _api_keys_example() -> str:
    text = README.read_text()
    section = text[text.index("### API keys") :]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0]


def test_the_readme_api_keys_example_works_verbatim(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / ".devstack").mkdir()
    (tmp_path / ".devstack" / "api-key").write_text(API_KEY + "\n")  # what `make up` generates
    script = _api_keys_example().replace("localhost:8000", stack.url("gateway").removeprefix("http://"))
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    decoder = json.JSONDecoder()
    answers, rest = [], ran.stdout.strip()
    while rest:
        answer, end = decoder.raw_decode(rest)
        answers.append(answer)
        rest = rest[end:].strip()
    agents, refused, listed, revoked, after = answers
    assert "agents" in agents, agents
    assert refused["error"] == "Insufficient scope" and refused["success"] is False, refused
    dashboard = [k for k in listed["api_keys"] if k["name"] == "dashboard"]
    assert dashboard and all("api_key" not in k for k in listed["api_keys"]), listed
    assert revoked["key_id"] in {k["key_id"] for k in dashboard} and revoked["revoked_at"], revoked
    assert after == {
        "success": False,
        "error": "Authentication failed",
        "detail": "Missing or invalid API key",
    }
