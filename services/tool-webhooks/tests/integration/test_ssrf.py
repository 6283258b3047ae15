"""SSRF corpus: store URLs pointing inside the network are refused before any connection is made.

A canary listener on 127.0.0.1 counts every connection; after the whole corpus it must have seen
exactly one — the probe this test makes itself to prove the canary works.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pytest

from .conftest import DEADLINE_S, Harness, Stores
from .test_ecommerce_tools import place_call, shopify_credentials, woo_credentials

pytestmark = pytest.mark.integration


def corpus(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",
        "http://localhost",
        f"http://2130706433:{port}",
        f"http://0x7f.0.0.1:{port}",
        f"http://0177.0.0.1:{port}",
        f"http://127.1:{port}",
        f"http://[::1]:{port}",
        f"http://[::ffff:127.0.0.1]:{port}",
        f"http://[::ffff:7f00:1]:{port}",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/latest/meta-data",
        "http://10.0.0.1",
        "http://192.168.1.1",
        "http://172.16.0.1",
        "http://100.64.0.1",
        "http://0.0.0.0",
        "http://[fd00::1]",
        "http://[fe80::1]",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{port}/_GET",
        f"ftp://127.0.0.1:{port}/",
        f"http://user:pass@127.0.0.1:{port}",
        "http://user:pass@example.com",
        f"http://127.0.0.1:{port}@example.com",
        "not a url",
    ]


async def _probe(port: int) -> None:
    def connect() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass

    await asyncio.to_thread(connect)


async def test_ssrf_corpus_reaches_no_local_listener(harness: Harness, stores: Stores) -> None:
    canary = stores.canary
    before = canary.connections
    for url in corpus(canary.port):
        for credentials in (woo_credentials(url), shopify_credentials(url)):
            conversation_id = await place_call(harness, credentials)
            for route, body in (
                ("ecommerce/products", {"query": uuid.uuid4().hex[:8]}),
                ("ecommerce/orders", {"order_number": "1001"}),
            ):
                response = await harness.tool(route, {"conversation_id": conversation_id, **body})
                assert response.status_code == 200, url
                answer = response.json()
                assert answer["error"] == "refused", (url, answer)
                assert answer["message"] == "I couldn't reach the store right now."
    await _probe(canary.port)
    deadline = time.monotonic() + DEADLINE_S
    while canary.connections < before + 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # polling with a deadline
    assert canary.connections == before + 1  # only our own probe


async def test_redirect_to_a_local_listener_is_not_followed(harness: Harness, stores: Stores) -> None:
    canary = stores.canary
    before = canary.connections
    stores.woo.mode = "redirect"
    stores.woo.redirect_to = f"http://127.0.0.1:{canary.port}/wp-json/wc/v3/products"
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    response = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": uuid.uuid4().hex[:8]}
    )
    assert response.json()["error"] == "redirect"
    assert response.json()["message"] == "I couldn't reach the store right now."
    assert len(stores.woo.requests) == 1
    await _probe(canary.port)
    deadline = time.monotonic() + DEADLINE_S
    while canary.connections < before + 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # polling with a deadline
    assert canary.connections == before + 1
