"""Transport selection from settings (no network)."""

from __future__ import annotations

import httpx

from bus.secrets import new_key
from notifier.settings import Settings
from notifier.transports import HttpTransport, SmtpTransport, make_transport

KEY = {"SWITCHBOARD_SECRET_KEY": new_key()}


async def test_email_api_url_selects_http_else_smtp() -> None:
    async with httpx.AsyncClient() as http:
        assert isinstance(make_transport(Settings.model_validate(KEY), http), SmtpTransport)
        api = Settings.model_validate({**KEY, "EMAIL_API_URL": "http://127.0.0.1:1/send"})
        assert isinstance(make_transport(api, http), HttpTransport)


def test_secrets_are_not_in_the_settings_repr() -> None:
    settings = Settings.model_validate({**KEY, "SMTP_PASSWORD": "pw-canary", "EMAIL_API_KEY": "key-canary"})
    assert "canary" not in repr(settings)
    assert settings.secrets() == ["pw-canary", "key-canary"]
