"""YAML for files an attacker might have touched.

The safe loader only (libyaml's when present), no aliases (a billion-laughs file is refused before
it is expanded), a size cap, and the node tree kept so errors can cite lines.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20


class YamlProblem(Exception):
    def __init__(self, problem: str, line: int | None = None) -> None:
        self.problem = problem
        self.line = line
        super().__init__(problem if line is None else f"line {line}: {problem}")


def read_capped(path: Path, cap: int = MAX_BYTES) -> bytes:
    """The file's bytes, refusing one over ``cap`` before holding it in memory.

    ``stat`` first (a 1 GiB sparse file is refused without reading), then read at
    most ``cap + 1`` bytes, since the file may grow between the two. Raises
    OSError as ``open`` does, or YamlProblem when the file is too large.
    """
    too_big = YamlProblem(f"file is larger than {cap} bytes; a settings or pattern file never needs that much")
    # O_NONBLOCK: a FIFO put in place of the file must not hang the loader (refused below).
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise YamlProblem("not a regular file")
        if st.st_size > cap:
            raise too_big
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise too_big
    return data


MAX_FLOW_DEPTH = 100
_NOT_BRACKETS = {c: None for c in range(128) if chr(c) not in "[]{}"}


def _flow_depth(text: str) -> int:
    """Upper bound of ``[``/``{`` nesting (quotes ignored): PyYAML takes seconds on "[[[[..." 5000 deep."""
    depth = worst = 0
    for c in text.translate(_NOT_BRACKETS):
        if c in "[{":
            depth += 1
            worst = max(worst, depth)
        elif c in "]}":
            depth = max(0, depth - 1)
    return worst


# libyaml's parser when PyYAML has it (~20x faster than the pure-Python one, which
# dominated every CLI call's start-up); same SafeConstructor either way.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _refuse_aliases(root: yaml.Node | None) -> None:
    """An alias makes the composer reuse a node; one reached twice means an alias.

    Checked on the composed graph, before anything is constructed, so a
    billion-laughs file is refused while it is still a handful of nodes.
    """
    seen: set[int] = set()
    # (node, line where it is referenced): a mapping value is referenced on its key's line.
    stack: list[tuple[yaml.Node, int | None]] = [(root, None)] if root is not None else []
    while stack:
        node, line = stack.pop()
        if id(node) in seen:
            raise YamlProblem("YAML aliases (*name) are not allowed here; write the value out", line)
        seen.add(id(node))
        here = node.start_mark.line + 1 if node.start_mark else None
        # Children pushed in reverse so they are visited in document order: the anchor
        # is met first and the alias, later in the file, is the one reported.
        if isinstance(node, yaml.MappingNode):
            for k, v in reversed(node.value):
                kline = k.start_mark.line + 1 if k.start_mark else here
                stack.extend(((v, kline), (k, kline)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, here) for item in reversed(node.value))


def load_with_node(text: str) -> tuple[Any, yaml.Node | None]:
    if len(text) > MAX_BYTES:
        raise YamlProblem(f"file is larger than {MAX_BYTES} bytes")
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        raise YamlProblem(f"YAML nesting is deeper than {MAX_FLOW_DEPTH} levels")
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            _refuse_aliases(node)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlProblem(f"invalid YAML: {problem}", mark.line + 1 if mark is not None else None) from None
    except RecursionError:  # PyYAML composes nested collections recursively: "[[[[..." 5000 deep
        raise YamlProblem("YAML nesting is too deep") from None
    return data, node


def item_lines(node: yaml.Node | None, key: str) -> list[int]:
    """Line numbers (1-based) of the items of the top-level sequence under ``key``."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in v.value]
    return []
