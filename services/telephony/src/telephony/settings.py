"""The telephony service's one settings class: bus/database settings plus ElevenLabs and timing."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bus.secrets import SecretKeySettings


class Settings(SecretKeySettings):
    """Environment variables read by the telephony service (and nothing else reads any)."""

    elevenlabs_api_key: SecretStr = Field(default=SecretStr(""), alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str = Field(default="https://api.elevenlabs.io", alias="ELEVENLABS_BASE_URL")
    host: str = Field(default="127.0.0.1", alias="TELEPHONY_HOST")
    port: int = Field(default=8011, ge=0, le=65535, alias="TELEPHONY_PORT")
    upstream_timeout_s: float = Field(default=10.0, gt=0, alias="TELEPHONY_UPSTREAM_TIMEOUT_S")
    upstream_max_retries: int = Field(default=3, ge=0, alias="TELEPHONY_UPSTREAM_MAX_RETRIES")
    upstream_max_backoff_s: float = Field(default=10.0, ge=0, alias="TELEPHONY_UPSTREAM_MAX_BACKOFF_S")
    upstream_initial_backoff_s: float = Field(default=0.5, ge=0, alias="TELEPHONY_UPSTREAM_INITIAL_BACKOFF_S")
    reconcile_interval_s: float = Field(default=15.0, gt=0, alias="TELEPHONY_RECONCILE_INTERVAL_S")
    recovery_settle_s: float = Field(
        default=5.0,
        ge=0,
        alias="TELEPHONY_RECOVERY_SETTLE_S",
        description="After a crash, how long an attempt must have existed before 'no conversation upstream' "
        "is taken to mean the dial never reached ElevenLabs (a dial in flight at the crash shows up by then).",
    )
    lookup_patience_s: float = Field(
        default=60.0,
        ge=0,
        alias="TELEPHONY_LOOKUP_PATIENCE_S",
        description="How long, from a dial's first delivery, telephony keeps asking ElevenLabs, when it cannot "
        "answer, whether the attempt's conversation exists (backing off, honouring Retry-After) before the "
        "bus retries it and, after BUS_MAX_ATTEMPTS, dead-letters it: the person may have been called, so "
        "the answer is worth waiting for. A redelivery past it asks once (dials are handled one at a time: "
        "waiting the whole patience per delivery would hold every other dial that much longer).",
    )
    owner_timeout_s: float = Field(
        default=10.0,
        gt=0,
        alias="TELEPHONY_OWNER_TIMEOUT_S",
        description="A command's handler owns its attempt through a PostgreSQL lock kept alive by a "
        "heartbeat; a worker silent this long (paused, stalled, cut off) loses it, so a second "
        "delivery may recover, and it checks before every dial that it still owns the attempt.",
    )
    reconcile_after_s: float = Field(default=600.0, ge=0, alias="TELEPHONY_RECONCILE_AFTER_S")
    reconcile_give_up_s: float = Field(default=7200.0, ge=0, alias="TELEPHONY_RECONCILE_GIVE_UP_S")
    reconcile_batch_size: int = Field(default=50, ge=1, alias="TELEPHONY_RECONCILE_BATCH_SIZE")
    agent_cache_ttl_s: float = Field(
        default=30.0,
        ge=0,
        alias="TELEPHONY_AGENT_CACHE_TTL_S",
        description="How long an agent's config (and its tools) fetched to check a call's dynamic variables "
        "is reused; 0 fetches it for every call.",
    )
