"""OpenAPI Overlay 1.0 (https://spec.openapis.org/overlay/v1.0.0) with a JSONPath subset.

An overlay hardens a spec the user cannot edit::

    overlay: 1.0.0
    info: {title: harden orders, version: 1}
    actions:
      - target: $.components.schemas.User
        update: {additionalProperties: false, required: [email]}
      - target: $.components.schemas.User.properties.email
        update: {maxLength: 254}
      - target: $.components.schemas.*.properties[?(@.type == 'string')]
        update: {maxLength: 200}
      - target: $.paths['/debug']
        remove: true

Semantics (Overlay 1.0 §4.4): actions run in order; ``update`` is merged into every selected
object recursively (objects merge, any other value — arrays included — is replaced); when the
selected node is an array the update is appended; ``remove: true`` deletes the selected node
from its parent. A target that selects nothing is a ConfigError (a hardening that silently
does not apply is worse than none).

JSONPath subset (RFC 9535 syntax): ``$``, ``.name``, ``['name']`` / ``["name"]``, ``[n]``,
``.*`` / ``[*]``, recursive descent ``..name`` / ``..*`` and the filters ``[?(@.key)]``,
``[?(@.key == 'value')]``, ``[?(@.key != 'value')]`` (values: quoted strings, numbers,
``true``/``false``/``null``; ``(…)`` optional).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bastion.errors import ConfigError

__all__ = ["apply_overlay", "select"]

_NAME = re.compile(r"[A-Za-z0-9_$@\-]+")
_FILTER = re.compile(
    r"\?\(?\s*@\.([A-Za-z0-9_$\-]+)\s*(?:(==|!=)\s*('[^']*'|\"[^\"]*\"|[^\s)\]]+))?\s*\)?"
)


@dataclass(frozen=True)
class _Step:
    kind: str  # "name" | "index" | "wild" | "filter"
    value: Any = None
    descend: bool = False


def _parse(path: str) -> list[_Step]:
    if not path.startswith("$"):
        raise ValueError("a JSONPath starts with $")
    steps: list[_Step] = []
    i = 1
    while i < len(path):
        descend = False
        if path.startswith("..", i):
            descend, i = True, i + 2
        elif path[i] == ".":
            i += 1
        if i < len(path) and path[i] == "[":
            end = _bracket_end(path, i)
            steps.append(_bracket(path[i + 1 : end].strip(), descend))
            i = end + 1
        elif i < len(path) and path[i] == "*":
            steps.append(_Step("wild", descend=descend))
            i += 1
        else:
            match = _NAME.match(path, i)
            if not match:
                raise ValueError(f"unexpected character at offset {i}")
            steps.append(_Step("name", match.group(), descend))
            i = match.end()
    return steps


def _bracket_end(path: str, start: int) -> int:
    quote: str | None = None
    for j in range(start + 1, len(path)):
        char = path[j]
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "]":
            return j
    raise ValueError("unclosed [")


def _bracket(inner: str, descend: bool) -> _Step:
    if inner == "*":
        return _Step("wild", descend=descend)
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Step("name", inner[1:-1], descend)
    if inner.lstrip("-").isdigit():
        return _Step("index", int(inner), descend)
    match = _FILTER.fullmatch(inner)
    if match:
        key, op, literal = match.groups()
        value = None
        if op:
            literal = literal.strip()
            value = literal[1:-1] if literal[0] in "'\"" else json.loads(literal)
        return _Step("filter", (key, op, value), descend)
    raise ValueError(f"unsupported selector [{inner}]")


def _children(node: Any) -> Iterator[tuple[Any, Any, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key, value
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index, value


def _match(step: _Step, parent: Any, key: Any, value: Any) -> bool:
    if step.kind == "wild":
        return True
    if step.kind == "name":
        return isinstance(parent, dict) and key == step.value
    if step.kind == "index":
        # RFC 9535 §2.3.3.2: a negative index counts from the end; one out of range selects
        # nothing (it used to wrap around: [5] of two parameters changed the second).
        if not isinstance(parent, list) or not -len(parent) <= step.value < len(parent):
            return False
        return bool(key == step.value % len(parent))
    field, op, literal = step.value
    if not isinstance(value, dict) or field not in value:
        # RFC 9535 §2.3.5.2.2: an absent member is unequal to every value.
        return bool(op == "!=")
    if op is None:
        return True
    return bool((value[field] == literal) == (op == "=="))


def _descendants(node: Any) -> Iterator[tuple[Any, Any, Any]]:
    for parent, key, value in _children(node):
        yield parent, key, value
        yield from _descendants(value)


def select(document: Any, path: str) -> list[tuple[Any, Any, Any]]:
    """Every ``(parent, key, node)`` the JSONPath selects (the root has parent None)."""
    current: list[tuple[Any, Any, Any]] = [(None, None, document)]
    for step in _parse(path):
        found: list[tuple[Any, Any, Any]] = []
        seen: set[tuple[int, Any]] = set()
        for _, _, node in current:
            candidates = _descendants(node) if step.descend else _children(node)
            for candidate in candidates:
                # `..` from nested selections reaches a node more than once: each is
                # selected once (an update appended twice, a remove deleted a neighbour).
                place = (id(candidate[0]), candidate[1])
                if place not in seen and _match(step, *candidate):
                    seen.add(place)
                    found.append(candidate)
        current = found
    return current


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value))


#: What an Overlay 1.0 action may hold (``x-`` extensions aside).
_ACTION_KEYS = frozenset({"target", "description", "update", "remove"})


def apply_overlay(
    document: dict[str, Any],
    overlay: Any,
    *,
    location: str,
    lines: Mapping[str, int] | None = None,
) -> None:
    """Apply an Overlay 1.0 document to ``document`` in place; ConfigError on any problem,
    naming the action (and its line, from ``lines``: pointer -> line of the overlay)."""
    if not isinstance(overlay, dict) or not str(overlay.get("overlay", "")).startswith("1."):
        raise ConfigError(
            "not an Overlay 1.x document (missing 'overlay: 1.0.0')", location=location
        )
    actions = overlay.get("actions")
    if not isinstance(actions, list) or not actions:
        raise ConfigError("overlay needs a non-empty 'actions' list", location=location)
    for index, action in enumerate(actions):
        where = f"{location}: /actions/{index}"
        line = (lines or {}).get(f"/actions/{index}")
        if line is not None:
            where += f" (line {line})"
        if isinstance(action, dict):
            unknown = sorted(
                str(k) for k in action if k not in _ACTION_KEYS and not str(k).startswith("x-")
            )
            if unknown:  # a misspelt 'update' would otherwise read as a missing one
                raise ConfigError(
                    f"unknown key {unknown[0]!r} in an action (it takes target, description,"
                    " update, remove)",
                    location=where,
                )
        if not isinstance(action, dict) or not isinstance(action.get("target"), str):
            raise ConfigError("an action needs a string 'target'", location=where)
        try:
            selected = select(document, action["target"])
        except ValueError as exc:
            raise ConfigError(f"invalid target: {exc}", location=where) from exc
        if not selected:
            raise ConfigError(f"target {action['target']!r} selects nothing", location=where)
        if action.get("remove") is True:
            for parent, key, _ in reversed(selected):
                if parent is None:
                    raise ConfigError("cannot remove the document root", location=where)
                del parent[key]
            continue
        update = action.get("update")
        if update is None:
            raise ConfigError("an action needs 'update' or 'remove: true'", location=where)
        for _, _, node in selected:
            if isinstance(node, list):
                node.append(json.loads(json.dumps(update)))
            elif isinstance(node, dict) and isinstance(update, dict):
                _merge(node, update)
            else:
                raise ConfigError("update target must be an object or array", location=where)
