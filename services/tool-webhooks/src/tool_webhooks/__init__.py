"""tool-webhooks: the HTTP endpoints ElevenLabs calls (post-call webhooks and mid-call tools)."""
