"""The campaigns service's one settings class: bus/database settings plus scheduling knobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bus.secrets import SecretKeySettings


class Settings(SecretKeySettings):
    """Environment variables read by the campaigns service (and nothing else reads any)."""

    host: str = Field(default="127.0.0.1", alias="CAMPAIGNS_HOST")
    port: int = Field(default=8012, ge=0, le=65535, alias="CAMPAIGNS_PORT")
    tick_s: float = Field(default=0.2, gt=0, alias="CAMPAIGNS_TICK_S")
    default_concurrency: int = Field(default=10, ge=1, alias="CAMPAIGNS_DEFAULT_CONCURRENCY")
    global_concurrency: int = Field(default=50, ge=1, alias="CAMPAIGNS_GLOBAL_CONCURRENCY")
    retry_delay_scale: float = Field(default=1.0, ge=0, alias="CAMPAIGNS_RETRY_DELAY_SCALE")
    rate_limit_backoff_s: float = Field(default=2.0, ge=0, alias="CAMPAIGNS_RATE_LIMIT_BACKOFF_S")
    attempt_timeout_s: float = Field(default=7200.0, gt=0, alias="CAMPAIGNS_ATTEMPT_TIMEOUT_S")
    failure_window: int = Field(default=20, ge=1, alias="CAMPAIGNS_FAILURE_WINDOW")
    failure_pause_ratio: float = Field(default=0.8, ge=0, le=1, alias="CAMPAIGNS_FAILURE_PAUSE_RATIO")
    fatal_dial_failures: int = Field(default=3, ge=1, alias="CAMPAIGNS_FATAL_DIAL_FAILURES")
    configuration_refusals: int = Field(
        default=3,
        ge=1,
        alias="CAMPAIGNS_CONFIGURATION_REFUSALS",
        description="Consecutive carrier refusals that blame our configuration (bad Twilio credentials, trial "
        "account, geo permissions, SIP 401/403/407) after which the campaign fails instead of dialling on.",
    )
    max_attempts_per_number_24h: int = Field(
        default=3,
        ge=1,
        alias="CAMPAIGNS_MAX_ATTEMPTS_PER_NUMBER_24H",
        description="Dial attempts per number per rolling 24 h across every campaign; a recipient over it waits.",
    )
    budget_call_estimate_s: float = Field(
        default=60.0,
        ge=0,
        alias="CAMPAIGNS_BUDGET_CALL_ESTIMATE_S",
        description="Seconds a call is assumed to last for a campaign's max_total_minutes until one of "
        "its calls lasted longer (then its longest call).",
    )
    quiet_hours_file: Path | None = Field(
        default=None,
        alias="QUIET_HOURS_FILE",
        description="Platform quiet-hours rules (YAML, shape in contracts/data/quiet_hours.yaml, the default); "
        "the gateway reads the same variable for single calls.",
    )
    progress_interval_s: float = Field(default=1.0, ge=0, alias="CAMPAIGNS_PROGRESS_INTERVAL_S")
    insert_batch_size: int = Field(default=1000, ge=1, alias="CAMPAIGNS_INSERT_BATCH_SIZE")
    dispatch_batch_size: int = Field(default=100, ge=1, alias="CAMPAIGNS_DISPATCH_BATCH_SIZE")
