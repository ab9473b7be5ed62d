"""Telegram front end: commands and approvals in, routed notices out.

``app`` owns the python-telegram-bot Application and its lifecycle;
``handlers`` turns a message or a button press into a use case of the
``Healer`` facade and its rendered answer; ``outbox`` is the one bounded,
retrying way out; ``router`` decides what is sent when (immediately, in a
digest, or not at all) and deduplicates storms; ``commands`` parses plain
phrases and slash commands; ``addressing`` decides whether a message in a
group shared by several hosts' bots is for this host; ``render`` escapes
everything quoted from logs and puts the host in front of every message.
``bot`` is a transitional adapter for the daemon's current constructor call.
"""
