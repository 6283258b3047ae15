"""The notifier's one settings class: bus/database settings plus the mail transport and retries."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bus.settings import BusSettings


class Settings(BusSettings):
    """Environment variables read by the notifier (and nothing else reads any).

    `SMTP_PASSWORD` and `EMAIL_API_KEY` are `SecretStr`: they never appear in reprs or logs.
    """

    host: str = Field(default="127.0.0.1", alias="NOTIFIER_HOST")
    port: int = Field(default=8013, ge=0, le=65535, alias="NOTIFIER_PORT")

    default_sender_email: str | None = Field(default=None, alias="DEFAULT_SENDER_EMAIL")

    # SMTP (used unless EMAIL_API_URL is set).
    smtp_host: str = Field(default="127.0.0.1", alias="SMTP_HOST")
    smtp_port: int = Field(default=25, ge=1, le=65535, alias="SMTP_PORT")
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME")
    smtp_password: SecretStr = Field(default=SecretStr(""), alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=False, alias="SMTP_STARTTLS")
    smtp_tls: bool = Field(default=False, alias="SMTP_TLS")
    smtp_timeout_s: float = Field(default=30.0, gt=0, alias="SMTP_TIMEOUT_S")

    # HTTP e-mail API (spec §1); when set it replaces SMTP.
    email_api_url: str | None = Field(default=None, alias="EMAIL_API_URL")
    email_api_key: SecretStr = Field(default=SecretStr(""), alias="EMAIL_API_KEY")
    email_api_timeout_s: float = Field(default=30.0, gt=0, alias="EMAIL_API_TIMEOUT_S")

    # In-process retries of transient failures.
    max_attempts: int = Field(default=4, ge=1, alias="NOTIFIER_MAX_ATTEMPTS")
    backoff_s: float = Field(default=0.5, ge=0, alias="NOTIFIER_BACKOFF_S")
    max_backoff_s: float = Field(default=30.0, ge=0, alias="NOTIFIER_MAX_BACKOFF_S")

    def secrets(self) -> list[str]:
        """Configured secret values, to redact from any error text we keep or emit."""
        values = [self.smtp_password.get_secret_value(), self.email_api_key.get_secret_value()]
        return [v for v in values if v]
