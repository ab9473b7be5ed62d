"""Shared test support, one module per kind of harness.

``daemon`` (the daemon as a child process), ``fake_telegram`` (the one fake Bot API), ``bot_rig``
(the bot and healer app in process), ``webhooks`` (the webhook server harness), ``engine`` (the
in-process engine builders), ``actions`` (action contexts that record audit), ``notify_socket``
(the systemd notify socket), ``pip`` (wheelhouse and venv), ``waiting`` (polling helpers).

Test modules import from here, never from each other.
"""
