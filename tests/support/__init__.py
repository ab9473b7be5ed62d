"""Shared test support, one module per kind of harness.

``daemon`` (the daemon as a child process, and ``StoreView``: its store read through the typed API),
``telegram_daemon`` (that daemon with the bot on), ``fake_telegram`` (the one fake Bot API), ``bot_rig``
(the bot and healer app in process), ``webhooks`` (the webhook server harness), ``engine`` (the
in-process engine builders), ``actions`` (action contexts that record audit), ``notify_socket``
(the systemd notify socket), ``pip`` (wheelhouse and venv), ``waiting`` (polling helpers), ``scenario``
(issue 12's scenario rig: an app configured by ``healer setup``, the real daemon, supervisord),
``httpserver`` (a threaded HTTP server on a free port).

Test modules import from here, never from each other.
"""
