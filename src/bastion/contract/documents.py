"""Reading OpenAPI documents from disk and bundling multi-file ``$ref``\\ s into one.

Files are YAML (a safe loader that rejects duplicate keys) or JSON
(:func:`bastion.jsonutil.loads_strict`). Mapping keys become strings (``200:`` in YAML is an
integer) and YAML timestamps stay strings, so the result is plain JSON data.

:class:`Bundle` turns a root document and the files it references into one self-contained
document: a reference into another file (``common.yaml#/components/schemas/Error``) is
replaced by a copy of its target, with the references inside that copy resolved relative to
*its* file (OpenAPI 3.1 §4.8.23 / JSON Reference resolution against the document's URI).
Cycles through other files are hoisted into ``#/components/schemas``. Remote references
(``http:``, ``https:`` …) are refused: the gateway never fetches a contract over the network.
Every inlined node remembers its origin so that errors can name the right file and pointer.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

import yaml

from bastion.contract.surrogates import unencodable
from bastion.errors import ConfigError
from bastion.jsonutil import JSONError, loads_strict

__all__ = ["Bundle", "escape_pointer", "read_document", "resolve_pointer", "unescape_pointer"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def escape_pointer(token: str | int) -> str:
    """One RFC 6901 reference token, always encodable as UTF-8.

    JSON may spell lone surrogates (``"\\ud800"``); such a key, echoed in an error pointer
    or an audit field, would make every UTF-8 serialiser fail, so it becomes ``?``.
    """
    text = str(token)
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("~", "~0").replace("/", "~1")


def unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def resolve_pointer(document: Any, pointer: str, *, location: str) -> Any:
    """Resolve an RFC 6901 pointer (``""`` or ``"/a/b"``); ConfigError when it does not exist."""
    if pointer in ("", "/"):
        return document
    if not pointer.startswith("/"):
        raise ConfigError(f"$ref fragment {pointer!r} is not a JSON pointer", location=location)
    node = document
    for raw in pointer[1:].split("/"):
        token = unescape_pointer(raw)
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ConfigError(f"$ref target #{pointer} does not exist", location=location)
    return node


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, keeps timestamps as strings and reads plain
    scalars by the YAML 1.2 core schema (see :func:`_core_schema`)."""


def _core_schema() -> None:
    """Plain scalars typed as YAML 1.2 reads them, as OpenAPI documents are written.

    PyYAML reads YAML 1.1: ``NO``, ``yes``, ``on`` and ``off`` are booleans (a country enum
    ``[GB, NO, SE]`` held ``False``; a property named ``on`` became ``true``), ``010`` is 8,
    ``1:20`` is 80, ``1_000`` is 1000 and ``1e3`` is a string. In the 1.2 core schema only
    ``true``/``false`` (three spellings) are booleans, integers are decimal, ``0o`` octal
    or ``0x`` hexadecimal, and floats are JSON's numbers plus ``.inf`` and ``.nan``.
    """
    dropped = {*_CORE, "tag:yaml.org,2002:value"}  # YAML 1.1's `=`: a string in 1.2
    resolvers = {
        first: [(tag, regexp) for tag, regexp in found if tag not in dropped]
        for first, found in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _StrictLoader.yaml_implicit_resolvers = resolvers
    for tag, (pattern, firsts) in _CORE.items():
        _StrictLoader.add_implicit_resolver(tag, re.compile(pattern), list(firsts))
    _StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    # `<<` is a merge key where it is a key (flatten_mapping takes it); elsewhere a string.
    _StrictLoader.add_constructor(_MERGE_TAG, _construct_text)


_CORE = {
    "tag:yaml.org,2002:bool": (r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    "tag:yaml.org,2002:int": (r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    "tag:yaml.org,2002:float": (
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
}


def _construct_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    """A scalar kept as written (timestamps; ``<<`` where it is not a merge key)."""
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_CORE_INT = re.compile(_CORE["tag:yaml.org,2002:int"][0])


def _core_int(text: str) -> int:
    """A YAML 1.2 core integer (:data:`_CORE_INT`): decimal, leading zeros and all (YAML
    1.1 read 010 as octal), ``0o`` octal or ``0x`` hexadecimal."""
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if _CORE_INT.match(text):
        return _core_int(text)
    try:  # written with an explicit !!int tag: what YAML 1.1 reads (0b101, -0x1F, 1:20)
        value: int = loader.construct_yaml_int(node)  # type: ignore[arg-type]
    except (ValueError, IndexError):
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not an integer", node.start_mark
        ) from None
    return value


def _key_text(key: Any) -> str:
    """A key as the document will hold it (:func:`_plain`): ``200`` and ``"200"`` are one."""
    return str(key).lower() if isinstance(key, bool) else str(key)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    own_count = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)  # the merged (`<<: *base`) pairs first, then its own
    cut = len(node.value) - own_count
    merged, own = node.value[:cut], node.value[cut:]
    result: dict[Any, Any] = {}
    spelt: set[str] = set()
    for key_node, value_node in own:
        key = loader.construct_object(key_node, deep=True)
        if _key_text(key) in spelt:
            # Two spellings of one key (200 and "200") would collapse, the last winning.
            mark = key_node.start_mark
            raise ConfigError(f"duplicate key {key!r} at line {mark.line + 1}")
        spelt.add(_key_text(key))
        result[key] = loader.construct_object(value_node, deep=True)
    for key_node, value_node in merged:  # YAML merge: the mapping's own keys win
        key = loader.construct_object(key_node, deep=True)
        if _key_text(key) not in spelt:
            spelt.add(_key_text(key))
            result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
_core_schema()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_key_text(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, _dt.date | _dt.datetime):
        return value.isoformat()
    return value


#: Nodes a YAML document may hold once its aliases are expanded (a 2,000-operation spec
#: holds far fewer); seven levels of ten aliases each in 447 bytes made 10^7 and took 2 GB.
MAX_YAML_NODES = 2_000_000


def _bounded(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand beyond :data:`MAX_YAML_NODES` nodes, counted
    before anything expands them (the count stops at the cap: the work is bounded too)."""
    count = 0
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise ConfigError(
                f"YAML document too large: more than {MAX_YAML_NODES:,} nodes once its"
                " aliases are expanded"
            )
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                stack.append(key_node)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _node_key(node: yaml.Node) -> str:
    """A key node spelt as the document holds the key (``_key_text`` of what it reads as:
    ``010`` is ``10``, ``0x1F`` is ``31``, ``TRUE`` is ``true``)."""
    text = str(getattr(node, "value", ""))
    tag = node.tag.rsplit(":", 1)[-1]
    try:
        if tag == "int" and _CORE_INT.match(text):
            return str(_core_int(text))
        if tag == "bool":
            return text.lower()
        if tag == "float":
            return str(float(text))
        if tag == "null":
            return "None"
    except ValueError:  # .inf and such: found by their text, as before
        pass
    return text


def _line_map(node: yaml.Node, pointer: str, lines: dict[str, int], line: int = 0) -> None:
    """The line of every pointer: a mapping entry's is its key's (a block mapping written
    under its key starts on the next line), an item's is where it starts."""
    lines[pointer] = line or node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = escape_pointer(_node_key(key_node))
            _line_map(value_node, f"{pointer}/{key}", lines, key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, f"{pointer}/{index}", lines)


def lone_surrogate_at(value: Any) -> str | None:
    """The pointer of the first key or string holding an unpaired UTF-16 surrogate."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, pointer = stack.pop()
        if isinstance(item, str):
            if unencodable(item):
                return pointer
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                here = f"{pointer}/{escape_pointer(key)}"
                if unencodable(key):
                    return here
                stack.append((child, here))
        elif isinstance(item, list):
            stack.extend((child, f"{pointer}/{i}") for i, child in reversed(list(enumerate(item))))
    return None


def read_document_with_lines(path: Path) -> tuple[Any, dict[str, int]]:
    """Read one YAML or JSON file into plain JSON data, plus ``pointer -> line``.

    Both formats can spell an unpaired UTF-16 surrogate as an escape; such a string cannot
    be encoded (validators, logs and upstream requests all fail on it), so it is refused
    here with the key that holds it.
    """
    document, lines = _read(path)
    pointer = lone_surrogate_at(document)
    if pointer is not None:  # written with escape_pointer: a bad key shows as "?"
        line = lines.get(pointer)
        raise ConfigError(
            "unpaired UTF-16 surrogate escape (not encodable as UTF-8)",
            location=f"{path}: {pointer or '/'}" + (f" (line {line})" if line else ""),
        )
    return document, lines


def _read(path: Path) -> tuple[Any, dict[str, int]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", location=str(path)) from exc
    lines: dict[str, int] = {}
    try:
        if path.suffix.lower() == ".json":
            document = loads_strict(data, max_depth=512)
            return document, _json_lines(data.decode("utf-8"))
        loader = _StrictLoader(data)
        try:
            node = loader.get_single_node()
            if node is not None:
                _bounded(node)
            document = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        if node is not None:
            _line_map(node, "", lines)
        return _plain(document), lines
    except JSONError as exc:
        raise ConfigError(f"invalid JSON: {exc}", location=str(path)) from exc
    except ConfigError as exc:
        raise ConfigError(str(exc), location=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", location=str(path)) from exc
    except RecursionError:
        # The YAML reader and the walks recurse per level (JSON is capped at 512 above).
        raise ConfigError("nested too deeply", location=str(path)) from None


#: What :func:`_json_lines` looks at: strings (keys) and the characters of structure.
_JSON_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{}\[\],\n]')
_NOT_SPACE = re.compile(r"[^ \t\r\n]")


def _json_lines(text: str) -> dict[str, int]:
    """``pointer -> line`` of a JSON text already parsed (a mapping entry's line is its
    key's, an object or array item's is where it starts): one pass, numbers and spaces
    skipped by ``re``."""
    lines: dict[str, int] = {"": 1}
    # Open containers: [pointer, is an object, index of the current item, current key's
    # pointer].
    stack: list[list[Any]] = []
    line = 1
    key_next = False
    for match in _JSON_TOKENS.finditer(text):
        piece = match.group()
        top = stack[-1] if stack else None
        if piece == "\n":
            line += 1
        elif piece[0] == '"':
            if key_next and top is not None and top[1]:
                top[3] = f"{top[0]}/{escape_pointer(json.loads(piece))}"
                lines[top[3]] = line
                key_next = False
        elif piece in "{[":
            here = "" if top is None else top[3] if top[1] else f"{top[0]}/{top[2]}"
            stack.append([here, piece == "{", 0, here])
            key_next = piece == "{"
            if piece == "[":
                _item_line(text, match.end(), line, stack[-1], lines)
        elif piece in "}]":
            key_next = False
            if stack:
                stack.pop()
        elif top is not None:  # ","
            if top[1]:
                key_next = True
            else:
                top[2] += 1
                _item_line(text, match.end(), line, top, lines)
    return lines


def _item_line(text: str, after: int, line: int, array: list[Any], lines: dict[str, int]) -> None:
    """An array item's line, when it is an object or array (an error inside a scalar item
    is named with its array's line: an enum of 400,000 numbers cost 400,000 entries)."""
    start = _NOT_SPACE.search(text, after)
    if start is not None and text[start.start()] in "{[":
        lines[f"{array[0]}/{array[2]}"] = line + text.count("\n", after, start.start())


def read_document(path: Path) -> Any:
    """Read one YAML or JSON file into plain JSON data; ConfigError names the file."""
    return read_document_with_lines(path)[0]


#: Local ``$ref`` hops :meth:`Bundle.locate` follows from one node (a chain of refs).
_MAX_REF_HOPS = 64


class Bundle:
    """A root document with every other file it references inlined (see module docstring)."""

    def __init__(self, root_path: Path) -> None:
        self.root_path = root_path.resolve()
        self._docs: dict[Path, Any] = {}
        self._lines: dict[Path, dict[str, int]] = {}
        #: id(inlined node) -> (file, pointer inside that file); the nodes are kept alive in
        #: ``_noted`` (an id freed and given to another node would name the wrong place).
        self.origins: dict[int, tuple[Path, str]] = {}
        #: id(node) -> {key: (file, pointer)}: keys written beside a ``$ref`` to another
        #: file, in a node that otherwise holds the referenced file's keys.
        self.key_origins: dict[int, dict[str, tuple[Path, str]]] = {}
        self._noted: list[Any] = []
        self._stack: list[tuple[Path, str]] = []
        self._hoisted: dict[tuple[Path, str], str] = {}
        self._done: dict[tuple[Path, str], Any] = {}
        #: Schemas of other files that refer back to themselves, by the name they get.
        self._hoisted_schemas: dict[str, Any] = {}
        root = self._doc(self.root_path)
        if not isinstance(root, dict):
            raise ConfigError("an OpenAPI document must be a mapping", location=str(root_path))
        self.document: dict[str, Any] = self._walk(root, self.root_path, "")
        if self._hoisted_schemas:
            # Added once the walk is over: whether the root lists `components` before or
            # after `paths`, or not at all, the hoisted schemas are there.
            components = self.document.setdefault("components", {})
            schemas = components.setdefault("schemas", {}) if isinstance(components, dict) else None
            if not isinstance(schemas, dict):
                raise ConfigError(
                    "components/schemas must be a mapping", location=f"{root_path}: /components"
                )
            schemas.update(self._hoisted_schemas)
        self.files: tuple[Path, ...] = tuple(self._docs)

    def _doc(self, path: Path) -> Any:
        if path not in self._docs:
            self._docs[path], self._lines[path] = read_document_with_lines(path)
        return self._docs[path]

    def _walk(self, node: Any, file: Path, pointer: str) -> Any:
        if isinstance(node, list):
            return [self._walk(v, file, f"{pointer}/{i}") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._reference(node, ref, file, pointer)
        return {k: self._walk(v, file, f"{pointer}/{escape_pointer(k)}") for k, v in node.items()}

    def _reference(self, node: dict[str, Any], ref: str, file: Path, pointer: str) -> Any:
        location = f"{file}: {pointer or '/'}/$ref"
        target_part, _, fragment = ref.partition("#")
        if _SCHEME.match(target_part):
            raise ConfigError(f"remote $ref {ref!r} is not allowed", location=location)
        target_file = (file.parent / target_part).resolve() if target_part else file
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if target_file == self.root_path:
            out: dict[str, Any] = {"$ref": "#" + fragment}
            out.update(self._walk(siblings, file, pointer))
            return out
        if not target_file.is_file():
            raise ConfigError(f"$ref file {target_part!r} not found", location=location)
        key = (target_file, fragment)
        if key in self._stack:
            name = self._hoisted.setdefault(key, f"x-bastion-ext-{len(self._hoisted) + 1}")
            return {"$ref": f"#/components/schemas/{name}"}
        if key not in self._done:
            target = resolve_pointer(self._doc(target_file), fragment, location=location)
            self._stack.append(key)
            content = self._walk(target, target_file, fragment)
            self._stack.pop()
            if key in self._hoisted:
                self._hoisted_schemas[self._hoisted[key]] = content
                self._note(content, key)
                content = {"$ref": f"#/components/schemas/{self._hoisted[key]}"}
            self._done[key] = content
        content = self._copy(self._done[key])
        if isinstance(content, dict):
            self._note(content, key)
            if siblings:
                extra = self._walk(siblings, file, pointer)
                here = {k: (file, f"{pointer}/{escape_pointer(k)}") for k in extra}
                if "$ref" not in content and not extra.keys() & content.keys():
                    content = dict(content, **extra)
                    self._note(content, key)
                    self.key_origins[id(content)] = here
                else:
                    # Both apply (a sibling `required` beside the target's: a merge kept
                    # one list, and the contract lost the other's fields).
                    content = {"allOf": [content], **extra}
                    self._note(content, (file, pointer))
        return content

    def _note(self, node: Any, origin: tuple[Path, str]) -> None:
        self.origins[id(node)] = origin
        self._noted.append(node)

    def _copy(self, node: Any) -> Any:
        """A deep copy of an inlined node whose nested nodes keep their origins."""
        memo: dict[int, Any] = {}
        out = copy.deepcopy(node, memo)
        for original, twin in list(memo.items()):
            origin = self.origins.get(original)
            if origin is not None and isinstance(twin, dict | list):
                self._note(twin, origin)
                keyed = self.key_origins.get(original)
                if keyed is not None:
                    self.key_origins[id(twin)] = keyed
        return out

    def locate(self, path: list[str | int], *, through_refs: bool = False) -> str:
        """Name ``file: /pointer`` for a path in the bundled document (origin-aware).

        ``through_refs``: the path was made by a walk that resolves every local ``$ref``
        and ignores the keys beside it (openapi-spec-validator's): each ``$ref`` on the
        way, and at its end, is followed, and the place named is the referenced node's.
        Otherwise a ``$ref`` is followed only where the path goes on past it.
        """
        file, base, rest = self.root_path, "", []
        node: Any = self.document
        for step in [*path, None]:
            for _ in range(_MAX_REF_HOPS):
                ref = node.get("$ref") if isinstance(node, dict) else None
                if not isinstance(ref, str) or not ref.startswith("#") or step == "$ref":
                    break
                if not through_refs and (step is None or str(step) in node):
                    break
                try:
                    node = resolve_pointer(self.document, ref[1:], location="")
                except ConfigError:
                    break
                file, base, rest = self.root_path, "", ref[1:].split("/")[1:]
                origin = self.origins.get(id(node))
                if origin is not None:
                    file, base, rest = origin[0], origin[1], []
            if step is None:
                break
            keyed = self.key_origins.get(id(node)) if isinstance(node, dict) else None
            if isinstance(node, dict) and str(step) in node:
                node = node[str(step)]
            elif isinstance(node, list) and isinstance(step, int) and step < len(node):
                node = node[step]
            else:
                rest.append(escape_pointer(step))
                node = None
                continue
            rest.append(escape_pointer(step))
            if keyed is not None and str(step) in keyed:
                file, base, rest = keyed[str(step)][0], keyed[str(step)][1], []
            origin = self.origins.get(id(node))
            if origin is not None:
                file, base, rest = origin[0], origin[1], []
        pointer = base + "".join("/" + r for r in rest)
        lines = self._lines.get(file, {})
        probe = pointer
        while probe and probe not in lines:  # the nearest enclosing node that has a line
            probe = probe.rsplit("/", 1)[0]
        line = lines.get(probe)
        return f"{file}: {pointer or '/'}" + (f" (line {line})" if line else "")
