"""tool-webhooks: the HTTP endpoints ElevenLabs calls (post-call webhooks; later mid-call tools)."""
