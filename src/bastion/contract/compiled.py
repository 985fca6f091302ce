"""Per-operation contracts, compiled once at load time and enforced per request/response.

:func:`compile_operation` turns one :class:`~bastion.contract.spec.Operation` into an
:class:`OperationContract`: one jsonschema-rs validator per parameter and per request media
type, a parameter deserialiser per parameter, and per declared response (status, media type)
a projection plan plus a validator. Per request the contract does no schema work beyond
running those validators; per response one JSON parse, one walk (projection and
sensitive-data scan together), one validator run and, only when something was removed, one
dump.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote

from bastion.contract.documents import escape_pointer
from bastion.contract.messages import MAX_ERRORS, ErrorEntry, errors_of
from bastion.contract.parameters import ParameterRule, StyleError, parse_cookies, parse_query
from bastion.contract.projection import LEAF, Plan, PlanBuilder
from bastion.contract.request_body import BodyRule, FormDecoder
from bastion.contract.responses import FilteredResponse, ResponseRule, filter_json
from bastion.contract.schema import SchemaCompiler, resolve_local, schema_types
from bastion.contract.spec import ApiSpec, Operation
from bastion.errors import ConfigError, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from bastion.types import Headers

__all__ = [
    "ContractLimits",
    "FilteredResponse",
    "OperationContract",
    "ValidatedRequest",
    "compile_operation",
    "compile_spec",
]

_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
# A parameter array or object with more items gets its first error only (see errors_of).
_ALL_ERRORS_UP_TO_ITEMS = 64
#: Content-Type values remembered per operation (then forgotten all at once), and the
#: longest remembered: a client can send any number of distinct ones.
_SELECTED_CAP = 64
_SELECTED_MAX_CHARS = 256


@dataclass(frozen=True)
class ContractLimits:
    """Hardened defaults applied where the spec is loose (see docs/contract.md)."""

    max_body_bytes: int = 1_048_576
    max_string_length: int = 10_000
    max_array_items: int = 1_000
    max_depth: int = 32
    strict_properties: bool = True
    max_response_bytes: int = 4_194_304
    pass_large_responses: bool = False
    response_mode: Literal["strict", "monitor"] = "strict"


class ValidatedRequest(NamedTuple):
    """The request as the contract understood it: coerced parameters and the parsed body."""

    path: Mapping[str, Any]
    query: Mapping[str, Any]
    headers: Mapping[str, Any]
    cookies: Mapping[str, Any]
    #: Parsed JSON (or form) body; None when absent or of a media type not parsed.
    body: Any
    media_type: str | None


class OperationContract:
    """The compiled contract of one operation (immutable, shared by all requests)."""

    def __init__(
        self,
        operation: Operation,
        limits: ContractLimits,
        parameters: tuple[ParameterRule, ...],
        bodies: Mapping[str, BodyRule],
        body_required: bool,
        responses: Mapping[str, Mapping[str, ResponseRule] | None],
    ) -> None:
        self.operation = operation
        self.limits = limits
        self.needs_body = bool(bodies)
        self._path = tuple(p for p in parameters if p.location == "path")
        # Exploded form objects claim leftover pairs, so they run last.
        self._query = tuple(
            sorted(
                (p for p in parameters if p.location == "query"),
                key=lambda p: p.shape == "object" and p.style == "form" and p.explode,
            )
        )
        self._header = tuple(p for p in parameters if p.location == "header")
        self._cookie = tuple(p for p in parameters if p.location == "cookie")
        self._cookie_names = frozenset(_cookie_key(p.name) for p in self._cookie)
        self._bodies = dict(bodies)
        self._body_required = body_required
        # Content-Type value -> BodyRule.select's answer: clients send few distinct ones.
        self._selected: dict[str, tuple[BodyRule | None, str | None]] = {}
        self._responses = dict(responses)

    def validate_request(
        self,
        *,
        path_params: Mapping[str, str],
        query_string: bytes,
        headers: Headers,
        body: bytes | None,
    ) -> ValidatedRequest:
        """Validate everything; raise 413, 415 or 400 (ValidationFailed with JSON pointers)."""
        if body is not None and len(body) > self.limits.max_body_bytes:
            raise PayloadTooLarge(reason="contract.body_too_large")
        errors: list[ErrorEntry] = []
        path = self._params_path(path_params, errors) if self._path else {}
        query = self._params_query(query_string, errors) if self._query or query_string else {}
        header_values: dict[str, Any] = {}
        for rule in self._header:
            self._one(rule, lambda r: r.from_header(headers.get_all(r.name)), header_values, errors)
        cookies: dict[str, Any] = {}
        if self._cookie:
            try:
                pairs = parse_cookies(headers.get_all("cookie"))
            except StyleError as exc:
                errors.append({"pointer": "/cookie", "detail": str(exc)})
                pairs = []
            try:
                _no_cookie_aliases(pairs, self._cookie_names)
            except StyleError as exc:
                errors.append({"pointer": "/cookie", "detail": str(exc)})
            for rule in self._cookie:
                self._one(rule, lambda r: r.from_cookies(pairs), cookies, errors)
        parsed, media = self._body(body, headers, errors)
        if errors:
            raise ValidationFailed(
                "The request does not match the API contract.",
                errors=errors[:MAX_ERRORS],
                reason="contract.request_invalid",
            )
        return ValidatedRequest(path, query, header_values, cookies, parsed, media)

    @staticmethod
    def _one(
        rule: ParameterRule,
        read: Callable[[ParameterRule], tuple[bool, Any]],
        out: dict[str, Any],
        errors: list[ErrorEntry],
    ) -> None:
        try:
            present, value = read(rule)
        except StyleError as exc:
            errors.append({"pointer": rule.prefix, "detail": str(exc)})
            return
        if not present:
            if rule.required:
                errors.append({"pointer": rule.prefix, "detail": "required parameter is missing"})
            return
        if not rule.validator.is_valid(value):
            large = isinstance(value, list | dict) and len(value) > _ALL_ERRORS_UP_TO_ITEMS
            errors.extend(
                errors_of(rule.validator, value, rule.prefix, large=large, detailed=rule.detailed)
            )
            return
        out[rule.name] = value

    def _params_path(self, params: Mapping[str, str], errors: list[ErrorEntry]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for rule in self._path:
            raw = params.get(rule.name)
            self._one(rule, partial(_from_path, raw=raw), out, errors)
        return out

    def _params_query(self, query_string: bytes, errors: list[ErrorEntry]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            pairs = parse_query(query_string)
            if b";" in query_string and parse_query(query_string.replace(b";", b"&")) != pairs:
                # Rack 2, Go before 1.17 and Python's parse_qs before 3.9.2 split on ';'
                # too: "q=abc;role=admin" would be a "role" the contract never saw.
                raise StyleError(
                    "';' in the query string is read as '&' by some servers: encode it as %3B"
                )
        except StyleError as exc:
            errors.append({"pointer": "/query", "detail": str(exc)})
            return out
        claimed: set[int] = set()
        for rule in self._query:
            self._one(rule, lambda r: r.from_query(pairs, claimed), out, errors)
        if self.limits.strict_properties and len(claimed) < len(pairs):
            unknown = dict.fromkeys(k for i, (k, _) in enumerate(pairs) if i not in claimed)
            for name in unknown:
                errors.append(
                    {"pointer": f"/query/{escape_pointer(name)}", "detail": "unknown parameter"}
                )
        return out

    def _body(
        self, body: bytes | None, headers: Headers, errors: list[ErrorEntry]
    ) -> tuple[Any, str | None]:
        if not body:
            if self._body_required:
                errors.append({"pointer": "/body", "detail": "request body is required"})
            return None, None
        if not self._bodies:
            errors.append({"pointer": "/body", "detail": "this operation takes no request body"})
            return None, None
        content_types = headers.get_all("content-type")
        if len(content_types) != 1:
            raise UnsupportedMediaType(reason="contract.media_type")
        content_type = content_types[0]
        chosen = self._selected.get(content_type)
        if chosen is None:
            chosen = BodyRule.select(self._bodies, content_type)
            if len(self._selected) >= _SELECTED_CAP:
                self._selected.clear()
            if len(content_type) <= _SELECTED_MAX_CHARS:
                self._selected[content_type] = chosen
        rule, media = chosen
        if rule is None:
            raise UnsupportedMediaType(reason="contract.media_type")
        return rule.parse(body, media, self.limits.max_depth, errors), media

    def filter_response(
        self, status: int, content_type: str | None, body: bytes
    ) -> FilteredResponse:
        """Project a JSON response onto its declared schema (see module docstring)."""
        responses = self._responses
        declared = responses.get(str(status), _MISSING)
        if declared is _MISSING:
            declared = responses.get(f"{status // 100}XX", _MISSING)
        if declared is _MISSING:
            declared = responses.get("DEFAULT", _MISSING)
        content = None if declared is _MISSING else declared
        return filter_json(self.limits, status, content_type, body, content, declared is _MISSING)


_MISSING: Any = object()


def _cookie_key(name: str) -> str:
    """A cookie name as the most lenient server reads it: PHP percent-decodes names and
    turns '.' and ' ' into '_' (``%73ession``, ``session.id`` and ``session_id`` collide)."""
    return unquote(name).replace(".", "_").replace(" ", "_")


def _no_cookie_aliases(pairs: list[tuple[str, str]], declared: frozenset[str]) -> None:
    """Refuse a declared cookie also sent under another spelling of its name: the
    contract checks the copy spelt as declared, a server decoding names may read the
    other one (which copy wins differs between servers)."""
    if not declared:
        return
    spelt: dict[str, str] = {}
    for name, _ in pairs:
        key = _cookie_key(name)
        if key in declared:
            other = spelt.setdefault(key, name)
            if other != name:
                raise StyleError(f"cookie {key!r} is sent under two spellings of its name")


def _from_path(rule: ParameterRule, raw: str | None) -> tuple[bool, Any]:
    return (raw is not None, rule.from_path(raw) if raw is not None else None)


def _parameters(document: Mapping[str, Any], op: Operation) -> list[Mapping[str, Any]]:
    item, _ = resolve_local(document, document["paths"][op.path])
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for source in (item.get("parameters") or (), op.raw.get("parameters") or ()):
        for raw in source:
            param, _ = resolve_local(document, raw)
            merged[(str(param["name"]), str(param["in"]))] = param
    return list(merged.values())


def compile_operation(spec: ApiSpec, op: Operation, limits: ContractLimits) -> OperationContract:
    """Compile one operation; ConfigError names the operation when a schema does not compile."""
    document = spec.raw
    where = f"{spec.source}: {op.pointer}"
    request = SchemaCompiler(
        document,
        spec.version,
        "request",
        max_string_length=limits.max_string_length,
        max_array_items=limits.max_array_items,
        strict_properties=limits.strict_properties,
    )
    try:
        rules: list[ParameterRule] = []
        for param in _parameters(document, op):
            if param["in"] == "header" and str(param["name"]).lower() in _IGNORED_HEADERS:
                continue
            schema, json_content = param.get("schema", {}), False
            if "content" in param:
                media, media_object = next(iter(param["content"].items()))
                schema, json_content = (media_object or {}).get("schema", {}), True
            validator, detailed = request.compile(schema)
            rules.append(
                ParameterRule.build(document, param, validator, schema, json_content, detailed)
            )
        request_body, _ = resolve_local(document, op.raw.get("requestBody"))
        bodies: dict[str, BodyRule] = {}
        if isinstance(request_body, Mapping):
            for media, media_object in (request_body.get("content") or {}).items():
                schema = (media_object or {}).get("schema")
                body_validator, detailed = (
                    request.compile(schema) if schema is not None else (None, True)
                )
                form = FormDecoder.build(document, schema) if schema is not None else None
                structured = schema is not None and bool(
                    schema_types(document, schema) & {"object", "array"}
                )
                bodies[media] = BodyRule(media, body_validator, form, detailed, structured)
        responses = _responses(spec, op)
    except ConfigError as exc:
        raise ConfigError(str(exc), location=where) from exc
    return OperationContract(
        op,
        limits,
        tuple(rules),
        bodies,
        bool(isinstance(request_body, Mapping) and request_body.get("required")),
        responses,
    )


def compile_spec(
    spec: ApiSpec, limits: ContractLimits | None = None
) -> dict[tuple[str, str], OperationContract]:
    """Every operation compiled, keyed by ``(METHOD, path template)``."""
    limits = limits or ContractLimits()
    return {(op.method, op.path): compile_operation(spec, op, limits) for op in spec.operations}


def _responses(spec: ApiSpec, op: Operation) -> dict[str, Mapping[str, ResponseRule] | None]:
    document = spec.raw
    compiler = SchemaCompiler(document, spec.version, "response")
    builder = PlanBuilder(document, compiler)
    out: dict[str, Mapping[str, ResponseRule] | None] = {}
    for code, raw in (op.raw.get("responses") or {}).items():
        response, _ = resolve_local(document, raw)
        content = response.get("content") if isinstance(response, Mapping) else None
        if not content:
            out[str(code).upper()] = None
            continue
        rules: dict[str, ResponseRule] = {}
        for media, media_object in content.items():
            schema = (media_object or {}).get("schema")
            plan: Plan = builder.build(schema) if schema is not None else LEAF
            validator, detailed = compiler.compile(schema) if schema is not None else (None, True)
            rules[media] = ResponseRule(plan, validator, detailed)
        out[str(code).upper()] = rules
    return out
