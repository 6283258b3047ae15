"""A call's transcript in the read model: projected from its parts, in any order, any number of
times, shown only once whole (real PostgreSQL; the events are handed to the projector directly)."""

from __future__ import annotations

import json
import random
import time
import uuid

import pytest

from contracts.telephony import CallPlaced
from contracts.webhooks import PostCallTranscriptPart
from gateway.bootstrap import Container
from gateway.models import Call
from gateway.routes.calls import get_call

pytestmark = pytest.mark.integration


def _parts(conversation_id: str, turns: list[dict[str, object]], count: int) -> list[PostCallTranscriptPart]:
    text = json.dumps(turns, separators=(",", ":"))
    size = len(text) // count + 1
    return [
        PostCallTranscriptPart(
            message_id=uuid.uuid4().hex,
            conversation_id=conversation_id,
            part_index=i,
            part_count=count,
            turn_count=len(turns),
            transcript_json=text[i * size : (i + 1) * size],
        )
        for i in range(count)
    ]


async def test_the_transcript_shows_once_every_part_arrived_in_any_order(container: Container) -> None:
    service = container.service
    conversation_id = f"conv_{uuid.uuid4().hex[:12]}"
    turns: list[dict[str, object]] = [
        {"role": "user" if i % 2 else "agent", "message": f'{i} «quoted» "text"', "time_in_call_secs": i}
        for i in range(500)
    ]
    parts = _parts(conversation_id, turns, 5)
    shuffled = random.Random(7).sample(parts, len(parts))
    # Parts may arrive before the call itself is projected.
    for part in shuffled[:-1]:
        await container.projection.project(part)
        await container.projection.project(
            part.model_copy(update={"message_id": uuid.uuid4().hex})
        )  # a second copy
    assert await service.transcript(conversation_id) is None

    await container.projection.project(
        CallPlaced(
            conversation_id=conversation_id,
            provider="twilio",
            agent_id="agent_1",
            phone_number_id="phone_1",
            to_number="+14155550100",
            placed_at_unix=int(time.time()),
        )
    )
    view = await get_call(conversation_id, service)
    assert view["transcript"] is None  # not whole yet

    await container.projection.project(shuffled[-1])
    view = await get_call(conversation_id, service)
    assert view["transcript"] == turns
    assert view["conversation_id"] == conversation_id
    assert (await service.get(Call, conversation_id, "Call not found")).status
