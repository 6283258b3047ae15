"""Switchboard's public message contracts: schemas, and in `calling` the rules behind their fields.

Commands are imperative (``tool.create_webhook``), events past tense (``tool.created``).
Every message carries an explicit ``type`` literal and a ``version``; changes are additive.
"""
