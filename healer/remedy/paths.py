"""Path sets written like ``.gitignore`` lines: protected paths of ``git_sync``, allowed changes of a precondition.

Why pathspec: it implements git's own wildmatch rules (``security/`` is a
directory at any depth, ``.github/workflows/`` is anchored at the root,
``**/secrets*`` reaches any depth, a name without a slash matches at any
depth), which a hand-written fnmatch would get subtly wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pathspec

# Changes a pull may bring that no automatic fix should take in unseen: CI, security, secrets,
# dependencies (what runs and what gets installed) and service definitions.
DEFAULT_PROTECTED: tuple[str, ...] = (
    ".github/workflows/",
    ".gitlab-ci.yml",
    "security/",
    "**/secrets*",
    "requirements*.txt",
    "pyproject.toml",
    "poetry.lock",
    "Pipfile.lock",
    "package*.json",
    "Dockerfile",
    "*.service",
)


class PathSet:
    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = tuple(lines)
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.lines)

    def matches(self, path: str) -> bool:
        return bool(self.lines) and self._spec.match_file(path)

    def touched(self, paths: Sequence[str]) -> list[str]:
        """The paths of ``paths`` this set covers, in their order."""
        return [p for p in paths if self.matches(p)]


__all__ = ["DEFAULT_PROTECTED", "PathSet"]
