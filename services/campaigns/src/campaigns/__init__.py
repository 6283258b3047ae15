"""Campaign orchestrator: batch calling through the telephony service."""
