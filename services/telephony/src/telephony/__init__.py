"""Switchboard telephony: phone numbers, outbound calls, call status and customer sessions."""
