"""YAML for files an attacker might have touched.

``yaml.SafeLoader`` only, no aliases (a billion-laughs file is refused before
it is expanded), a size cap, and the node tree kept so errors can cite lines.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1 << 20


class YamlProblem(Exception):
    def __init__(self, problem: str, line: int | None = None) -> None:
        self.problem = problem
        self.line = line
        super().__init__(problem if line is None else f"line {line}: {problem}")


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


def load_with_node(text: str) -> tuple[Any, yaml.Node | None]:
    if len(text) > MAX_BYTES:
        raise YamlProblem(f"file is larger than {MAX_BYTES} bytes")
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        raise YamlProblem(f"YAML nesting is deeper than {MAX_FLOW_DEPTH} levels")
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else None
                raise YamlProblem("YAML aliases (*name) are not allowed here; write the value out", line)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
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
