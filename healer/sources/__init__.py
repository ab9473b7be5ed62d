"""Event sources that feed the engine: log files (``files``) and, later, journald and webhooks."""
