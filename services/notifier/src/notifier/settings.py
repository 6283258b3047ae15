"""The notifier's one settings class: bus/database settings plus the mail transport and retries."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bus.secrets import SecretKeySettings


class Settings(SecretKeySettings):
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

    # Webhooks to the customer's systems (README "Webhooks"); their signing secrets are stored
    # encrypted (SWITCHBOARD_SECRET_KEY, see bus.secrets).
    outbound_allow_hosts: str = Field(default="", alias="OUTBOUND_ALLOW_HOSTS")
    webhooks_timeout_s: float = Field(default=10.0, gt=0, alias="WEBHOOKS_TIMEOUT_S")
    webhooks_retry_base_s: float = Field(default=30.0, gt=0, alias="WEBHOOKS_RETRY_BASE_S")
    webhooks_retry_max_s: float = Field(default=3600.0, gt=0, alias="WEBHOOKS_RETRY_MAX_S")
    webhooks_retry_window_s: float = Field(default=86400.0, gt=0, alias="WEBHOOKS_RETRY_WINDOW_S")
    webhooks_disable_after_failures: int = Field(default=10, ge=1, alias="WEBHOOKS_DISABLE_AFTER_FAILURES")
    webhooks_disable_after_s: float = Field(default=43200.0, ge=0, alias="WEBHOOKS_DISABLE_AFTER_S")
    webhooks_concurrency: int = Field(default=10, ge=1, alias="WEBHOOKS_CONCURRENCY")
    webhooks_poll_interval_s: float = Field(default=1.0, gt=0, alias="WEBHOOKS_POLL_INTERVAL_S")
    webhooks_max_response_bytes: int = Field(default=65536, ge=1024, alias="WEBHOOKS_MAX_RESPONSE_BYTES")
    webhooks_retention_hours: float = Field(default=168.0, ge=0, alias="WEBHOOKS_RETENTION_HOURS")

    @property
    def webhooks_lease_s(self) -> float:
        """How long a claimed delivery is this worker's: its request's timeout plus room to record
        the answer. A worker silent longer (paused, cut off) loses it to the next claim."""
        return self.webhooks_timeout_s + 30.0

    def secrets(self) -> list[str]:
        """Configured secret values, to redact from any error text we keep or emit."""
        values = [self.smtp_password.get_secret_value(), self.email_api_key.get_secret_value()]
        return [v for v in values if v]
