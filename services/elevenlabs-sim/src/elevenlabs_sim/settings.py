"""Runtime settings of the simulator, read from ``ELEVENLABS_SIM_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ELEVENLABS_SIM_", extra="ignore")

    api_key: str = "sim-key"
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    latency_ms: int = Field(default=0, ge=0)
    latency_jitter_ms: int = Field(default=0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int | None = None
    # Simulated calls (also changeable at runtime through ``POST /_sim/config``).
    call_duration_ms: int = Field(default=1000, ge=0)
    ring_ms: int = Field(default=200, ge=0)
    processing_ms: int = Field(default=50, ge=0)
    max_concurrent_calls: int = Field(default=0, ge=0)  # 0 = unlimited
    webhook_retries: int = Field(default=0, ge=0)
    # A workspace webhook with `retry_enabled` retries a failed post_call_transcription delivery
    # after these delays (ElevenLabs' documented schedule: immediately, 30 s, 2 min, 8 min, 30 min).
    webhook_retry_delays_ms: list[int] = Field(
        default_factory=lambda: [0, 30_000, 120_000, 480_000, 1_800_000]
    )
    refuse_number_suffix: str = "0000"  # dialling a number ending in this → success:false; "" = never
