"""The two ways an e-mail leaves: SMTP (aiosmtplib) or an HTTP e-mail API (EMAIL_API_URL).

Each `send` either returns (accepted) or raises `EmailError`, classified as transient (retry may
help: connection refused, a timeout before the message was handed over, SMTP 4xx, HTTP 429/5xx) or
permanent (SMTP 5xx, HTTP 4xx, bad configuration). A lost connection or a timeout *after* the
message was handed over is reported permanent: the server may have accepted it, and a duplicate
e-mail is worse than a missing one.
"""

from __future__ import annotations

import contextlib
from typing import Literal, Protocol

import aiosmtplib
import httpx

from notifier.domain import (
    UNKNOWN_AFTER_HANDOFF,
    EmailError,
    OutgoingEmail,
    api_payload,
    http_status_is_transient,
    parse_retry_after,
    redact,
    smtp_code_is_transient,
)
from notifier.settings import Settings

TransportName = Literal["smtp", "http"]


class Transport(Protocol):
    name: TransportName

    async def send(self, outgoing: OutgoingEmail) -> None: ...


def _reply_error(stage: str, exc: aiosmtplib.SMTPResponseException) -> EmailError:
    return EmailError(
        f"SMTP {stage} rejected: {exc.code} {exc.message}", permanent=not smtp_code_is_transient(exc.code)
    )


class SmtpTransport:
    name: TransportName = "smtp"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        password = s.smtp_password.get_secret_value()
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=password if s.smtp_username else None,
            timeout=s.smtp_timeout_s,
            use_tls=s.smtp_tls,
            # Explicit: never upgrade opportunistically or silently skip a required STARTTLS.
            start_tls=False if s.smtp_tls else s.smtp_starttls,
        )

    async def send(self, outgoing: OutgoingEmail) -> None:
        try:
            await self._send(outgoing)
        except EmailError as exc:
            # Error text is kept and emitted: it must never carry the password.
            exc.error = redact(exc.error, self._settings.secrets())
            raise

    async def _send(self, outgoing: OutgoingEmail) -> None:
        client = self._client()
        try:
            # Before DATA nothing can have been delivered: every failure here is safe to retry.
            try:
                await client.connect()
                await client.mail(outgoing.from_email)
                await client.rcpt(outgoing.to_email)  # the one and only recipient
            except aiosmtplib.SMTPResponseException as exc:
                raise _reply_error("session", exc) from None
            except aiosmtplib.SMTPNotSupported as exc:
                raise EmailError(
                    f"SMTP server does not support a required feature: {exc}", permanent=True
                ) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise EmailError(f"SMTP connection failed: {exc!r}", permanent=False) from None
            try:
                await client.data(outgoing.wire)
            except aiosmtplib.SMTPResponseException as exc:
                raise _reply_error("message", exc) from None  # a definite answer: nothing accepted
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise EmailError(f"{UNKNOWN_AFTER_HANDOFF} ({exc!r})", permanent=True) from None
            with contextlib.suppress(Exception):  # accepted; a failed QUIT changes nothing
                await client.quit()
        finally:
            client.close()


class HttpTransport:
    name: TransportName = "http"

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        assert settings.email_api_url
        self._url = settings.email_api_url
        self._key = settings.email_api_key.get_secret_value()
        self._secrets = settings.secrets()
        self._timeout = settings.email_api_timeout_s
        self._http = http

    async def send(self, outgoing: OutgoingEmail) -> None:
        try:
            await self._send(outgoing)
        except EmailError as exc:
            # Error text is kept and emitted (and may echo the request): never the API key.
            exc.error = redact(exc.error, self._secrets)
            raise

    async def _send(self, outgoing: OutgoingEmail) -> None:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            response = await self._http.post(
                self._url, json=api_payload(outgoing), headers=headers, timeout=self._timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never reached the API.
            raise EmailError(f"e-mail API unreachable: {exc!r}", permanent=False) from None
        except httpx.HTTPError as exc:
            raise EmailError(f"{UNKNOWN_AFTER_HANDOFF} ({exc!r})", permanent=True) from None
        if response.is_success:
            return
        detail = response.text[:300]
        raise EmailError(
            f"e-mail API answered {response.status_code}: {detail}",
            permanent=not http_status_is_transient(response.status_code),
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )


def make_transport(settings: Settings, http: httpx.AsyncClient) -> Transport:
    if settings.email_api_url:
        return HttpTransport(settings, http)
    return SmtpTransport(settings)
