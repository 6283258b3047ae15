"""Switchboard's one ElevenLabs client. Every service that calls ElevenLabs uses it."""

from elevenlabs_client.client import (
    JSON,
    ElevenLabsClient,
    OutcomeUnknownError,
    UpstreamError,
    retry_after_from_detail,
    retry_after_seconds,
)

__all__ = [
    "JSON",
    "ElevenLabsClient",
    "OutcomeUnknownError",
    "UpstreamError",
    "retry_after_from_detail",
    "retry_after_seconds",
]
