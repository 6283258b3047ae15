"""The provisioning service's one settings class: bus/database settings plus ElevenLabs and HTTP."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bus.secrets import SecretKeySettings


class Settings(SecretKeySettings):
    """Environment variables read by the provisioning service (and nothing else reads any)."""

    elevenlabs_api_key: SecretStr = Field(default=SecretStr(""), alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str = Field(default="https://api.elevenlabs.io", alias="ELEVENLABS_BASE_URL")
    host: str = Field(default="127.0.0.1", alias="PROVISIONING_HOST")
    port: int = Field(default=8010, ge=0, le=65535, alias="PROVISIONING_PORT")
    upstream_timeout_s: float = Field(default=10.0, gt=0, alias="PROVISIONING_UPSTREAM_TIMEOUT_S")
    upstream_max_retries: int = Field(default=3, ge=0, alias="PROVISIONING_UPSTREAM_MAX_RETRIES")
    upstream_max_backoff_s: float = Field(default=10.0, ge=0, alias="PROVISIONING_UPSTREAM_MAX_BACKOFF_S")
    upstream_initial_backoff_s: float = Field(
        default=0.5, ge=0, alias="PROVISIONING_UPSTREAM_INITIAL_BACKOFF_S"
    )
    kb_file_max_bytes: int = Field(default=25 * 1024 * 1024, gt=0, alias="PROVISIONING_KB_FILE_MAX_BYTES")
    # The only origin a knowledge-base file is fetched from (the gateway's signed upload URLs). The
    # default is the gateway's own default address; `make up` and the test stack set it.
    gateway_internal_url: str = Field(default="http://127.0.0.1:8000", alias="GATEWAY_INTERNAL_URL")
    tool_auth_header: str = Field(default="X-Switchboard-Tool-Token", alias="TOOL_AUTH_HEADER")
    # After a rotation, how long tool-webhooks still accepts a tool's previous token: calls already
    # under way with it (ElevenLabs read the secret before the switch) finish.
    tool_token_grace_s: int = Field(default=300, ge=0, alias="PROVISIONING_TOOL_TOKEN_GRACE_S")

    @property
    def gateway_base_url(self) -> str:
        return self.gateway_internal_url.rstrip("/")
