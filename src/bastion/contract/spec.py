"""Loading an OpenAPI 3.0 / 3.1 document into the contract Bastion enforces.

:func:`load_spec` reads YAML or JSON, inlines references into other files (relative to the
referencing file, see :mod:`bastion.contract.documents`), applies an optional Overlay 1.0
document (:mod:`bastion.contract.overlay`), validates the result with openapi-spec-validator
and refuses every ``pattern`` that a linear-time regex engine cannot run (ReDoS safety, see
docs/contract.md). Every error is a :class:`~bastion.errors.ConfigError` naming the file
and the JSON pointer of the problem.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import jsonschema  # type: ignore[import-untyped]  # load time only: errors keep context
import jsonschema_rs
import referencing.exceptions
from jsonschema_path import SchemaPath
from openapi_spec_validator.schemas import schema_v30, schema_v31
from openapi_spec_validator.validation import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
from openapi_spec_validator.validation.exceptions import ExtraParametersError
from openapi_spec_validator.validation.keywords import ValueValidator

from bastion.contract.documents import (
    Bundle,
    escape_pointer,
    read_document_with_lines,
    resolve_pointer,
)
from bastion.contract.overlay import apply_overlay
from bastion.errors import ConfigError

__all__ = ["METHODS", "ApiSpec", "Operation", "check_pattern", "load_spec", "resolve_ref"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SecurityRequirement = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Operation:
    """One operation of the contract."""

    method: str
    path: str
    operation_id: str | None
    deprecated: bool
    #: None = inherit the root ``security``; ``()`` = explicitly public.
    security: tuple[SecurityRequirement, ...] | None
    #: All ``x-bastion-*`` keys (path item first, operation overrides).
    extensions: Mapping[str, Any]
    raw: Mapping[str, Any]
    #: JSON pointer of the operation in the bundled document.
    pointer: str = ""


@dataclass(frozen=True)
class ApiSpec:
    """A loaded, validated OpenAPI document."""

    version: Literal["3.0", "3.1"]
    title: str
    servers: tuple[str, ...]
    operations: tuple[Operation, ...]
    security_schemes: Mapping[str, Mapping[str, Any]]
    raw: Mapping[str, Any]
    #: Root ``security`` (None when absent).
    security: tuple[SecurityRequirement, ...] | None = None
    source: str = ""

    def operation(self, method: str, path: str) -> Operation:
        """The operation for ``method`` and path template; KeyError when undeclared."""
        for op in self.operations:
            if op.method == method.upper() and op.path == path:
                return op
        raise KeyError(f"{method.upper()} {path}")


def resolve_ref(document: Mapping[str, Any], node: Any, *, location: str | None = None) -> Any:
    """Follow local ``$ref`` values (bundled documents only hold local ones); a chain that
    comes back to a reference it passed is a ``$ref cycle`` (errors name ``location``,
    else the reference)."""
    seen: list[str] = []
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#"):
            raise ConfigError(f"unresolved $ref {ref!r}", location=location)
        if ref in seen:
            raise ConfigError(f"$ref cycle: {' -> '.join([*seen, ref])}", location=location or ref)
        seen.append(ref)
        if len(seen) > 64:
            raise ConfigError(f"$ref chain too long at {ref!r}", location=location)
        node = resolve_pointer(document, ref[1:], location=location or ref)
    return node


_PATTERN_CACHE: dict[str, bool] = {}


def check_pattern(pattern: str) -> bool:
    """True when the linear-time engine (Rust ``regex``, no backtracking) can run ``pattern``."""
    if pattern not in _PATTERN_CACHE:
        try:
            jsonschema_rs.Draft202012Validator(
                {"pattern": pattern}, pattern_options=jsonschema_rs.RegexOptions()
            )
            _PATTERN_CACHE[pattern] = True
        except (jsonschema_rs.ValidationError, ValueError):
            _PATTERN_CACHE[pattern] = False
    return _PATTERN_CACHE[pattern]


def _patterns(node: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("example", "examples", "default", "enum", "const") or key.startswith("x-"):
                continue
            if key == "pattern" and isinstance(value, str):
                yield [*path, key], value
            elif key == "patternProperties" and isinstance(value, dict):
                for name in value:
                    yield [*path, key, name], name
            yield from _patterns(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _patterns(value, [*path, index])


def _security(value: Any) -> tuple[SecurityRequirement, ...] | None:
    if value is None:
        return None
    return tuple(
        MappingProxyType({name: tuple(scopes or ()) for name, scopes in requirement.items()})
        for requirement in value
    )


def _precise(bundle: Bundle, version: str) -> None:
    """Meta-schema pass with plain jsonschema: its errors keep ``context``, so a oneOf
    failure ("not a Response nor a Reference") is reported at the deepest real cause."""
    meta = dict(schema_v31 if version == "3.1" else schema_v30)
    validator = jsonschema.validators.validator_for(meta)(meta)
    for error in validator.iter_errors(bundle.document):
        while error.context:
            error = max(error.context, key=lambda e: len(e.absolute_path))
        message = error.message
        if error.validator == "type" and str(error.instance).lower() in _YAML_11_BOOLEANS:
            message += " (YAML 1.2, as OpenAPI documents are read: write true or false)"
        raise ConfigError(
            f"invalid OpenAPI {version} document: {message}",
            location=bundle.locate(list(error.absolute_path)),
        )


#: What YAML 1.1 read as booleans and YAML 1.2 reads as strings (documents.py).
_YAML_11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


#: Set on an error of openapi-spec-validator once its path is absolute (see :func:`_placed`).
_PLACED = "bastion_placed"


def _placed(cls: type[Any]) -> type[Any]:
    """A keyword validator of openapi-spec-validator whose errors say where they are.

    Its checks report a path relative to the node they were given (a schema whose
    ``default`` has the wrong type was reported at ``/``, line 1) or none at all
    ("Required list has not defined properties"). Each wrapped validator puts the path of
    its own node in front of the errors that no validator it called has placed yet (and
    ``default`` in front of a path inside a default value, ``required`` in front of that
    error about the schema's ``required``).
    """
    inside_default = issubclass(cls, ValueValidator)

    class Placed(cls):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            node = next((a for a in args if isinstance(a, SchemaPath)), None)
            for error in super().__call__(*args, **kwargs):
                path = getattr(error, "path", None)
                if node is not None and isinstance(path, deque) and not hasattr(error, _PLACED):
                    own = ["default"] if inside_default else []
                    if isinstance(error, ExtraParametersError):  # about the schema's list
                        own = ["required"]
                    path.extendleft(reversed([*node.parts, *own]))
                    setattr(error, _PLACED, True)
                yield error

    Placed.__name__ = Placed.__qualname__ = f"Placed{cls.__name__}"
    return Placed


def _placing(cls: type[Any]) -> type[Any]:
    """The spec validator ``cls`` with every keyword validator :func:`_placed`."""
    validators = {name: _placed(kind) for name, kind in cls.keyword_validators.items()}
    return type(f"Placing{cls.__name__}", (cls,), {"keyword_validators": validators})


_SPEC_VALIDATORS = {
    "3.0": _placing(OpenAPIV30SpecValidator),
    "3.1": _placing(OpenAPIV31SpecValidator),
}


def _validate(bundle: Bundle, version: str) -> None:
    _local_refs(bundle)  # first: the validators below would fetch a remote reference
    cls = _SPEC_VALIDATORS["3.1" if version == "3.1" else "3.0"]
    document = bundle.document
    paths = document.get("paths")
    if isinstance(paths, dict) and any(str(key).startswith("x-") for key in paths):
        # Extensions of the Paths object are not paths (openapi-spec-validator raised
        # KeyError on `x-owner: team-a`); the keys left are the document's own.
        kept = {key: item for key, item in paths.items() if not str(key).startswith("x-")}
        document = {**document, "paths": kept}
    schema_path = SchemaPath.from_dict(document, base_uri="", handlers={})
    validator = cls(schema_path)
    try:
        _path_templates(bundle)  # openapi-spec-validator's template parsing raises on these
        _precise(bundle, version)
        _operations(bundle)
        _linear_patterns(bundle)  # before the meta-schema's `format: regex`, which says less
        # openapi-spec-validator in its two passes, not through `iter_errors`, which copies
        # each error (losing what `_placed` marks) and mixes the passes' kinds of path.
        for error in validator.schema_validator.iter_errors(validator.schema):
            raise _invalid(bundle, version, error, through_refs=False)
        for error in validator.root_validator(validator.schema_path):
            # Its walk resolves every `$ref` (siblings ignored), and so do its paths.
            raise _invalid(bundle, version, error, through_refs=True)
    except ConfigError:
        raise
    except (RecursionError, referencing.exceptions.Unresolvable) as exc:
        # What the refs check above cannot see (a `$ref` under a schema's `$id`): still an
        # error that names the file, never a traceback printing the whole document.
        reason = "nested or referenced too deeply" if isinstance(exc, RecursionError) else exc
        raise ConfigError(
            f"invalid OpenAPI {version} document: {reason}", location=str(bundle.root_path)
        ) from None
    except Exception as exc:  # openapi-spec-validator failing on a shape it did not expect
        raise ConfigError(
            f"invalid OpenAPI {version} document: the validator could not read it"
            f" ({type(exc).__name__}: {str(exc)[:_MAX_MESSAGE_CHARS]})",
            location=str(bundle.root_path),
        ) from None


#: The longest message of openapi-spec-validator repeated (its jsonschema-rs errors can
#: print the whole schema that failed).
_MAX_MESSAGE_CHARS = 300


def _invalid(bundle: Bundle, version: str, error: Any, *, through_refs: bool) -> ConfigError:
    path = list(getattr(error, "absolute_path", ()) or ())
    message = str(getattr(error, "message", error)).split("\n", 1)[0]
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 1] + "…"
    return ConfigError(
        f"invalid OpenAPI {version} document: {message}",
        location=bundle.locate(path, through_refs=through_refs),
    )


def _linear_patterns(bundle: Bundle) -> None:
    for pointer_path, pattern in _patterns(bundle.document, []):
        if not check_pattern(pattern):
            raise ConfigError(
                f"pattern {pattern!r} needs a backtracking regex engine (lookaround or "
                "backreference) or is invalid; only linear-time patterns are allowed",
                location=bundle.locate(pointer_path),
            )


_TEMPLATE_PARAMETER = re.compile(r"\{([^{}]+)\}")
#: A path template whose braces pair up around names without ``[]:!`` (openapi-spec-
#: validator reads templates as format strings: it raised ValueError on the others).
_BALANCED_TEMPLATE = re.compile(r"(?:[^{}]|\{[^{}\[\]:!]+\})*")


def _path_items(bundle: Bundle) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each path template and its path item (``$ref`` resolved; ``x-`` keys are not paths)."""
    paths = bundle.document.get("paths")
    for template, raw_item in paths.items() if isinstance(paths, dict) else ():
        if str(template).startswith("x-"):
            continue
        item = resolve_ref(bundle.document, raw_item)
        if isinstance(item, dict):
            yield str(template), item


def _path_templates(bundle: Bundle) -> None:
    """Before the meta-schema pass, whose messages for these say less: every template's
    braces pair up, no parameter is listed twice (it said "has non-unique elements" of the
    whole list), and every path parameter says ``required: true`` (it said "'path' is not
    one of ['query']")."""
    for template, item in _path_items(bundle):
        if not _BALANCED_TEMPLATE.fullmatch(template):
            raise ConfigError(
                f"path template {template!r} has an unbalanced or nested brace, or a"
                " parameter name with [, ], : or !: each parameter is written {name}",
                location=bundle.locate(["paths", template]),
            )
        lists: list[tuple[Any, list[str | int]]] = [
            (item.get("parameters"), ["paths", template, "parameters"])
        ]
        for method in METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                lists.append(
                    (operation.get("parameters"), ["paths", template, method, "parameters"])
                )
        for parameters, where in lists:
            # (and refuses a parameter listed twice)
            for name, (parameter, written) in _path_parameters(bundle, parameters, where).items():
                if parameter.get("required") is not True:
                    raise ConfigError(
                        f"path parameter {name!r} must say required: true (a path parameter"
                        " is always required)",
                        location=bundle.locate(written, through_refs=True),
                    )


def _operations(bundle: Bundle) -> None:
    """Mistakes openapi-spec-validator reports without a place (``/``, line 1) or at a
    parent, checked with the place they are written (after the meta-schema pass: the
    parameters are well formed): a path template parameter no parameter declares, a path
    parameter the template does not have, and an ``operationId`` used twice."""
    seen: dict[str, str] = {}
    for template, item in _path_items(bundle):
        in_template = set(_TEMPLATE_PARAMETER.findall(template))
        base: list[str | int] = ["paths", template]
        shared = _path_parameters(bundle, item.get("parameters"), [*base, "parameters"])
        _check_path_parameters(bundle, shared, in_template, template)
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            where: list[str | int] = [*base, method]
            own = _path_parameters(bundle, operation.get("parameters"), [*where, "parameters"])
            _check_path_parameters(bundle, own, in_template, template)
            declared = set(shared) | set(own)
            for name in sorted(in_template - declared):
                raise ConfigError(
                    f"path parameter {name!r} of {template} is not declared for"
                    f" {method.upper()} (parameters: - {{name: {name}, in: path,"
                    " required: true})",
                    location=bundle.locate(where),
                )
            operation_id = operation.get("operationId")
            if isinstance(operation_id, str):
                first = seen.setdefault(operation_id, f"{method.upper()} {template}")
                if first != f"{method.upper()} {template}":
                    raise ConfigError(
                        f"operationId {operation_id!r} is also the one of {first}",
                        location=bundle.locate([*where, "operationId"]),
                    )


def _path_parameters(
    bundle: Bundle, parameters: Any, where: list[str | int]
) -> dict[str, tuple[dict[str, Any], list[str | int]]]:
    """The path parameters of one ``parameters`` list (name -> the parameter, where it is
    written); a parameter (name and location) listed twice is an error at the second."""
    found: dict[str, tuple[dict[str, Any], list[str | int]]] = {}
    listed: set[tuple[str, str]] = set()
    for index, raw in enumerate(parameters if isinstance(parameters, list) else ()):
        parameter = resolve_ref(bundle.document, raw)
        if not isinstance(parameter, dict):
            continue
        name, place = parameter.get("name"), parameter.get("in")
        if not isinstance(name, str) or not isinstance(place, str):
            continue  # the meta-schema pass refused it already
        if (name, place) in listed:
            raise ConfigError(
                f"parameter {name!r} in {place} is listed twice",
                location=bundle.locate([*where, index]),
            )
        listed.add((name, place))
        if place == "path":
            found[name] = (parameter, [*where, index])
    return found


def _check_path_parameters(
    bundle: Bundle,
    declared: Mapping[str, tuple[dict[str, Any], list[str | int]]],
    in_template: set[str],
    template: str,
) -> None:
    for name, (_, where) in declared.items():
        if name not in in_template:
            raise ConfigError(
                f"path parameter {name!r} is not in the path template {template}",
                location=bundle.locate([*where, "name"], through_refs=True),
            )


def _local_refs(bundle: Bundle) -> None:
    """Every local ``$ref`` points at something, and no chain of bare ``$ref`` values loops
    (``A: {$ref: B}``, ``B: {$ref: A}``; path items referring to each other); the error
    names the ``$ref`` written. A schema that contains a reference to itself is fine."""
    document = bundle.document
    stack: list[tuple[Any, list[str | int], bool]] = [(document, [], False)]
    while stack:
        node, path, scoped = stack.pop()
        if isinstance(node, list):
            stack.extend((item, [*path, i], scoped) for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        scoped = scoped or "$id" in node
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            # Bundling inlined every file: what is left came from an overlay, and the
            # contract is never fetched (nor read from outside the spec's files).
            raise ConfigError(
                f"$ref {ref!r} is not inside the document (an overlay may only add local"
                " references)",
                location=bundle.locate([*path, "$ref"]),
            )
        if isinstance(ref, str):
            location = bundle.locate([*path, "$ref"])
            try:
                resolve_ref(document, node, location=location)
            except ConfigError as exc:
                if scoped:  # what a schema author under `$id` may have meant
                    raise ConfigError(
                        f"{str(exc).removeprefix(f'{location}: ')} (Bastion reads every '#'"
                        " reference from the root of the document; '$id' does not change that)",
                        location=location,
                    ) from None
                raise
        stack.extend((value, [*path, key], scoped) for key, value in node.items() if key != "$ref")


def load_spec(path: str | Path, *, overlay: str | Path | None = None) -> ApiSpec:
    """Load, bundle, harden (overlay) and validate an OpenAPI 3.0/3.1 document."""
    root = Path(path)
    bundle = Bundle(root)
    document = bundle.document
    if overlay is not None:
        overlay_document, overlay_lines = read_document_with_lines(Path(overlay))
        apply_overlay(document, overlay_document, location=str(overlay), lines=overlay_lines)
    declared = str(document.get("openapi", ""))
    if declared.startswith("3.0."):
        version: Literal["3.0", "3.1"] = "3.0"
    elif declared.startswith("3.1."):
        version = "3.1"
    else:
        raise ConfigError(
            f"unsupported 'openapi' version {declared!r} (3.0.x or 3.1.x)",
            location=f"{root}: /openapi",
        )
    _validate(bundle, version)
    operations: list[Operation] = []
    for template, item in _path_items(bundle):
        item_ext = {k: v for k, v in item.items() if k.startswith("x-bastion-")}
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            extensions = dict(item_ext)
            extensions.update({k: v for k, v in op.items() if k.startswith("x-bastion-")})
            operations.append(
                Operation(
                    method=method.upper(),
                    path=template,
                    operation_id=op.get("operationId"),
                    deprecated=bool(op.get("deprecated", False)),
                    security=_security(op.get("security")),
                    extensions=MappingProxyType(extensions),
                    raw=MappingProxyType(op),
                    pointer=f"/paths/{escape_pointer(template)}/{method}",
                )
            )
    components = document.get("components") or {}
    schemes = {
        name: MappingProxyType(resolve_ref(document, scheme))
        for name, scheme in (components.get("securitySchemes") or {}).items()
    }
    info = document.get("info") or {}
    return ApiSpec(
        version=version,
        title=str(info.get("title", "")),
        servers=tuple(str(s.get("url", "")) for s in document.get("servers") or ()),
        operations=tuple(operations),
        security_schemes=MappingProxyType(schemes),
        raw=MappingProxyType(document),
        security=_security(document.get("security")),
        source=str(root),
    )
