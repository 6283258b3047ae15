"""In-memory simulator of the ElevenLabs Conversational AI REST API, for tests and the sandbox stack."""

from elevenlabs_sim.app import create_app
from elevenlabs_sim.settings import SimSettings

__all__ = ["SimSettings", "create_app"]
