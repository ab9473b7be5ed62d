"""Telegram front end: commands and approvals in, routed notices out.

``bot`` owns the python-telegram-bot Application; ``router`` decides what is
sent when (immediately, in a digest, or not at all) and deduplicates storms;
``commands`` parses plain phrases and slash commands; ``render`` escapes
everything quoted from logs. Only ``bot`` imports telegram, so the rest is
testable without a network.
"""
