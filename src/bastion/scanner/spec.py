"""The API contract, loaded with schemathesis and reduced to what the checks need.

Schemathesis (pinned 4.32.x) parses and validates the OpenAPI document and enumerates its
operations; :func:`generate_cases` draws positive test cases from its Hypothesis
strategies. Everything else (``$ref``-resolved schemas, security, admin labels, spec line
numbers for SARIF) is derived here once, so the checks read plain data.
"""

from __future__ import annotations

import fnmatch
import re
import urllib.request
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.result import Err

from bastion.contract.documents import escape_pointer, lone_surrogate_at
from bastion.errors import ConfigError
from bastion.scanner.sampling import resolve, sample

__all__ = [
    "PRIVILEGED_ROLES",
    "ApiSpec",
    "Operation",
    "Param",
    "generate_cases",
    "load_spec",
]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PRIVILEGED_ROLES = frozenset({"admin", "administrator", "superuser", "root"})
ADMIN_MARKERS = re.compile(r"(^|/)(admin|internal|manage|management)(/|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    required: bool
    schema: dict[str, Any]


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str | None
    params: tuple[Param, ...]
    body_schema: dict[str, Any] | None
    media_type: str | None
    responses: dict[str, dict[str, Any] | None]
    secured: bool
    admin: bool
    pointer: str
    line: int | None
    native: Any = field(repr=False, default=None)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def is_write(self) -> bool:
        return self.method in {"POST", "PUT", "PATCH", "DELETE"}

    @property
    def path_params(self) -> list[Param]:
        return [p for p in self.params if p.location == "path"]

    def response_schema(self, status: int) -> dict[str, Any] | None:
        for key in (str(status), f"{str(status)[0]}XX", f"{str(status)[0]}xx", "default"):
            if key in self.responses:
                return self.responses[key]
        return None

    def declares_status(self, status: int) -> bool:
        keys = {str(status), f"{str(status)[0]}XX", f"{str(status)[0]}xx", "default"}
        return bool(keys & set(self.responses))

    def sample_body(self, tag: str = "") -> Any:
        """A valid request body (``tag`` makes free-text fields unique, see ``sample``)."""
        return sample(self.body_schema, tag=tag) if self.body_schema is not None else None


@dataclass
class ApiSpec:
    source: str
    raw: dict[str, Any]
    operations: list[Operation]
    native: Any = field(repr=False, default=None)
    text: str = field(repr=False, default="")

    def line_of(self, pointer: str | None) -> int | None:
        """1-based source line of the node at a JSON pointer (or its nearest ancestor)."""
        if pointer is None:
            return None
        try:
            node: Any = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            return None
        line = None
        for raw_part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
            part = raw_part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if str(k.value) == part), None)
                if match is None:
                    break
                line, node = match[0].start_mark.line + 1, match[1]
            elif (
                isinstance(node, yaml.SequenceNode)
                and part.isdigit()
                and int(part) < len(node.value)
            ):
                node = node.value[int(part)]
                line = node.start_mark.line + 1
            else:
                break
        return line

    @property
    def servers(self) -> list[str]:
        servers = self.raw.get("servers") or []
        return [str(s.get("url", "")) for s in servers if isinstance(s, dict)]

    def operation(self, label: str) -> Operation | None:
        return next((op for op in self.operations if op.label == label), None)

    def label_admin(self, patterns: Iterable[str]) -> list[str]:
        """Label operations matching ``"METHOD /path"`` globs as admin-only; return them."""
        globs = [p.strip() for p in patterns if p.strip()]
        labelled = []
        for op in self.operations:
            if any(fnmatch.fnmatchcase(op.label, g) for g in globs):
                op.admin = True
                labelled.append(op.label)
        return labelled

    def paths(self) -> dict[str, list[Operation]]:
        out: dict[str, list[Operation]] = {}
        for op in self.operations:
            out.setdefault(op.path, []).append(op)
        return out


def _pointer(*parts: str) -> str:
    return "/" + "/".join(escape_pointer(p) for p in parts)


def _line_index(text: str) -> dict[tuple[str, str], int]:
    """1-based line of each ``paths -> path -> method`` key in the YAML/JSON source."""
    index: dict[tuple[str, str], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index
    if not isinstance(root, yaml.MappingNode):
        return index
    for key, value in root.value:
        if key.value != "paths" or not isinstance(value, yaml.MappingNode):
            continue
        for path_key, path_node in value.value:
            if not isinstance(path_node, yaml.MappingNode):
                continue
            for method_key, _ in path_node.value:
                index[(str(path_key.value), str(method_key.value).lower())] = (
                    method_key.start_mark.line + 1
                )
    return index


def _is_admin(raw_op: dict[str, Any], path: str, item: dict[str, Any] | None = None) -> bool:
    """Whether an operation is meant for administrators only.

    Declared roles decide when present, read like the gateway reads them: the path item's
    extensions under the operation's, ``x-bastion-allow`` (``authenticated``: anyone
    signed in; ``{roles: [...], match: any|all}``) or else ``x-bastion-roles`` (or
    ``x-roles``). Admin-only when *every* role allowed is privileged, so ``[customer,
    admin]`` (customers allowed, admins too) is not admin-only; with ``match: all``, when
    any role required is. Without declared roles, an ``admin`` tag or an ``/admin/``-like
    path segment labels it. The identities file can label more (``admin_operations``).
    """
    declared = {k: v for k, v in (item or {}).items() if str(k).startswith("x-")}
    declared.update({k: v for k, v in raw_op.items() if str(k).startswith("x-")})
    allow = declared.get("x-bastion-allow")
    if allow == "authenticated":
        return False
    every = isinstance(allow, dict) and allow.get("match") == "all"
    if isinstance(allow, dict):
        roles: Any = allow.get("roles") or []
    else:
        roles = declared.get("x-bastion-roles") or declared.get("x-roles") or []
    if isinstance(roles, str):
        roles = [roles]
    if isinstance(roles, list) and roles:
        privileged = [str(r).lower() in PRIVILEGED_ROLES for r in roles]
        return any(privileged) if every else all(privileged)
    tags = raw_op.get("tags")
    labels = [str(t).lower() for t in tags] if isinstance(tags, list) else []
    return "admin" in labels or bool(ADMIN_MARKERS.search(path))


def _location(param: Any) -> str:
    return str(getattr(param.location, "value", param.location))


def _fetch(url: str, timeout: float = 15.0) -> str:
    """GET a spec over http(s); 8 MiB at most."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http(s) URLs are fetched")
    accept = {"Accept": "application/json, application/yaml"}
    request = urllib.request.Request(url, headers=accept)  # noqa: S310 - scheme checked above
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read(8 << 20)
    return body.decode("utf-8")


def load_spec(location: str | Path) -> ApiSpec:
    """Load and validate an OpenAPI 3.x document from a file or an http(s) URL.

    Raise ConfigError if it cannot be read or is not a usable OpenAPI document.
    """
    source = str(location)
    path = Path(location)
    try:
        if source.startswith(("http://", "https://")):
            text = _fetch(source)
            native = schemathesis.openapi.from_file(text)
        else:
            text = path.read_text(encoding="utf-8")
            native = schemathesis.openapi.from_path(str(path))
    except OSError as exc:
        why = exc.strerror or str(getattr(exc, "reason", exc))
        raise ConfigError(f"cannot read the spec: {why}", location=source) from exc
    except Exception as exc:  # schemathesis raises its own loader errors
        raise ConfigError(f"not a usable OpenAPI document: {exc}", location=source) from exc
    raw: dict[str, Any] = native.raw_schema
    unencodable = lone_surrogate_at(raw)
    if unencodable is not None:  # every report and request would fail on it later
        raise ConfigError(
            "unpaired UTF-16 surrogate escape (not encodable as UTF-8)",
            location=f"{source}: {unencodable or '/'}",
        )
    lines = _line_index(text)
    global_security = raw.get("security") or []
    operations: list[Operation] = []
    results: list[Any] = list(native.get_all_operations())
    for result in results:
        if isinstance(result, Err):
            raise _unusable(result.err(), source, lines)
        st_op = result.ok()
        method = str(st_op.method).lower()
        raw_op: dict[str, Any] = resolve(st_op.definition.raw, raw)
        item = (raw.get("paths") or {}).get(st_op.path)
        if isinstance(item, dict) and "$ref" in item:
            item = resolve(item, raw)
        params = tuple(
            Param(
                p.name,
                _location(p),
                bool(resolve(p.definition, raw).get("required")),
                resolve(p.definition, raw).get("schema") or {},
            )
            for p in st_op.iter_parameters()
            if not (_location(p) == "header" and p.name.lower() == "authorization")
        )
        body_schema: dict[str, Any] | None = None
        media_type: str | None = None
        for body in st_op.body:
            if "json" in body.media_type or media_type is None:
                media_type = body.media_type
                body_schema = resolve(body.definition, raw).get("schema") or {}
        responses: dict[str, dict[str, Any] | None] = {}
        for status, response in (raw_op.get("responses") or {}).items():
            content = (response or {}).get("content") or {}
            schema = next(
                (
                    c.get("schema")
                    for mt, c in content.items()
                    if "json" in mt and isinstance(c, dict)
                ),
                None,
            )
            responses[str(status)] = schema
        security = raw_op.get("security", global_security)
        secured = any(bool(requirement) for requirement in security) if security else False
        operations.append(
            Operation(
                method=method.upper(),
                path=st_op.path,
                operation_id=raw_op.get("operationId"),
                params=params,
                body_schema=body_schema,
                media_type=media_type,
                responses=responses,
                secured=secured,
                admin=_is_admin(raw_op, st_op.path, item if isinstance(item, dict) else None),
                pointer=_pointer("paths", st_op.path, method),
                line=lines.get((st_op.path, method)),
                native=st_op,
            )
        )
    return ApiSpec(source=source, raw=raw, operations=operations, native=native, text=text)


def _unusable(error: Exception, source: str, lines: dict[tuple[str, str], int]) -> ConfigError:
    """The error of an operation schemathesis cannot use, naming it, its pointer and line."""
    path, method = getattr(error, "path", None), getattr(error, "method", None)
    why = " ".join(str(error).split())  # schemathesis writes several indented lines
    if not isinstance(path, str) or not isinstance(method, str):
        return ConfigError(f"invalid operation in the spec: {why}", location=source)
    line = lines.get((path, method.lower()))
    where = f"{source}: {_pointer('paths', path, method.lower())}"
    return ConfigError(
        f"invalid operation {method.upper()} {path}: {why}",
        location=where + (f" (line {line})" if line else ""),
    )


def generate_cases(op: Operation, count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``count`` positive cases from schemathesis: path/query/body values per case."""
    if count <= 0 or op.native is None:
        return []
    cases: list[dict[str, Any]] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(op.native.as_strategy())
    def collect(case: Any) -> None:
        body = case.body if type(case.body).__name__ != "NotSet" else None
        headers = {
            k: v for k, v in dict(case.headers or {}).items() if k.lower() != "authorization"
        }
        cases.append(
            {
                "path": dict(case.path_parameters or {}),
                "query": dict(case.query or {}),
                "headers": headers,
                "body": body,
            }
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            collect()
        except Exception:  # an unsatisfiable schema must not stop the scan
            return cases
    return cases[:count]
