"""The SSRF guard's pinned path over TLS: the connection goes to the address resolved once, while
SNI, the certificate check and the Host header use the store's name.

A real TLS listener on 127.0.0.1 (certificates from a throwaway CA) records the SNI and the Host
header of each request. The stand-in stores run over https too in test_store_lookups.py (query-key
fallback); here the guard itself is exercised end to end.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bus.outbound import OutboundClient, OutboundFailed
from devinfra.standins.tls import Pki, make_pki

pytestmark = pytest.mark.integration


@dataclass
class TlsStore:
    """An https listener on 127.0.0.1 answering every request with a small JSON body."""

    port: int = 0
    sni: list[str | None] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


@pytest.fixture
async def tls_store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[TlsStore, Pki]]:
    serving_name: str = getattr(request, "param", "localhost")
    pki = make_pki(serving_name)
    cert_pem, key_pem = pki.leaves[serving_name]
    store = TlsStore()
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)

    def remember_sni(_sock: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        store.sni.append(server_name)

    context.sni_callback = remember_sni  # type: ignore[assignment]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if line.lower().startswith("host:"):
                store.hosts.append(line.split(":", 1)[1].strip())
        body = b'{"ok": true}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    store.port = server.sockets[0].getsockname()[1]
    async with server:
        yield store, pki


def guard(pki: Pki, allow: str) -> OutboundClient:
    trust = ssl.create_default_context(cadata=pki.ca_pem.decode())
    http = httpx.AsyncClient(verify=trust, follow_redirects=False, trust_env=False)
    return OutboundClient(http, allow_http=False, allow_hosts=frozenset({allow}), max_response_bytes=65536)


async def test_https_goes_to_the_pinned_address_with_the_store_name_in_sni_and_host(
    tls_store: tuple[TlsStore, Pki],
) -> None:
    store, pki = tls_store
    client = guard(pki, f"localhost:{store.port}")
    loop = asyncio.get_running_loop()
    response = await client.request(
        "GET", f"https://localhost:{store.port}/wp-json/wc/v3/products", deadline=loop.time() + 5
    )
    assert response.status_code == 200
    assert response.content == b'{"ok": true}'
    assert store.sni == ["localhost"]
    assert store.hosts == [f"localhost:{store.port}"]


@pytest.mark.parametrize("tls_store", ["store.example"], indirect=True)
async def test_a_certificate_for_another_name_is_refused(tls_store: tuple[TlsStore, Pki]) -> None:
    store, pki = tls_store
    client = guard(pki, f"localhost:{store.port}")
    loop = asyncio.get_running_loop()
    with pytest.raises(OutboundFailed) as failed:
        await client.request("GET", f"https://localhost:{store.port}/", deadline=loop.time() + 5)
    assert failed.value.code == "unreachable"
    assert store.hosts == []  # no request was sent over the unverified connection


async def test_the_pinned_address_is_not_accepted_in_place_of_the_name(
    tls_store: tuple[TlsStore, Pki],
) -> None:
    """Allowlisted, so only TLS can refuse it: a certificate for the name does not cover its address."""
    store, pki = tls_store
    client = guard(pki, f"127.0.0.1:{store.port}")
    loop = asyncio.get_running_loop()
    with pytest.raises(OutboundFailed):
        await client.request("GET", f"https://127.0.0.1:{store.port}/", deadline=loop.time() + 5)
    assert store.hosts == []
