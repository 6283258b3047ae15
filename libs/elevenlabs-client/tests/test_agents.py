"""The merge ElevenLabs applies to an agent PATCH, and the config our simple fields stand for."""

from __future__ import annotations

from elevenlabs_client.agents import deep_merge, prompt_fields


def test_deep_merge_merges_objects_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    merged = deep_merge(base, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # not mutated


def test_prompt_fields_hold_only_what_is_given() -> None:
    assert (
        prompt_fields(
            first_message=None, language=None, system_prompt=None, tool_ids=None, knowledge_base=None
        )
        == {}
    )
    assert prompt_fields(
        first_message="Hi", language=None, system_prompt="Be kind", tool_ids=[], knowledge_base=None
    ) == {"agent": {"first_message": "Hi", "prompt": {"prompt": "Be kind", "tool_ids": []}}}
