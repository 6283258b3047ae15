"""Fails when a contract change would break a consumer built against the committed snapshot.

The snapshot (`libs/contracts/schemas/topics.json`) is what older consumers were built against.
Additive changes (new optional fields, new message types, a value added to an enum: readers treat an
unknown status as they treat an unknown type) pass; after making one, refresh the snapshot with `uv run python -m contracts > libs/contracts/schemas/topics.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.registry import json_schemas

SNAPSHOT = Path(__file__).parents[1] / "schemas" / "topics.json"


def _models(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Message models of a topic schema keyed by their `type` literal."""
    out = {}
    for model in schema.get("$defs", {}).values():
        literal = model.get("properties", {}).get("type", {}).get("const")
        if literal:
            out[literal] = model
    return out


def _shape(prop: dict[str, Any]) -> Any:
    """The wire type of a property, ignoring descriptions, titles and defaults."""
    ignored = {"description", "title", "default", "examples"}
    if isinstance(prop, dict):
        return {k: _shape(v) for k, v in prop.items() if k not in ignored}
    if isinstance(prop, list):
        return [_shape(v) for v in prop]
    return prop


def _compatible(old: Any, new: Any) -> bool:
    """`new` reads everything `old` described: the same shape, where an enum may have grown."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) != set(new):
            return False
        for key, value in old.items():
            if key == "enum" and isinstance(value, list) and isinstance(new[key], list):
                if not all(v in new[key] for v in value):
                    return False
            elif not _compatible(value, new[key]):
                return False
        return True
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_compatible(o, n) for o, n in zip(old, new, strict=True))
    return bool(old == new)


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for topic, old_schema in old.items():
        if topic not in new:
            problems.append(f"topic {topic} removed")
            continue
        old_models, new_models = _models(old_schema), _models(new[topic])
        for msg_type, old_model in old_models.items():
            new_model = new_models.get(msg_type)
            if new_model is None:
                problems.append(f"{topic}: message type {msg_type} removed")
                continue
            old_props, new_props = old_model.get("properties", {}), new_model.get("properties", {})
            for field, old_prop in old_props.items():
                if field not in new_props:
                    problems.append(f"{msg_type}: field {field} removed or renamed")
                elif not _compatible(_shape(old_prop), _shape(new_props[field])):
                    problems.append(f"{msg_type}: field {field} changed type")
            newly_required = set(new_model.get("required", [])) - set(old_model.get("required", []))
            for field in sorted(newly_required):
                problems.append(f"{msg_type}: field {field} became required")
        # Nested value objects referenced by messages must not change incompatibly either.
        for name, old_def in old_schema.get("$defs", {}).items():
            new_def = new[topic].get("$defs", {}).get(name)
            if new_def is None or "type" in old_def.get("properties", {}):
                continue
            for field, old_prop in old_def.get("properties", {}).items():
                if field not in new_def.get("properties", {}):
                    problems.append(f"{name}: field {field} removed or renamed")
                elif not _compatible(_shape(old_prop), _shape(new_def["properties"][field])):
                    problems.append(f"{name}: field {field} changed type")
    return problems


def test_current_contracts_are_compatible_with_the_snapshot() -> None:
    old = json.loads(SNAPSHOT.read_text())
    assert breaking_changes(old, json_schemas()) == []


def test_every_message_type_is_in_the_snapshot() -> None:
    """A new type must be snapshotted so later changes to it are guarded too."""
    old = json.loads(SNAPSHOT.read_text())
    for topic, schema in json_schemas().items():
        assert set(_models(schema)) <= set(_models(old.get(topic, {}))), f"refresh the snapshot for {topic}"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m["properties"].pop("agent_id"), "field agent_id removed"),
        (
            lambda m: m["properties"].__setitem__("agent_id", {"type": "integer"}),
            "field agent_id changed type",
        ),
        (lambda m: m.setdefault("required", []).append("extra"), "field extra became required"),
        (
            lambda m: m["properties"].__setitem__("agent_id", {"type": "string", "enum": ["a"]}),
            "field agent_id changed type",
        ),
    ],
)
def test_the_checker_catches_breaking_changes(mutate: Any, expected: str) -> None:
    old = json_schemas()
    new = json.loads(json.dumps(old))
    mutate(new["switchboard.provisioning.commands"]["$defs"]["DeleteAgent"])
    assert any(expected in p for p in breaking_changes(old, new))


def test_a_value_added_to_an_enum_is_additive_and_one_removed_is_not() -> None:
    old = json_schemas()
    grown = json.loads(json.dumps(old))
    status = grown["switchboard.campaigns.events"]["$defs"]["CampaignRecipientUpdated"]["properties"][
        "status"
    ]
    status["enum"].append("some_new_status")
    assert breaking_changes(old, grown) == []
    assert any("field status changed type" in p for p in breaking_changes(grown, old))
