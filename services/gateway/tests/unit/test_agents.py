"""An agent write must leave room for the agent as ElevenLabs reads it back, which travels as one bus
message (`gateway.agents.check_readback_room`, `check_update_room`): refused before anything is
queued, instead of applied upstream and then lost on the bus."""

from __future__ import annotations

import pytest

from bus.limits import MessageTooLarge
from contracts.provisioning import CreateAgent, UpdateAgent
from gateway.agents import (
    AGENT_READBACK_BYTES,
    AGENT_UPDATE_MARGIN_BYTES,
    check_readback_room,
    check_update_room,
)
from gateway.errors import PayloadTooLarge
from gateway.models import Agent

BUS_MAX = 256 * 1024


def _agent(prompt: str) -> Agent:
    return Agent(
        agent_id="agent_1",
        name="Ava",
        conversation_config={"agent": {"prompt": {"prompt": prompt}, "first_message": "Hi"}},
        platform_settings={},
        tags=[],
    )


def test_an_agent_that_leaves_room_for_its_read_back_passes() -> None:
    check_readback_room(CreateAgent(name="Ava", system_prompt="x" * 10_000), BUS_MAX)


def test_an_agent_whose_texts_fit_the_bus_but_not_its_read_back_is_refused() -> None:
    command = CreateAgent(name="Ava", system_prompt="x" * (BUS_MAX - AGENT_READBACK_BYTES))
    with pytest.raises(PayloadTooLarge) as refused:
        check_readback_room(command, BUS_MAX)
    assert f"at most {BUS_MAX - AGENT_READBACK_BYTES} fit" in str(refused.value.detail)


def test_an_agent_over_the_bus_limit_itself_gets_the_bus_refusal() -> None:
    with pytest.raises(MessageTooLarge):
        check_readback_room(CreateAgent(name="Ava", system_prompt="x" * BUS_MAX), BUS_MAX)


def test_a_small_change_to_a_large_agent_is_refused_when_the_merged_agent_would_not_fit() -> None:
    large = _agent("p" * (BUS_MAX - AGENT_UPDATE_MARGIN_BYTES - 1000))
    # The change alone is tiny; the agent after it (its prompt kept, a long greeting added) is not.
    change = UpdateAgent(agent_id="agent_1", first_message="g" * 2000)
    with pytest.raises(PayloadTooLarge) as refused:
        check_update_room(large, change, BUS_MAX)
    assert "The agent after this change would take" in str(refused.value.detail)
    # Replacing the large prompt by a short one shrinks the agent: allowed.
    check_update_room(large, UpdateAgent(agent_id="agent_1", system_prompt="short"), BUS_MAX)
