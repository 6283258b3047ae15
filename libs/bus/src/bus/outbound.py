"""The one way a service talks to a URL a caller gave us: an SSRF guard in front of every request.

Used by tool-webhooks (store base URLs) and the notifier (webhook target URLs); the gateway checks
a target with `check_target` before accepting it. Such URLs are untrusted until:
- its scheme is https (http only when the caller allows it) and it embeds no credentials;
- its host resolves (ONCE, getaddrinfo) only to public addresses: loopback, private, link-local,
  multicast, reserved, unspecified, shared (CGNAT), cloud metadata, IPv6 ULA/link-local and IPv4
  addresses embedded in IPv6 (mapped, compatible, 6to4, NAT64) are refused — unless `host[:port]`
  is on the OUTBOUND_ALLOW_HOSTS deployment allowlist;
then the request connects to that PINNED address (no second lookup, so no DNS rebinding), with the
original name in the Host header and as TLS SNI / certificate name. Redirects are never followed
(a 3xx is an error), responses are capped (streamed) and every step is bounded by the caller's
deadline.

Query strings carry secrets and personal data (WooCommerce keys when a host strips the
Authorization header, a caller's e-mail as a search term): the URL httpx logs for each request
("HTTP Request: GET …" at INFO) has every query value redacted by `bus.logs`, like every service's.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

import httpx

from bus.logs import redact_http_client_logs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata endpoints that are not already covered by the non-global ranges.
_METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("192.0.0.192"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_COMPATIBLE = ipaddress.ip_network("::/96")


class OutboundRefused(Exception):
    """The URL may not be fetched (scheme, credentials, forbidden address, unresolvable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutboundFailed(Exception):
    """The request was allowed but failed: timeout, connection error, redirect, too large.
    `status_code`: the status the server answered with, when it answered (a redirect, a reply
    past the size cap)."""

    def __init__(self, code: str, detail: str, status_code: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status_code = status_code


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes


def forbidden_address(ip: IPAddress) -> bool:
    """True for every address a caller's URL must never resolve to (see the module docstring)."""
    if ip in _METADATA:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: IPAddress | None = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and int(ip) > 1 and any(ip in n for n in (_COMPATIBLE, _NAT64, _NAT64_LOCAL)):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and forbidden_address(embedded):
            return True
        if ip.is_site_local:
            return True
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _basic(auth: tuple[str, str] | None) -> dict[str, str]:
    if auth is None:
        return {}
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def check_url(url: str, *, allow_http: bool) -> SplitResult:
    """Syntax checks (no I/O): scheme, host present, no userinfo. Raises `OutboundRefused`."""
    if any(c in url for c in "\r\n\t\x00 "):
        raise OutboundRefused("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused("URL is not valid") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or (scheme == "http" and not allow_http):
        raise OutboundRefused(f"scheme {scheme or '(none)'!r} is not allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise OutboundRefused("credentials in URLs are not allowed")
    if not parts.hostname:
        raise OutboundRefused("URL has no host")
    if port == 0:
        raise OutboundRefused("port 0 is not allowed")
    return parts


def parse_allow_hosts(raw: str) -> frozenset[str]:
    """OUTBOUND_ALLOW_HOSTS (comma-separated `host` or `host:port`, IPv6 in brackets) as a set."""
    return frozenset(h.strip().lower() for h in raw.split(",") if h.strip())


def allowlisted(allow_hosts: frozenset[str], host: str, port: int) -> bool:
    """True when `host` (any port) or `host:port` is on the allowlist."""
    name = host.lower()
    bracketed = f"[{name}]" if ":" in name else name
    return name in allow_hosts or f"{bracketed}:{port}" in allow_hosts


async def resolve_public(host: str, port: int, deadline: float, *, allow_hosts: frozenset[str]) -> IPAddress:
    """Resolve once; every address must pass (unless allowlisted); the first one is pinned.
    `deadline` is event-loop time. Raises `OutboundRefused` or `OutboundFailed("timeout")`."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
            timeout=max(deadline - loop.time(), 0.001),
        )
    except TimeoutError as exc:
        raise OutboundFailed("timeout", "name resolution timed out") from exc
    except (OSError, UnicodeError) as exc:
        raise OutboundRefused("host does not resolve") from exc
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    if not addresses:
        raise OutboundRefused("host does not resolve")
    if not allowlisted(allow_hosts, host, port) and any(forbidden_address(a) for a in addresses):
        raise OutboundRefused("host resolves to a forbidden address")
    return addresses[0]


async def check_target(url: str, *, allow_http: bool, allow_hosts: frozenset[str], timeout_s: float) -> None:
    """What `OutboundClient.request` would refuse before connecting, checked now (a caller giving a
    URL to be used later gets the refusal at once). Raises `OutboundRefused`; a resolution that
    times out is `OutboundRefused` too (the URL cannot be shown to be safe)."""
    parts = check_url(url, allow_http=allow_http)
    assert parts.hostname is not None  # check_url guarantees it
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        await resolve_public(parts.hostname, port, loop.time() + timeout_s, allow_hosts=allow_hosts)
    except OutboundFailed as exc:
        raise OutboundRefused("host did not resolve in time") from exc


class OutboundClient:
    """Every request to a caller's URL goes through `request`; nothing else opens sockets to them."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        allow_http: bool,
        allow_hosts: frozenset[str],
        max_response_bytes: int,
    ) -> None:
        # `http` must be built with follow_redirects=False (the default); we also pass it per request.
        self._http = http
        self._allow_http = allow_http
        self._allow_hosts = allow_hosts
        self._max_bytes = max_response_bytes
        redact_http_client_logs()

    def _allowlisted(self, host: str, port: int) -> bool:
        return allowlisted(self._allow_hosts, host, port)

    async def _resolve(self, host: str, port: int, deadline: float) -> IPAddress:
        return await resolve_public(host, port, deadline, allow_hosts=self._allow_hosts)

    async def request(
        self,
        method: str,
        url: str,
        *,
        deadline: float,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        auth: tuple[str, str] | None = None,
        allow_http: bool | None = None,
    ) -> OutboundResponse:
        """One guarded request, finished (body read) before `deadline` (event-loop time).

        `content` sends these exact bytes (e.g. a signed body); `allow_http` overrides the client's
        setting for this request. Raises `OutboundRefused` before connecting, `OutboundFailed` after.
        """
        parts = check_url(url, allow_http=self._allow_http if allow_http is None else allow_http)
        host = parts.hostname
        assert host is not None  # check_url guarantees it
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        ip = await self._resolve(host, port, deadline)
        ip_host = f"[{ip}]" if ip.version == 6 else str(ip)
        query = parts.query
        if params:
            query = "&".join(q for q in (query, urlencode({k: str(v) for k, v in params.items()})) if q)
        pinned = urlunsplit((scheme, f"{ip_host}:{port}", parts.path or "/", query, ""))
        default_port = port == (443 if scheme == "https" else 80)
        host_header = host if default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if default_port else f"[{host}]:{port}"
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise OutboundFailed("timeout", "no time left for the request")
        request = self._http.build_request(
            method,
            pinned,
            params=None,
            # Connection: close — a pooled connection keyed by IP must never carry another host's
            # request under the first host's TLS name.
            headers={**(headers or {}), **_basic(auth), "Host": host_header, "Connection": "close"},
            json=json,
            content=content,
            timeout=httpx.Timeout(remaining),
            extensions={"sni_hostname": host},
        )
        try:
            async with asyncio.timeout(remaining):
                response = await self._http.send(request, stream=True, follow_redirects=False)
                try:
                    if 300 <= response.status_code < 400:
                        raise OutboundFailed(
                            "redirect",
                            f"answered {response.status_code} (redirects are not followed)",
                            response.status_code,
                        )
                    declared = response.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
                        raise OutboundFailed(
                            "too_large", "response exceeds the size cap", response.status_code
                        )
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self._max_bytes:
                            raise OutboundFailed(
                                "too_large", "response exceeds the size cap", response.status_code
                            )
                        chunks.append(chunk)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise OutboundFailed("timeout", "no answer in time") from exc
        except httpx.TimeoutException as exc:
            raise OutboundFailed("timeout", "no answer in time") from exc
        except httpx.HTTPError as exc:
            raise OutboundFailed("unreachable", type(exc).__name__) from exc
        return OutboundResponse(response.status_code, response.headers, b"".join(chunks))
