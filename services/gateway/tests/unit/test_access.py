"""The one table of route scopes covers every route, and the key format (gateway.access)."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.routing import APIRoute

from bus.logs import redact_query
from gateway import access, routes
from gateway.access import ADMIN, OPERATOR, READ, ROUTE_SCOPES, Scope, allows, required_scope


def _app_routes() -> set[str]:
    return {
        f"{method} {route.path}"
        for router in routes.ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def test_every_api_route_has_a_scope_and_every_listed_route_exists() -> None:
    app_routes = _app_routes()
    assert not sorted(app_routes - ROUTE_SCOPES.keys()), "add these routes to gateway.access.ROUTE_SCOPES"
    assert not sorted(ROUTE_SCOPES.keys() - app_routes), "these routes no longer exist"


@pytest.mark.parametrize("route", sorted(ROUTE_SCOPES))
def test_each_route_resolves_to_its_listed_scope(route: str) -> None:
    """What the guard resolves for a concrete path (before routing) is the table's entry."""
    method, template = route.split(" ", 1)
    concrete = template.replace("{", "x").replace("}", "")  # e.g. /agents/{agent_id} -> /agents/xagent_id
    assert required_scope(method, concrete) == ROUTE_SCOPES[route]
    assert required_scope(method.lower(), concrete + "/") == ROUTE_SCOPES[route]


def test_reads_are_read_writes_operator_and_administration_admin() -> None:
    for route, scope in ROUTE_SCOPES.items():
        method, path = route.split(" ", 1)
        if path.startswith(("/api/v1/admin/", "/api/v1/api-keys")):
            assert scope == ADMIN, route
        elif path.startswith("/api/v1/webhooks") and method != "GET":
            assert scope == ADMIN, route  # decides where call data is sent
        elif method == "GET":
            assert scope == READ, route
        else:
            assert scope == OPERATOR, route


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/api/v1/admin/webhooks/post-call", ADMIN),  # re-points where transcripts go
        ("POST", "/api/v1/webhooks", ADMIN),  # points call data at a customer's URL
        ("GET", "/api/v1/webhooks/wh_1/deliveries", READ),
        ("POST", "/api/v1/tools/tool_1/rotate-token", OPERATOR),
        ("POST", "/api/v1/batch-calling/submit", OPERATOR),  # literal, not /batch-calling/{job_id}
        ("GET", "/api/v1/email-templates/sessions", READ),
        ("HEAD", "/api/v1/agents", READ),
        ("GET", "/api/v1/not-a-route", ADMIN),  # unlisted: fail closed
        ("PUT", "/api/v1/agents/agent_1", ADMIN),
        ("GET", "/api/v1/agents/a/b/c", ADMIN),
    ],
)
def test_required_scope(method: str, path: str, scope: Scope) -> None:
    assert required_scope(method, path) == scope


def test_scopes_nest() -> None:
    assert [allows(READ, s) for s in Scope] == [True, False, False]
    assert [allows(OPERATOR, s) for s in Scope] == [True, True, False]
    assert [allows(ADMIN, s) for s in Scope] == [True, True, True]


def test_generated_keys_carry_their_id_and_only_their_hash_is_kept() -> None:
    one, two = access.generate_key(), access.generate_key()
    assert one.key_id != two.key_id and one.api_key != two.api_key
    assert one.api_key.startswith(f"sb_live_{one.key_id}_")
    assert access.key_id_of(one.api_key) == one.key_id
    assert one.secret_hash == hashlib.sha256(one.api_key.encode()).hexdigest() == access.hash_key(one.api_key)


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "sb_live_",
        "sb_live_0123456789abcdef_short",
        "sb_live_0123456789ABCDEF_" + "a" * 43,  # the id is lowercase hex
        "sb_live_0123456789abcdef_" + "a" * 43 + "x",
        " sb_live_0123456789abcdef_" + "a" * 43,
        "sk_dev_whatever",
    ],
)
def test_strings_not_shaped_like_a_stored_key_have_no_id(presented: str) -> None:
    assert access.key_id_of(presented) is None


def test_logs_never_show_a_generated_keys_secret() -> None:
    """bus.logs knows the key format too (libraries cannot import the gateway): kept in step here."""
    new = access.generate_key()
    assert redact_query(f"key={new.api_key} {new.api_key}") == (
        f"key={access.KEY_PREFIX}{new.key_id}_REDACTED {access.KEY_PREFIX}{new.key_id}_REDACTED"
    )


@pytest.mark.parametrize(
    ("headers", "presented"),
    [
        ({"authorization": "Bearer sb_live_k"}, "sb_live_k"),
        ({"authorization": "bearer   sb_live_k  "}, "sb_live_k"),  # the scheme is case-insensitive
        ({"x-api-key": "sb_live_k"}, "sb_live_k"),
        ({"authorization": "Bearer a", "x-api-key": "b"}, "a"),  # Authorization wins
        ({"authorization": "Basic dXNlcjpwdw==", "x-api-key": "b"}, "b"),  # not a bearer token
        ({}, ""),
    ],
)
def test_the_key_a_request_presents(headers: dict[str, str], presented: str) -> None:
    assert access.presented_api_key(headers) == presented
