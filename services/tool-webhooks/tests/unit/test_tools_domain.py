"""Pure rules of the mid-call tools: tool tokens, rendering, invocation keys, the SSRF address check."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from bus.outbound import OutboundRefused, check_url, forbidden_address
from tool_webhooks import domain, stores

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("generation", "known", "previous_until", "deleted", "refusal"),
    [
        (1, 1, None, False, None),  # the current token
        (3, 2, None, False, None),  # newer: its rotation event is on its way
        (1, 2, NOW + timedelta(seconds=1), False, None),  # the previous one, within its grace period
        (1, 2, NOW, False, "superseded"),  # ... and at its end
        (1, 2, None, False, "superseded"),
        (1, 3, NOW + timedelta(hours=1), False, "superseded"),  # two rotations ago
        (2, 2, None, True, "deleted"),
        (1, None, None, True, "deleted"),  # deleted before its creation event arrived
        (1, None, None, False, "unknown_tool"),
    ],
)
def test_which_generations_a_tool_accepts(
    generation: int, known: int | None, previous_until: datetime | None, deleted: bool, refusal: str | None
) -> None:
    assert (
        domain.tool_token_refusal(
            generation, known_generation=known, previous_valid_until=previous_until, deleted=deleted, now=NOW
        )
        == refusal
    )


def test_render_is_plain_substitution() -> None:
    values = {"date": "Monday", "evil": "{{date}}"}
    assert (
        domain.render("{{date}} {{ date }} {{missing}} {{evil}} {{ a.b }}", values)
        == "Monday Monday  {{date}} {{ a.b }}"
    )
    assert domain.render_subject("Hi {{date}}\r\n", {"date": "a\r\nBcc: x\u2028y"}) == "Hi a Bcc: x y"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (
            "your order =?UTF-8?Q?=0D=0A?=Reply-To: b@attacker.example",
            "your order Reply-To: b@attacker.example",
        ),
        ("a =?utf-8?b?DQo=?=Reply-To: b@attacker.example", "a Reply-To: b@attacker.example"),
        ("a =?x-unknown?q?=0A?= b", "a b"),
        ("a =?utf-8?q?=3D=3Futf-8=3Fb=3FDQo=3D=3F=3D?= b", "a b"),  # an encoded-word inside one
        ("a\rb\nc\x00d\x0be\u2028f\u2029g\x85h", "a b c d e f g h"),
        ("=?utf-8?q?caf=C3=A9?= ok", "café ok"),
        ("Zoë Ünal", "Zoë Ünal"),
        ("50% =? off", "50% =? off"),
    ],
)
def test_header_text_flattens_raw_and_encoded_line_breaks(value: str, text: str) -> None:
    assert domain.header_text(value) == text
    assert domain.render_subject("{{v}}", {"v": value}) == text
    assert domain.one_line(value) == text


def test_placeholders_and_parameters() -> None:
    params = domain.template_params([{"name": "date", "required": True}, {"name": "n"}, {"bad": 1}])
    values = domain.parameter_values(params, {"date": 5, "n": " ", "other": "x"})
    assert values == {"date": "5"}
    assert domain.missing_required(params, {}) == ["date"]
    merged = domain.placeholder_values({"date": "d", "email": "spoof@x"}, "Jane", "jane@example.com")
    assert merged["email"] == "jane@example.com" and merged["name"] == "Jane" and merged["date"] == "d"
    assert domain.mask_email("jane@example.com") == "j***@example.com"


def test_invocation_key_is_canonical() -> None:
    a = domain.invocation_key("c", "t", {"x": "1", "y": "2"})
    assert a == domain.invocation_key("c", "t", {"y": "2", "x": "1"})
    assert a != domain.invocation_key("c", "t", {"x": "1"})
    assert (
        domain.invocation_message_id(a, 1)
        == domain.invocation_message_id(a, 1)
        != domain.invocation_message_id(a, 2)
    )


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.31.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "2002:7f00:1::",
        "fd00:ec2::254",
        "64:ff9b::7f00:1",
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert not forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://h/",
        "ftp://h/",
        "http://example.com",
        "https://u:p@example.com",
        "https://example.com@evil.com",
        "https:///path",
        "https://exa mple.com",
        "https://example.com:0/",
        "https://example.com\r\nX: y",
    ],
)
def test_urls_refused_before_any_lookup(url: str) -> None:
    with pytest.raises(OutboundRefused):
        check_url(url, allow_http=False)


def test_credentials_parsing_and_search_terms() -> None:
    woo = stores.parse_credentials(
        "woocommerce", '{"base_url": "https://s", "api_key": "ck", "api_secret": "cs"}'
    )
    assert woo is not None and woo.api_secret == "cs" and "cs" not in repr(woo)
    assert stores.parse_credentials("shopify", '{"base_url": "https://s", "api_key": "k"}') is None
    assert stores.parse_credentials(None, "not json") is None
    assert stores.search_terms('mug" OR title:* (x)') == "mug OR title x"
    assert stores.order_name('#10-01"') == "10-01"
    assert stores.retry_after_s("2", 0) == 2.0 and stores.retry_after_s("soon", 0) is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("+14155550100", "(415) 555-0100"),
        ("+1 415 555 0100", "415.555.0100"),
        ("+442079460958", "020 7946 0958"),
        ("0044 20 7946 0958", "+44 (0)20 7946 0958"),
        ("+44 (0) 20 7946 0958", "020 7946 0958"),
    ],
)
def test_same_phone_however_written(a: str, b: str) -> None:
    assert domain.same_phone(a, b) and domain.same_phone(b, a)


@pytest.mark.parametrize(
    ("a", "b"), [("+14155550100", "+14155550199"), ("+14155550100", "0100"), ("", ""), (None, "+1415")]
)
def test_different_or_too_short_phones(a: str | None, b: str | None) -> None:
    assert not domain.same_phone(a, b)


def test_same_email_and_postcode() -> None:
    assert domain.same_email(" Jane@Example.COM ", "jane@example.com")
    assert not domain.same_email("jane@example.com", "jane@example.org")
    assert not domain.same_email(None, None) and not domain.same_email("", "")
    assert domain.same_postcode("sw1a1aa", "SW1A 1AA") and domain.same_postcode("SW1A-1AA", "sw1a 1aa")
    assert domain.same_postcode("94103", "94103-1234") and not domain.same_postcode("94103", "94104-1234")
    assert not domain.same_postcode("SW1A 1AB", "SW1A 1AA") and not domain.same_postcode(" ", " ")


def test_an_order_matches_its_caller_by_any_one_contact() -> None:
    order = ("Jane@Example.com", "(415) 555-0100", "SW1A 1AA")
    assert domain.order_matches_caller(domain.Caller(session_email="jane@example.com"), *order)
    assert domain.order_matches_caller(domain.Caller(session_phone="+14155550100"), *order)
    assert domain.order_matches_caller(domain.Caller(given_email="JANE@example.com"), *order)
    assert domain.order_matches_caller(domain.Caller(given_postcode="sw1a1aa"), *order)
    assert not domain.order_matches_caller(domain.Caller(), *order)
    assert not domain.order_matches_caller(domain.Caller(given_postcode="sw1a1aa"), "a@b.c", None, None)


def test_order_numbers_as_callers_say_them() -> None:
    assert (
        stores.order_name("#1001") == "1001" == stores.order_name("Order 1001") == stores.order_name(" 1001 ")
    )
    assert stores.order_name("INV-1001") == "INV-1001"
    assert stores.same_order_number("#1001", "1001") and stores.same_order_number("inv-1001", "INV-1001")
    assert not stores.same_order_number("11001", "1001") and not stores.same_order_number(None, "1001")


@pytest.mark.parametrize(
    ("cost", "wait"),
    [
        (
            {
                "requestedQueryCost": 10,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 50.0},
            },
            0.2,
        ),
        (
            {
                "requestedQueryCost": 10,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 25, "restoreRate": 50.0},
            },
            0.0,
        ),
        (
            {
                "requestedQueryCost": 2000,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 50.0},
            },
            None,
        ),
        (
            {
                "requestedQueryCost": 10,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 0},
            },
            None,
        ),
        ({"requestedQueryCost": 10}, None),
        (
            {
                "requestedQueryCost": "10",
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 50.0},
            },
            None,
        ),
    ],
)
def test_throttle_wait_from_the_cost_bucket(cost: dict[str, object], wait: float | None) -> None:
    assert stores.throttle_wait_s({"cost": cost}) == wait
    assert stores.throttle_wait_s(None) is None
