"""The tool-webhooks service's one settings class: bus/database settings plus ElevenLabs and HTTP."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from bus.secrets import SecretKeySettings


class Settings(SecretKeySettings):
    """Environment variables read by the tool-webhooks service (and nothing else reads any)."""

    elevenlabs_api_key: SecretStr = Field(default=SecretStr(""), alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str = Field(default="https://api.elevenlabs.io", alias="ELEVENLABS_BASE_URL")
    # Optional: a secret configured by hand. The secret of the latest registration (stored encrypted)
    # is tried as well, so a re-registration never leaves a window where deliveries fail.
    elevenlabs_webhook_secret: SecretStr = Field(default=SecretStr(""), alias="ELEVENLABS_WEBHOOK_SECRET")
    host: str = Field(default="127.0.0.1", alias="TOOL_WEBHOOKS_HOST")
    port: int = Field(default=8001, ge=0, le=65535, alias="TOOL_WEBHOOKS_PORT")
    webhook_tolerance_past_s: int = Field(default=1800, ge=0, alias="WEBHOOK_TOLERANCE_PAST_S")
    webhook_tolerance_future_s: int = Field(default=300, ge=0, alias="WEBHOOK_TOLERANCE_FUTURE_S")
    # Post-call deliveries: a body whose signature header is well-formed and fresh is streamed through
    # the HMAC into a temporary file (memory up to the spool size), up to max_body_bytes (else 413):
    # ElevenLabs sends once and never retries, so an authentic delivery must fit (post_call_audio
    # carries the whole call as base64). Only bodies up to max_parse_bytes are parsed whole.
    max_body_bytes: int = Field(default=256 * 1024 * 1024, gt=0, alias="TOOL_WEBHOOKS_MAX_BODY_BYTES")
    max_parse_bytes: int = Field(default=32 * 1024 * 1024, gt=0, alias="TOOL_WEBHOOKS_MAX_PARSE_BYTES")
    spool_memory_bytes: int = Field(default=1024 * 1024, ge=0, alias="TOOL_WEBHOOKS_SPOOL_MEMORY_BYTES")
    upstream_timeout_s: float = Field(default=10.0, gt=0, alias="TOOL_WEBHOOKS_UPSTREAM_TIMEOUT_S")
    upstream_max_retries: int = Field(default=3, ge=0, alias="TOOL_WEBHOOKS_UPSTREAM_MAX_RETRIES")

    # ---- mid-call tools ----------------------------------------------------------------------
    # Overall deadline of one tool answer (store lookups incl. retries); ElevenLabs waits for it.
    tool_response_budget_s: float = Field(default=4.0, gt=0, alias="TOOL_RESPONSE_BUDGET_S")
    call_placed_wait_s: float = Field(
        default=1.0,
        ge=0,
        alias="TOOL_WEBHOOKS_CALL_PLACED_WAIT_S",
        description="How long a store tool call for a conversation not yet known waits for its call's "
        "call.placed event (telephony publishes it after the dial's answer; under load it can come after "
        "the agent's first tool call) before answering that the call has no store; at most half the "
        "tool's TOOL_RESPONSE_BUDGET_S.",
    )
    callback_max_days: int = Field(
        default=30,
        ge=1,
        le=365,
        alias="TOOL_WEBHOOKS_CALLBACK_MAX_DAYS",
        description="How far ahead (days) the callback tool books a call back; a later time is refused.",
    )
    quiet_hours_file: Path | None = Field(
        default=None,
        alias="QUIET_HOURS_FILE",
        description="Platform quiet-hours rules (as campaigns reads them): a callback is booked outside them.",
    )
    # Upgrading from tokens of version 1 (route-bound only, never expiring, surviving their tool):
    # accept them until every tool's token has been rotated (POST /api/v1/tools/{id}/rotate-token).
    accept_v1_tool_tokens: bool = Field(default=False, alias="TOOL_WEBHOOKS_ACCEPT_V1_TOOL_TOKENS")
    tool_max_results: int = Field(default=3, ge=1, le=20, alias="TOOL_MAX_RESULTS")
    product_cache_ttl_s: float = Field(default=60.0, ge=0, alias="PRODUCT_CACHE_TTL_S")
    product_cache_max_entries: int = Field(default=1024, ge=1, alias="PRODUCT_CACHE_MAX_ENTRIES")
    email_dedupe_window_s: int = Field(default=600, ge=0, alias="EMAIL_DEDUPE_WINDOW_S")
    # Conversations and customer sessions (store credentials, customer details) are only needed
    # during a call: deleted once untouched this long (e-mail invocations: also >= the dedupe
    # window), every BUS_RETENTION_INTERVAL_S. 0 keeps them forever.
    conversation_retention_hours: int = Field(
        default=168, ge=0, alias="TOOL_WEBHOOKS_CONVERSATION_RETENTION_HOURS"
    )
    shopify_api_version: str = Field(default="2025-01", alias="SHOPIFY_API_VERSION")
    # Outbound (store) requests: see outbound.py. http:// stores only for local testing.
    allow_http_stores: bool = Field(default=False, alias="ALLOW_HTTP_STORES")
    # Comma-separated `host` or `host:port` entries exempt from the private-address check.
    outbound_allow_hosts: str = Field(default="", alias="OUTBOUND_ALLOW_HOSTS")
    outbound_max_response_bytes: int = Field(
        default=2 * 1024 * 1024, gt=0, alias="OUTBOUND_MAX_RESPONSE_BYTES"
    )

    def outbound_allowlist(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.outbound_allow_hosts.split(",") if h.strip())
