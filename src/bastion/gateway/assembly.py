"""From config (and the API's OpenAPI document) to routes with their policy chains.

Each route is first normalised into a :class:`RouteSpec` — whether it came from the YAML
``routes:`` list or from an OpenAPI operation with ``x-bastion-*`` extensions (YAML wins
per operation) — and then given its chain, in request-path order::

    version -> authentication -> rate limit -> login -> allow -> owner (request / prefetch)
    -> contract (request)  ...forward...  contract (response) -> owner (response / list)

Which policies join a route is decided here, once; nothing is decided per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import ValidationError

from bastion.config import LoadedConfig
from bastion.config.loader import KeyPath, dotted, written_path
from bastion.config.models import (
    AllowConfig,
    ApiConfig,
    ConcurrencyConfig,
    LoginConfig,
    OwnerListRule,
    OwnerRule,
    RateLimitRule,
    RouteConfig,
)
from bastion.contract.compiled import ContractLimits, OperationContract, compile_operation
from bastion.contract.spec import ApiSpec, Operation, load_spec
from bastion.contract.versioning import deprecation_headers
from bastion.decisions import AllowRule, OwnerSpec, parse_field_ref
from bastion.errors import ConfigError
from bastion.gateway.upstream import UpstreamRuntime
from bastion.policies.authentication import AuthenticationPolicy
from bastion.policies.authorization import AllowPolicy, OwnerPrefetchPolicy, RequestOwnerPolicy
from bastion.policies.concurrency import ConcurrencyPolicy
from bastion.policies.contract import ContractPolicy
from bastion.policies.ipfilter import IpFilterPolicy
from bastion.policies.login import LoginPolicy
from bastion.policies.ratelimit import LimitSpec, RateLimitPolicy
from bastion.policies.response_owner import OwnerListPolicy, ResponseOwnerPolicy
from bastion.policies.versioning import VersionPolicy
from bastion.ratelimit import BackoffPolicy, parse_quota, parse_rate
from bastion.types import Policy

__all__ = ["RouteSpec", "Services", "policies_for", "route_specs", "route_warnings"]

_SCHEME_METHODS = {
    "http": "jwt",
    "oauth2": "jwt",
    "openIdConnect": "jwt",
    "apiKey": "api_key",
    "mutualTLS": "mtls",
}


@dataclass
class Services:
    """Shared, per-process resources the policies use."""

    store: Any
    verifier: Any
    api_keys: Any
    api_key_store: Any
    api_key_header: str
    clock: Callable[[], float]
    #: The mTLS authenticator (``authentication.mtls``), or None.
    mtls: Any = None
    #: IPv6 clients are counted per network of this prefix (``client_ipv6_prefix``).
    ipv6_prefix: int = 64
    #: ``limits.body_timeout``: how long a request body may take to arrive.
    body_timeout: float = 10.0
    #: Each API's ``base_path`` by name (where a version's successor lives).
    base_paths: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RouteSpec:
    template: str
    methods: list[str]
    public: bool
    auth_methods: list[str]
    allow: AllowConfig | Literal["authenticated"] | None
    owner: OwnerRule | None
    owner_list: OwnerListRule | None
    rate_limit: list[RateLimitRule]
    rate_scope: str
    login: LoginConfig | None
    concurrency: ConcurrencyConfig | None
    location: str
    operation: Operation | None = None
    deprecated: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    #: The allow rule was written for this route (YAML, x-bastion-*), not the API's default.
    explicit_allow: bool = False
    #: Scopes the spec's oauth2/openIdConnect requirement lists (all of them are needed).
    spec_scopes: frozenset[str] = frozenset()


def route_specs(
    loaded: LoadedConfig, api: ApiConfig, index: int
) -> tuple[list[RouteSpec], ApiSpec | None]:
    """Every route of ``api``, from its YAML routes and/or its OpenAPI operations."""
    config = loaded.config
    configured = config.authentication.methods()
    default_methods: list[str] = list(api.authentication or configured)
    where: Callable[[KeyPath], str] = loaded.source.location
    specs: list[RouteSpec] = []
    overrides: dict[tuple[str, str], tuple[RouteConfig, int]] = {}
    spec: ApiSpec | None = None
    if api.openapi is not None:
        spec = load_spec(
            loaded.resolve(api.openapi),
            overlay=loaded.resolve(api.overlay) if api.overlay else None,
        )
        for r_index, route in enumerate(api.routes):
            for method in route.methods:
                overrides[(route.path, method)] = (route, r_index)
        declared = {(op.path, op.method) for op in spec.operations}
        for key, (_, r_index) in overrides.items():
            if key not in declared:
                raise ConfigError(
                    f"{key[1]} {key[0]} is not an operation of {api.openapi}",
                    location=where(("apis", index, "routes", r_index)),
                )
        for op in spec.operations:
            if api.paths and not any(fnmatchcase(op.path, glob) for glob in api.paths):
                continue
            override = overrides.get((op.path, op.method))
            specs.append(_from_operation(loaded, api, index, spec, op, override, default_methods))
    else:
        for r_index, route in enumerate(api.routes):
            specs.append(
                _from_config(
                    api,
                    route,
                    default_methods,
                    where(("apis", index, "routes", r_index)),
                    f"route:{api.name}:{r_index}",
                )
            )
    for route_spec in specs:
        _check_route(route_spec, api, configured)
    return specs, spec


def _template(api: ApiConfig, path: str) -> str:
    return api.base_path + path if path != "/" else (api.base_path or "/")


def _from_config(
    api: ApiConfig, route: RouteConfig, methods: list[str], location: str, scope: str
) -> RouteSpec:
    return RouteSpec(
        template=_template(api, route.path),
        methods=list(route.methods),
        public=route.public,
        auth_methods=list(route.authentication or methods),
        allow=route.allow if route.allow is not None else api.allow,
        explicit_allow=route.allow is not None,
        owner=route.owner,
        owner_list=route.owner_list,
        rate_limit=list(route.rate_limit if route.rate_limit is not None else api.rate_limit),
        rate_scope=scope if route.rate_limit is not None else f"api:{api.name}",
        login=route.login,
        concurrency=route.concurrency or api.concurrency,
        location=location,
    )


#: The x-bastion-* extensions an operation (or its path item) may carry.
_EXTENSIONS = frozenset(
    {
        "x-bastion-allow",
        "x-bastion-roles",
        "x-bastion-scopes",
        "x-bastion-owner",
        "x-bastion-owner-list",
        "x-bastion-rate-limit",
        "x-bastion-login",
    }
)


def _from_operation(
    loaded: LoadedConfig,
    api: ApiConfig,
    index: int,
    spec: ApiSpec,
    op: Operation,
    override: tuple[RouteConfig, int] | None,
    default_methods: list[str],
) -> RouteSpec:
    location = f"{spec.source or api.openapi}#{op.pointer}"
    ext = op.extensions
    operation = f"{op.method} {op.path}"
    unknown = sorted(set(ext) - _EXTENSIONS)
    if unknown:
        # A misspelt extension (x-bastion-role) would leave the operation to the API's
        # defaults, often wider than meant: refuse it.
        raise ConfigError(
            f"unknown extension {unknown[0]} on operation {operation}; Bastion reads "
            + ", ".join(sorted(_EXTENSIONS)),
            location=location,
        )
    security = op.security if op.security is not None else spec.security
    public = security is not None and (len(security) == 0 or any(not req for req in security))
    methods = default_methods
    spec_scopes = _spec_scopes(spec, security or [], operation, location)
    if security:
        from_spec = sorted(
            {
                _SCHEME_METHODS[spec.security_schemes.get(name, {}).get("type", "")]
                for requirement in security
                for name in requirement
                if spec.security_schemes.get(name, {}).get("type", "") in _SCHEME_METHODS
            }
        )
        if from_spec:
            methods = from_spec
    allow = _ext_allow(ext, operation, location)
    # Each extension is validated like its YAML twin; an error names the extension.
    name = "x-bastion-owner"
    checked: Any = ext.get(name)  # the value being validated, for the error's key path
    try:
        owner = OwnerRule.model_validate(checked) if name in ext else None
        name = "x-bastion-owner-list"
        checked = ext.get(name)
        owner_list = OwnerListRule.model_validate(checked) if name in ext else None
        name = "x-bastion-rate-limit"
        limits = ext.get(name, [])  # a list of rules, or one rule
        rate_limit: list[RateLimitRule] = []
        for i, checked in enumerate(limits if isinstance(limits, list) else [limits]):
            name = f"x-bastion-rate-limit[{i}]" if isinstance(limits, list) else name
            rate_limit.append(RateLimitRule.model_validate(checked))
        name = "x-bastion-login"
        checked = ext.get(name)
        login = LoginConfig.model_validate(checked) if name in ext else None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        path = _error_path(exc, checked)
        raise ConfigError(
            f"invalid {name}{'.' + path if path else ''} of operation {operation}: {first['msg']}",
            location=location,
        ) from None
    route = RouteSpec(
        template=_template(api, op.path),
        methods=[op.method],
        public=public,
        auth_methods=methods,
        allow=allow if allow is not None else api.allow,
        explicit_allow=allow is not None,
        spec_scopes=spec_scopes,
        owner=owner,
        owner_list=owner_list,
        rate_limit=rate_limit or list(api.rate_limit),
        rate_scope=f"op:{api.name}:{op.method}:{op.path}" if rate_limit else f"api:{api.name}",
        login=login,
        concurrency=api.concurrency,
        location=location,
        operation=op,
        deprecated=op.deprecated,
    )
    if override is not None:
        config_route, r_index = override
        fields = config_route.model_fields_set
        route.location = loaded.source.location(("apis", index, "routes", r_index))
        if "public" in fields:
            route.public = config_route.public
        if config_route.authentication is not None:
            route.auth_methods = list(config_route.authentication)
        if config_route.allow is not None:
            route.allow = config_route.allow
            route.explicit_allow = True
        if config_route.owner is not None:
            route.owner = config_route.owner
        if config_route.owner_list is not None:
            route.owner_list = config_route.owner_list
        if config_route.rate_limit is not None:
            route.rate_limit = list(config_route.rate_limit)
            route.rate_scope = f"route:{api.name}:{r_index}"
        if config_route.login is not None:
            route.login = config_route.login
        if config_route.concurrency is not None:
            route.concurrency = config_route.concurrency
    return route


def _spec_scopes(
    spec: ApiSpec, security: Sequence[Mapping[str, Any]], operation: str, location: str
) -> frozenset[str]:
    """The scopes an operation's security requirement lists (oauth2, openIdConnect).

    A requirement naming several schemes at once (``{bearer: [], apiKey: []}``: both
    credentials) cannot be enforced (one credential per request) and alternatives that
    list different scopes cannot be one allow rule: both are refused rather than
    weakened (they became "either one" and "no scope").
    """
    scoped: list[frozenset[str]] = []
    for requirement in security:
        if len(requirement) > 1:
            raise ConfigError(
                f"operation {operation} requires {' and '.join(sorted(requirement))} at once; "
                "Bastion takes one credential per request: list them as alternatives",
                location=location,
            )
        for name, values in requirement.items():
            kind = spec.security_schemes.get(name, {}).get("type", "")
            scopes = frozenset(str(v) for v in values) if isinstance(values, list | tuple) else None
            if kind in ("oauth2", "openIdConnect"):
                scoped.append(scopes or frozenset())
            else:
                scoped.append(frozenset())
    needed = set(scoped)
    if len(needed) > 1 and any(needed):
        raise ConfigError(
            f"operation {operation}'s security alternatives need different scopes "
            f"({', '.join(sorted(' '.join(sorted(s)) or '(none)' for s in needed))}): write "
            "x-bastion-allow for it, or a YAML route",
            location=location,
        )
    return next(iter(needed)) if needed else frozenset()


def _error_path(exc: ValidationError, value: Any) -> str:
    """The key path of ``exc``'s first error within ``value``, as written (``key[1]``)."""
    first = exc.errors(include_url=False)[0]
    return dotted(written_path(first["loc"], value, missing=first["type"] == "missing"))


def _ext_allow(
    ext: Mapping[str, Any], operation: str = "(unnamed)", location: str | None = None
) -> AllowConfig | Literal["authenticated"] | None:
    """The allow rule of an operation: ``x-bastion-allow`` (``authenticated``, or a mapping
    shaped like the YAML ``allow``) or ``x-bastion-roles`` / ``x-bastion-scopes``.

    Roles and scopes must be lists of non-empty strings: nothing else is coerced
    (``x-bastion-roles: admin`` would otherwise become the roles ``a, d, m, i, n``). Any
    other shape, or ``x-bastion-allow`` together with roles/scopes (path item and
    operation merged: one would silently win), is a ConfigError naming the operation and
    the extension, so the gateway does not start.
    """

    def fail(name: str, problem: str) -> ConfigError:
        return ConfigError(f"{name} of operation {operation} {problem}", location=location)

    def strings(name: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail(
                name,
                "must be a list of non-empty strings, e.g. [admin], "
                f"not {type(value).__name__} {value!r:.80}",
            )
        return value

    shorthand = [n for n in ("x-bastion-roles", "x-bastion-scopes") if n in ext]
    if "x-bastion-allow" in ext:
        if shorthand:
            raise fail(
                "x-bastion-allow",
                f"is combined with {' and '.join(shorthand)}: write one or the other "
                "(the path item's and the operation's extensions are merged)",
            )
        value = ext["x-bastion-allow"]
        if value == "authenticated":
            return "authenticated"
        if not isinstance(value, Mapping):
            raise fail(
                "x-bastion-allow",
                "must be `authenticated` or a mapping {roles: [...], scopes: [...], match: "
                f"any|all}}, not {type(value).__name__} {value!r:.80}",
            )
        try:
            rule = AllowConfig.model_validate(value)
        except ValidationError as exc:
            path = _error_path(exc, value)
            raise fail(
                f"x-bastion-allow{'.' + path if path else ''}",
                f"is invalid: {exc.errors(include_url=False)[0]['msg']}",
            ) from None
        for key in ("roles", "scopes"):
            strings(f"x-bastion-allow.{key}", value.get(key, []))
        return rule
    if not shorthand:
        return None
    roles = strings("x-bastion-roles", ext["x-bastion-roles"]) if "x-bastion-roles" in ext else []
    scopes = (
        strings("x-bastion-scopes", ext["x-bastion-scopes"]) if "x-bastion-scopes" in ext else []
    )
    if not roles and not scopes:
        raise fail(
            " and ".join(shorthand),
            "lists no role or scope: list some, or write x-bastion-allow: authenticated",
        )
    return AllowConfig(roles=list(roles), scopes=list(scopes))


def _require_spec_scopes(route: RouteSpec) -> None:
    """The scopes the spec's requirement lists are enforced: the route's own allow rule
    must need them all, or, without one, they become its rule (they were ignored)."""
    needed = route.spec_scopes
    allow = route.allow
    if not route.explicit_allow:
        route.allow = AllowConfig(scopes=sorted(needed), match="all")
        return
    if (
        isinstance(allow, AllowConfig)
        and needed <= set(allow.scopes)
        and not allow.roles
        and (allow.match == "all" or len(allow.scopes) == 1)
    ):
        return
    raise ConfigError(
        f"route {route.template}: the spec requires the scopes {' '.join(sorted(needed))}, "
        "which its allow rule does not require (list them under scopes with match: all)",
        location=route.location,
    )


#: Seconds a concurrency lease outlives the longest its request can take.
_LEASE_MARGIN = 5.0


def _check_route(route: RouteSpec, api: ApiConfig, configured: Sequence[str]) -> None:
    if route.public:
        if route.owner or route.owner_list:
            raise ConfigError(
                "a public route cannot have owner rules (there is no principal)",
                location=route.location,
            )
        if route.explicit_allow:
            # It used to be dropped silently: x-bastion-roles: [admin] on an operation
            # whose security also lists {} (anyone) left it open to everyone.
            raise ConfigError(
                f"route {route.template} is public (public: true, or a security requirement "
                "that is empty or lists {}) but has an allow rule: a public route has no "
                "principal to check; remove one of them",
                location=route.location,
            )
        return
    if route.spec_scopes:
        _require_spec_scopes(route)
    if not route.auth_methods:
        raise ConfigError(
            f"route {route.template} is not public: true but no authentication is configured "
            "(authentication.jwt, authentication.api_keys or authentication.mtls)",
            location=route.location,
        )
    if route.operation is not None:
        # The spec lists alternatives (bearer OR apiKey): those configured here are accepted.
        route.auth_methods = [m for m in route.auth_methods if m in configured]
        if not route.auth_methods:
            raise ConfigError(
                f"operation {route.template} requires security schemes of which none is "
                "configured under authentication",
                location=route.location,
            )
    missing = [m for m in route.auth_methods if m not in configured]
    if missing:
        raise ConfigError(
            f"route {route.template} accepts {missing} but that authentication is not configured",
            location=route.location,
        )
    if route.allow is None:
        raise ConfigError(
            f"route {route.template} needs an allow rule (roles/scopes) or `allow: "
            "authenticated`: least privilege is explicit",
            location=route.location,
        )


def _dated_at_load(api: ApiConfig, route: RouteSpec) -> bool:
    """Deprecated in the spec with no configured date: announced from when it was loaded."""
    return route.deprecated and (api.version is None or api.version.deprecated_at is None)


def route_warnings(api: ApiConfig, routes: list[RouteSpec], spec: ApiSpec | None) -> list[str]:
    """Warnings about ``api``'s routes, as ``bastion check`` prints its findings: an
    operation deprecated in the spec while the API configures no deprecation date."""
    notes: list[str] = []
    for route in routes:
        if _dated_at_load(api, route):
            where = route.location
            if spec is not None and route.operation is not None:  # the spec's own line
                where = f"{spec.source or api.openapi}#{route.operation.pointer}"
            notes.append(
                f"{where}: warning: deprecated-without-date: the operation is "
                f"deprecated in the spec, but the API {api.name!r} has no "
                "version.deprecated_at: its Deprecation header names the time the gateway "
                "loaded the spec, a date that moves with every restart"
            )
    return notes


def policies_for(
    route: RouteSpec,
    api: ApiConfig,
    spec: ApiSpec | None,
    upstream: UpstreamRuntime,
    services: Services,
) -> list[Policy]:
    """The policy chain of one route, in request-path order."""
    clock = services.clock
    policies: list[Policy] = []
    if api.ip_allow or api.ip_deny:
        policies.append(IpFilterPolicy(api.ip_allow, api.ip_deny))
    version = api.version
    if version is not None or route.deprecated:
        policies.append(_version_policy(api, route, clock, services.base_paths))
    if not route.public:
        policies.append(
            AuthenticationPolicy(
                methods=route.auth_methods,
                verifier=services.verifier,
                api_keys=services.api_keys,
                api_key_header=services.api_key_header,
                store=services.store,
                clock=clock,
                mtls=services.mtls,
            )
        )
    if route.rate_limit:
        policies.append(
            RateLimitPolicy(
                [
                    LimitSpec(
                        scope=f"{route.rate_scope}:{i}",
                        keys=tuple([rule.key] if isinstance(rule.key, str) else rule.key),
                        rate=parse_quota(rule.limit)
                        if rule.algorithm == "quota"
                        else parse_rate(rule.limit, burst=rule.burst),
                        algorithm=rule.algorithm,
                        fail_open=rule.fail_open,
                    )
                    for i, rule in enumerate(route.rate_limit)
                ],
                services.store,
                clock,
                ipv6_prefix=services.ipv6_prefix,
            )
        )
    if route.concurrency is not None:
        policies.append(
            ConcurrencyPolicy(
                scope=f"{api.name}:{route.template}",
                key=route.concurrency.key,
                limit=route.concurrency.limit,
                # A lease must outlive its request, or the slot frees while the request
                # still runs (ttl 1 s, an upstream taking 3 s: 3 in flight at limit 1):
                # at least the body's arrival, the whole upstream exchange and a margin.
                ttl=max(
                    route.concurrency.ttl,
                    services.body_timeout + upstream.timeouts.total + _LEASE_MARGIN,
                ),
                store=services.store,
                clock=clock,
                ipv6_prefix=services.ipv6_prefix,
            )
        )
    if route.login is not None:
        login = route.login
        policies.append(
            LoginPolicy(
                scope=f"{api.name}:{route.template}",
                username=parse_field_ref(login.username),
                failure_statuses=frozenset(login.failure_statuses),
                backoff=BackoffPolicy(
                    free_failures=min(2, login.max_failures - 1),
                    base_delay=login.base_delay,
                    max_delay=max(login.max_delay, login.base_delay),
                    lockout_after=login.max_failures,
                    lockout_duration=login.lockout,
                ),
                store=services.store,
                clock=clock,
            )
        )
    if not route.public and route.allow is not None:
        rule = (
            AllowRule()
            if route.allow == "authenticated"
            else AllowRule(
                frozenset(route.allow.roles), frozenset(route.allow.scopes), route.allow.match
            )
        )
        policies.append(AllowPolicy(rule))
    response_side: list[Policy] = []
    if route.owner is not None:
        owner = route.owner
        owner_spec = OwnerSpec(
            parse_field_ref(owner.equals or owner.in_claim or ""),
            "equals" if owner.equals else "in",
            frozenset(owner.unless_roles),
        )
        if owner.request is not None:
            policies.append(
                RequestOwnerPolicy(parse_field_ref(owner.request), owner_spec, owner.deny_status)
            )
        else:
            assert owner.response is not None
            ref = parse_field_ref(owner.response)
            if owner.before == "GET":
                policies.append(OwnerPrefetchPolicy(ref, owner_spec, owner.deny_status, upstream))
            response_side.append(ResponseOwnerPolicy(ref, owner_spec, owner.deny_status))
    if route.owner_list is not None:
        rule_list = route.owner_list
        list_spec = OwnerSpec(
            parse_field_ref(rule_list.equals or rule_list.in_claim or ""),
            "equals" if rule_list.equals else "in",
            frozenset(rule_list.unless_roles),
        )
        item_field = rule_list.field
        item_path = (
            parse_field_ref(item_field).path
            if item_field.startswith("/")
            else tuple(item_field.split("."))
        )
        response_side.append(
            OwnerListPolicy(parse_field_ref(rule_list.items), item_path, list_spec, rule_list.mode)
        )
    if spec is not None and route.operation is not None:
        contract = _compile(spec, route.operation, api)
        policies.append(ContractPolicy(contract))
    policies.extend(response_side)
    return policies


def _version_policy(
    api: ApiConfig, route: RouteSpec, clock: Callable[[], float], base_paths: Mapping[str, str]
) -> Policy:
    """RFC 9745/8594 headers. An operation marked ``deprecated: true`` in the spec without a
    configured date is announced as deprecated since the gateway loaded the spec (or since
    its sunset, when that has passed: a restart after the sunset must still start)."""
    version = api.version
    deprecated_at = version.deprecated_at if version else None
    sunset_at = version.sunset_at if version else None
    if _dated_at_load(api, route):
        deprecated_at = datetime.fromtimestamp(int(clock()), tz=UTC)
        if sunset_at is not None:
            deprecated_at = min(deprecated_at, sunset_at)
    successor = version.successor if version else None
    headers = deprecation_headers(
        deprecated_at,
        sunset_at,
        version.link if version else None,
        # RFC 5829: where the replacing version lives (its routes' prefix).
        successor=(base_paths.get(successor) or "/") if successor else None,
    )
    return VersionPolicy(
        headers=headers,
        deprecated_at=deprecated_at.timestamp() if deprecated_at else None,
        sunset_at=sunset_at.timestamp() if sunset_at else None,
        successor=successor,
        clock=clock,
    )


def _compile(spec: ApiSpec, op: Operation, api: ApiConfig) -> OperationContract:
    settings = api.contract
    limits = ContractLimits(
        max_string_length=settings.max_string_length,
        max_array_items=settings.max_array_items,
        max_depth=settings.max_depth,
        strict_properties=settings.strict_properties,
        max_response_bytes=settings.max_response_bytes,
        pass_large_responses=settings.pass_large_responses,
        response_mode=settings.response_mode,
    )
    return compile_operation(spec, op, limits)
