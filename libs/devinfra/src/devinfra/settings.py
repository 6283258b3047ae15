"""The one place devinfra reads its environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PASSTHROUGH_ENV", "StackSettings", "find_repo_root"]

#: Environment variables handed to every service when set (services read these names themselves).
PASSTHROUGH_ENV: tuple[str, ...] = (
    "SWITCHBOARD_API_KEYS",
    "ELEVENLABS_API_KEY",
    "ELEVENLABS_BASE_URL",
    "ELEVENLABS_WEBHOOK_SECRET",
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_TOPIC_PREFIX",
    "GATEWAY_PORT",
    "TOOL_WEBHOOKS_PORT",
    "PROVISIONING_PORT",
    "TELEPHONY_PORT",
    "CAMPAIGNS_PORT",
    "NOTIFIER_PORT",
    "ELEVENLABS_SIM_PORT",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
    "EMAIL_API_URL",
    "DEFAULT_SENDER_EMAIL",
    "SWITCHBOARD_SECRET_KEY",
    "SWITCHBOARD_PREVIOUS_SECRET_KEYS",
    "SWITCHBOARD_SECRET_SALT",
    "OUTBOUND_ALLOW_HOSTS",
    "LOG_LEVEL",
    "LOG_JSON",
)


def find_repo_root(start: Path | None = None) -> Path:
    """Nearest ancestor holding the uv workspace (``uv.lock``); falls back to this file's checkout."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "uv.lock").exists() and (candidate / "pyproject.toml").exists():
            return candidate
    file_root = Path(__file__).resolve().parents[4]  # <repo>/libs/devinfra/src/devinfra/settings.py
    if (file_root / "pyproject.toml").exists():
        return file_root
    return here


class StackSettings(BaseSettings):
    """Environment of ``python -m devinfra.stack`` and the pytest plugin. Unset means "provide it"."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=True, extra="ignore")

    # infrastructure: unset -> embedded/generated
    KAFKA_BOOTSTRAP_SERVERS: str | None = None
    KAFKA_TOPIC_PREFIX: str | None = None
    DATABASE_URL: str | None = None
    ELEVENLABS_API_KEY: str | None = None
    ELEVENLABS_BASE_URL: str | None = None
    ELEVENLABS_WEBHOOK_SECRET: str | None = None
    SWITCHBOARD_SECRET_KEY: str | None = None
    SWITCHBOARD_API_KEYS: str | None = None

    # ports
    GATEWAY_PORT: int = 8000
    TOOL_WEBHOOKS_PORT: int = 8001
    PROVISIONING_PORT: int = 8010
    TELEPHONY_PORT: int = 8011
    CAMPAIGNS_PORT: int = 8012
    NOTIFIER_PORT: int = 8013
    ELEVENLABS_SIM_PORT: int = 8090

    # passed through untouched
    SMTP_HOST: str | None = None
    SMTP_PORT: str | None = None
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_STARTTLS: str | None = None
    EMAIL_API_URL: str | None = None
    DEFAULT_SENDER_EMAIL: str | None = None
    OUTBOUND_ALLOW_HOSTS: str | None = None
    SWITCHBOARD_PREVIOUS_SECRET_KEYS: str | None = None
    SWITCHBOARD_SECRET_SALT: str | None = None
    LOG_LEVEL: str | None = None
    LOG_JSON: str | None = None

    # devinfra's own knobs
    DEVSTACK_DIR: Path | None = Field(default=None, description="state dir; default <repo>/.devstack")
    DEVSTACK_READY_TIMEOUT: float = 60.0
    DEVSTACK_STOP_TIMEOUT: float = 5.0
    DEVSTACK_RESTART: bool = Field(
        default=True, description="restart a service that exits unexpectedly (false: stop the whole stack)"
    )
    DEVSTACK_SERVICES: str | None = Field(
        default=None, description="comma-separated service names to start (empty: none); unset: all"
    )

    @property
    def devstack_dir(self) -> Path:
        return self.DEVSTACK_DIR or find_repo_root() / ".devstack"

    @property
    def services(self) -> list[str] | None:
        if self.DEVSTACK_SERVICES is None:
            return None
        return [n.strip() for n in self.DEVSTACK_SERVICES.split(",") if n.strip()]

    def passthrough(self) -> dict[str, str]:
        """The PASSTHROUGH_ENV variables that are set, as strings."""
        out: dict[str, str] = {}
        for name in PASSTHROUGH_ENV:
            value = getattr(self, name, None)
            if value is not None and str(value) != "":
                out[name] = str(value)
        return out
