"""A compiled router: literal paths in a dict, templates in a segment trie.

Routes are matched on the decoded, normalised path. Literal segments win over parameters
at the same depth (``/orders/export`` beats ``/orders/{order_id}``). A parameter matches one
non-empty segment. An unmatched path is 404; a matched path with an undeclared method is
405 with ``Allow``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bastion.errors import ConfigError, MethodNotAllowed, NotFound

__all__ = ["Match", "Router"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Match(Generic[T]):
    target: T
    template: str
    params: dict[str, str]


@dataclass(slots=True)
class _Node(Generic[T]):
    literals: dict[str, _Node[T]] = field(default_factory=dict)
    param: tuple[str, _Node[T]] | None = None
    methods: dict[str, tuple[str, T]] = field(default_factory=dict)


class Router(Generic[T]):
    """Maps (method, path) to a target. Built once at startup, read-only afterwards."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, tuple[str, T]]] = {}
        self._root: _Node[T] = _Node()

    def add(self, template: str, methods: Sequence[str], target: T) -> None:
        segments = template.split("/")[1:]
        if any(s.startswith("{") for s in segments):
            node = self._root
            for segment in segments:
                if segment.startswith("{") and segment.endswith("}"):
                    name = segment[1:-1]
                    if node.param is None:
                        node.param = (name, _Node())
                    elif node.param[0] != name:
                        raise ConfigError(
                            f"route {template!r} names parameter {{{name}}} where another "
                            f"route names {{{node.param[0]}}}"
                        )
                    node = node.param[1]
                else:
                    node = node.literals.setdefault(segment, _Node())
            table = node.methods
        else:
            table = self._static.setdefault(template, {})
        for method in methods:
            if method in table:
                raise ConfigError(f"route {method} {template} is declared twice")
            table[method] = (template, target)
        if "GET" in methods and "HEAD" not in methods and "HEAD" not in table:
            table["HEAD"] = (template, target)

    def match(self, method: str, path: str) -> Match[T]:
        table = self._static.get(path)
        params: dict[str, str] = {}
        if table is None:
            table = self._walk(path, params)
            if table is None:
                raise NotFound(reason="route.unknown_path")
        entry = table.get(method)
        if entry is None:
            raise MethodNotAllowed(list(table), reason="route.method_not_allowed")
        return Match(entry[1], entry[0], params)

    def template_for(self, path: str) -> str | None:
        """The template ``path`` matches, whatever the method (None: no route)."""
        table = self._static.get(path) or self._walk(path, {})
        return next(iter(table.values()))[0] if table else None

    def _walk(self, path: str, params: dict[str, str]) -> dict[str, tuple[str, T]] | None:
        return _descend(self._root, path.split("/")[1:], 0, params)


def _descend(
    node: _Node[T], segments: list[str], index: int, params: dict[str, str]
) -> dict[str, tuple[str, T]] | None:
    """Literal first, then parameter; backtracks so a literal dead end falls back."""
    if index == len(segments):
        return node.methods or None
    segment = segments[index]
    child = node.literals.get(segment)
    if child is not None:
        found = _descend(child, segments, index + 1, params)
        if found is not None:
            return found
    if node.param is not None and segment:
        name, param_node = node.param
        found = _descend(param_node, segments, index + 1, params)
        if found is not None:
            params[name] = segment
            return found
    return None
