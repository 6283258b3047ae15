"""The gateway's one settings class."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from pydantic import Field

from bus.secrets import SecretKeySettings

VERSION = "1.0.0"


class Settings(SecretKeySettings):
    api_keys: str = Field(default="", alias="SWITCHBOARD_API_KEYS", description="Comma-separated API keys.")
    host: str = Field(default="127.0.0.1", alias="GATEWAY_HOST")
    port: int = Field(default=8000, alias="GATEWAY_PORT")
    internal_base_url: str | None = Field(
        default=None,
        alias="GATEWAY_INTERNAL_URL",
        description="Base URL other services use to fetch uploads from the gateway (default: own host:port).",
    )
    elevenlabs_api_key: str = Field(default="", alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str = Field(default="https://api.elevenlabs.io", alias="ELEVENLABS_BASE_URL")
    outbound_allow_hosts: str = Field(
        default="",
        alias="OUTBOUND_ALLOW_HOSTS",
        description="host[:port] a webhook URL may name although private (and over http).",
    )
    quiet_hours_file: Path | None = Field(
        default=None,
        alias="QUIET_HOURS_FILE",
        description="Platform quiet-hours rules refusing single calls (default: the shipped "
        "contracts/data/quiet_hours.yaml); the campaigns service reads the same variable.",
    )
    reply_timeout_s: float = Field(default=10.0, alias="GATEWAY_REPLY_TIMEOUT_S")
    kb_max_upload_bytes: int = Field(default=20 * 1024 * 1024, alias="KB_MAX_UPLOAD_BYTES")
    # Every request body (gateway.guard); uploads and batch submissions have their own caps.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, alias="GATEWAY_MAX_BODY_BYTES")
    batch_max_recipients: int = Field(
        default=1000, ge=1, alias="BATCH_MAX_RECIPIENTS", description="Recipients per REST submission."
    )
    batch_chunk_size: int = Field(default=1000, ge=1, alias="BATCH_CHUNK_SIZE")
    batch_max_body_bytes_setting: int | None = Field(default=None, ge=1024, alias="BATCH_MAX_BODY_BYTES")
    # Spreadsheet submissions (multipart `file`): streamed in chunks, so far larger than JSON ones.
    batch_file_max_rows: int = Field(default=100_000, ge=1, alias="BATCH_FILE_MAX_ROWS")
    batch_file_max_bytes_setting: int | None = Field(default=None, ge=1024, alias="BATCH_FILE_MAX_BYTES")
    # Per-row lines in a submission's or validation's answer (problems, recipients); counts are whole.
    batch_report_rows: int = Field(default=1000, ge=0, alias="BATCH_REPORT_ROWS")
    # Worker processes reading phone numbers of large submissions (gateway.numbers); 0: in-thread.
    batch_check_processes: int = Field(
        default_factory=lambda: max(1, min(4, (os.cpu_count() or 2) - 1)), ge=0, alias="BATCH_CHECK_PROCESSES"
    )
    # The estimate of /batch-calling/validate: the campaigns service's concurrency (same variables)
    # and the call length assumed before any call has finished.
    campaigns_default_concurrency: int = Field(default=10, ge=1, alias="CAMPAIGNS_DEFAULT_CONCURRENCY")
    campaigns_global_concurrency: int = Field(default=50, ge=1, alias="CAMPAIGNS_GLOBAL_CONCURRENCY")
    batch_assumed_call_s: float = Field(default=60.0, gt=0, alias="BATCH_ASSUMED_CALL_S")
    upload_url_ttl_s: int = Field(default=3600, alias="GATEWAY_UPLOAD_URL_TTL_S")
    # ---- API keys: per-key token buckets, shared by every replica (PostgreSQL) ------------------
    # A key's default; POST /api/v1/api-keys may override both per key. 0 requests/s: unlimited.
    rate_limit_per_s: float = Field(default=50.0, ge=0, alias="GATEWAY_RATE_LIMIT_PER_S")
    rate_limit_burst: int = Field(default=100, ge=1, alias="GATEWAY_RATE_LIMIT_BURST")
    # ---- retention (run every BUS_RETENTION_INTERVAL_S) ---------------------------------------
    # Also the replay window: a retry with the same Idempotency-Key after this long is a new request.
    idempotency_retention_hours: int = Field(default=24, ge=1, alias="GATEWAY_IDEMPOTENCY_RETENTION_HOURS")
    # Never shorter than an upload URL's life (GATEWAY_UPLOAD_URL_TTL_S): provisioning may still fetch
    # it until then. 0 keeps uploads forever.
    upload_retention_hours: int = Field(default=24, ge=0, alias="GATEWAY_UPLOAD_RETENTION_HOURS")
    # Finished operations (their status_url answers 404 afterwards); pending ones are never pruned.
    # 0 keeps them forever.
    operation_retention_hours: int = Field(default=168, ge=0, alias="GATEWAY_OPERATION_RETENTION_HOURS")

    # Live progress (Server-Sent Events): how long the change log keeps a change (a client may
    # resume with Last-Event-ID within this; 0 keeps them forever), and the seconds between the
    # comment lines that keep an idle stream open through proxies.
    change_retention_hours: int = Field(default=24, ge=0, alias="GATEWAY_CHANGE_RETENTION_HOURS")
    # Finished webhook deliveries (delivered or failed) and their attempts, shown by
    # GET /api/v1/webhooks/{id}/deliveries, after their last change; pending ones are never pruned.
    # The notifier keeps its own queue WEBHOOKS_RETENTION_HOURS (168). 0 keeps them forever.
    webhook_delivery_retention_hours: int = Field(
        default=168, ge=0, alias="GATEWAY_WEBHOOK_DELIVERY_RETENTION_HOURS"
    )
    sse_ping_s: float = Field(default=15.0, gt=0, alias="GATEWAY_SSE_PING_S")

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def batch_max_body_bytes(self) -> int:
        """Largest batch submission body (bytes): BATCH_MAX_BODY_BYTES, else 8 KiB per recipient.

        The gateway chunks recipients to fit bus messages (bus.limits.pack_to_fit), so a submission is
        bounded only here: a recipient's number, name, e-mail and id take well under 1 KiB, leaving
        about 7 KiB of dynamic variables each; 64 KiB for the rest of the submission.
        """
        if self.batch_max_body_bytes_setting is not None:
            return self.batch_max_body_bytes_setting
        return max(self.max_body_bytes, self.batch_max_recipients * 8 * 1024 + 64 * 1024)

    @property
    def batch_file_max_bytes(self) -> int:
        """Largest spreadsheet upload (bytes, multipart framing included): BATCH_FILE_MAX_BYTES,
        else 512 bytes per row (BATCH_FILE_MAX_ROWS) + 64 KiB: ~49 MiB for 100,000 rows. A CSV row of
        a number, a name, an e-mail and a few variables takes 60-200 bytes; XLSX is compressed."""
        if self.batch_file_max_bytes_setting is not None:
            return self.batch_file_max_bytes_setting
        return max(self.max_body_bytes, self.batch_file_max_rows * 512 + 64 * 1024)

    @property
    def idempotency_window(self) -> timedelta:
        return timedelta(hours=self.idempotency_retention_hours)

    @property
    def upload_base_url(self) -> str:
        return (self.internal_base_url or f"http://{self.host}:{self.port}").rstrip("/")
