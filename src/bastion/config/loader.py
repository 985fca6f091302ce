"""YAML loading that remembers where every value came from.

PyYAML's ``safe_load`` forgets line numbers, so errors could only say *which* key is wrong,
not *where*. We compose the node tree ourselves (still the safe loader: no Python tags), keep
a map from each key path to its line, substitute ``${ENV}`` references in scalars, and record
which values came from the environment so the linter can refuse inline secrets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bastion.errors import ConfigError

__all__ = ["SourceMap", "dotted", "format_location", "load_yaml_document", "written_path"]

KeyPath = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class SourceMap:
    """Where each value of a loaded document lives, and which came from ``${ENV}``."""

    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    from_env: set[KeyPath] = field(default_factory=set)

    def line_of(self, path: KeyPath) -> int | None:
        """Line of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def location(self, path: KeyPath) -> str:
        return format_location(self.file, self.line_of(path), path)


def format_location(file: str, line: int | None, path: KeyPath) -> str:
    where = f"{file}:{line}" if line is not None else file
    return f"{where}: {dotted(path)}" if path else where


def dotted(path: KeyPath) -> str:
    """``apis[0].routes[1].allow``: a key path as the errors write it."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def written_path(loc: Sequence[str | int], data: Any, *, missing: bool) -> KeyPath:
    """A pydantic error's ``loc`` as the keys and indexes written in ``data``.

    pydantic puts the name of a union's form into the location (``allow.rules.roles``,
    ``tls.TLSConfig``): a part that is no key (or index) of the value reached so far is
    such a name and is left out, except the last part of a missing key.
    """
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        keyed = isinstance(node, Mapping) and part in node
        if keyed or (isinstance(node, list) and type(part) is int and 0 <= part < len(node)):
            node = node[part]
        elif not (missing and index == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loader (no arbitrary Python objects)."""


def load_yaml_document(
    path: str | Path, *, text: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Any, SourceMap]:
    """Load one YAML document into plain Python values plus its :class:`SourceMap`.

    Duplicate keys are errors (YAML 1.2 says keys are unique; PyYAML silently keeps the
    last). Unset ``${VAR}`` references without a ``:-default`` are errors.
    """
    env = os.environ if environ is None else environ
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file: {exc.strerror}", location=name) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError("config file is not valid UTF-8", location=name) from exc
    source = SourceMap(file=name)
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"invalid YAML: {problem}", location=format_location(name, line, ())
        ) from None
    if node is None:
        raise ConfigError("config file is empty", location=name)
    return _convert(node, (), source, env), source


def _convert(node: yaml.Node, path: KeyPath, source: SourceMap, env: Mapping[str, str]) -> Any:
    source.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, path, source)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                loc = format_location(source.file, key_node.start_mark.line + 1, (*path, key))
                raise ConfigError("duplicate key", location=loc)
            child = (*path, key)
            source.lines[child] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, child, source, env)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), source, env) for i, item in enumerate(node.value)]
    value = _scalar(node, path, source)
    if isinstance(value, str) and "${" in value:
        return _substitute(value, path, source, env)
    return value


def _scalar(node: yaml.Node, path: KeyPath, source: SourceMap) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        loc = format_location(source.file, node.start_mark.line + 1, path)
        raise ConfigError("expected a scalar value here", location=loc)
    constructor = yaml.SafeLoader(" ")
    try:
        return constructor.construct_object(node)
    except yaml.YAMLError as exc:
        loc = format_location(source.file, node.start_mark.line + 1, path)
        raise ConfigError(f"invalid value: {exc}", location=loc) from exc
    finally:
        constructor.dispose()


def _substitute(value: str, path: KeyPath, source: SourceMap, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set", location=source.location(path))

    source.from_env.add(path)
    return _ENV_REF.sub(replace, value)
