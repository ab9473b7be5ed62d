"""Moved to :mod:`support.daemon`; kept while ``tests/test_cli.py`` (H3's) still imports from here."""

from support.daemon import TEST_PATTERNS, Daemon, append, base_config, wait_for, write_config

__all__ = ["TEST_PATTERNS", "Daemon", "append", "base_config", "wait_for", "write_config"]
