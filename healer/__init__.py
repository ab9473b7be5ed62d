"""healer: a self-healing daemon for Linux hosts."""

__version__ = "0.1.0"
