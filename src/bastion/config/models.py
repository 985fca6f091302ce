"""The typed, frozen configuration of the gateway (version 1).

Every field carries a description; docs/configuration.md is generated from them
(``bastion config-docs``). Unknown keys are errors. Values are validated once at startup.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from bastion.contract.versioning import to_datetime
from bastion.observability.config import MonitoringConfig

__all__ = [
    "AdminConfig",
    "AllowConfig",
    "ApiConfig",
    "ApiKeysConfig",
    "AuditConfig",
    "AuthenticationConfig",
    "ConcurrencyConfig",
    "ContractConfig",
    "CorsConfig",
    "GatewayConfig",
    "JwtIssuerConfig",
    "LimitsConfig",
    "ListenConfig",
    "LoginConfig",
    "MtlsConfig",
    "MtlsIdentity",
    "OwnerListRule",
    "OwnerRule",
    "RateLimitRule",
    "RouteConfig",
    "SecurityHeadersConfig",
    "StateConfig",
    "TLSConfig",
    "TimeoutConfig",
    "TracingConfig",
    "UpstreamConfig",
    "VersionConfig",
]

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_TEMPLATE = re.compile(r"^(/([A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\}))+/?$|^/$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _cidrs(value: list[str]) -> list[str]:
    """Validate a list of CIDR networks (shared by every field that holds one)."""
    for cidr in value:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ValueError(f"{cidr!r} is not an IP network") from exc
    return value


#: A list of CIDR networks, validated on load.
CidrList = Annotated[list[str], AfterValidator(_cidrs)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class TLSConfig(Model):
    cert: Path = Field(description="PEM certificate chain file served to clients.")
    key: Path = Field(description="PEM private key file for `cert`.")
    min_version: Literal["1.2", "1.3"] = Field(
        "1.2", description="Lowest TLS version accepted (1.2 or 1.3)."
    )
    hsts_max_age: int = Field(
        31_536_000, ge=0, description="Strict-Transport-Security max-age sent over TLS."
    )
    client_ca: Path | None = Field(
        None,
        description="PEM bundle of the CA(s) that sign client certificates. Setting it turns "
        "on client-certificate verification in the TLS handshake (see docs/mtls.md).",
    )
    client_cert: Literal["required", "optional"] = Field(
        "required",
        description="With client_ca: required refuses the handshake without a valid client "
        "certificate; optional admits clients without one (routes that need mtls answer 401).",
    )


class ListenConfig(Model):
    host: str = Field("127.0.0.1", description="Address to bind. Loopback by default.")
    port: int = Field(8443, ge=0, le=65535, description="TCP port to bind.")
    tls: TLSConfig | None = Field(None, description="TLS termination. Required in production.")
    server: Literal["granian", "uvicorn"] = Field(
        "granian", description="ASGI server: granian (default, faster) or uvicorn."
    )
    workers: int = Field(1, ge=1, le=64, description="Worker processes (granian only).")
    graceful_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds to drain in-flight requests on shutdown."
    )


class LimitsConfig(Model):
    max_body_bytes: int = Field(
        1_048_576, ge=0, description="Largest request body accepted (413 above)."
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, description="Largest total size of request headers (431 above)."
    )
    body_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds a request body may take to arrive when the "
        "gateway reads it (408 after): slow-body clients cannot hold connections forever.",
    )
    max_response_buffer_bytes: int = Field(
        4_194_304,
        ge=1024,
        description="Largest upstream body buffered when a policy must read it (502 above).",
    )


class TimeoutConfig(Model):
    connect: float = Field(5.0, gt=0, le=600, description="Seconds to open the connection.")
    read: float = Field(30.0, gt=0, le=3600, description="Seconds between bytes read.")
    total: float = Field(60.0, gt=0, le=3600, description="Seconds for the whole exchange.")


class UpstreamConfig(Model):
    url: str = Field(description="Base URL of the upstream, e.g. http://127.0.0.1:9000.")
    timeout: TimeoutConfig | None = Field(
        None, description="Connect/read/total timeouts. Missing timeouts are a `check` finding."
    )
    max_connections: int = Field(256, ge=1, le=10_000, description="Pooled connections.")
    transport: Literal["bastion", "aiohttp"] = Field(
        "bastion",
        description="Upstream HTTP client. `bastion`: Bastion's own strict HTTP/1.1 client "
        "(llhttp parser, keep-alive pool; about a third of aiohttp's CPU per request). "
        "`aiohttp`: aiohttp's ClientSession, kept as a fallback.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers added to every upstream request (e.g. an upstream credential; "
        "use ${ENV} for secret values).",
    )
    health_path: str | None = Field(
        None, description="Path probed by /_bastion/health/ready (any status < 500 is healthy)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http:// or https:// URL without query or fragment")
        return value.rstrip("/")


_CORS_METHODS: tuple[HttpMethod, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")


class CorsConfig(Model):
    allow_origins: list[str] = Field(
        description="Exact origins allowed (scheme://host[:port]). Never reflected."
    )
    allow_methods: list[HttpMethod] = Field(
        default_factory=lambda: list(_CORS_METHODS),
        description="Methods announced in preflight answers.",
    )
    allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-api-key", "x-request-id"],
        description="Request headers announced in preflight answers.",
    )
    expose_headers: list[str] = Field(
        default_factory=lambda: ["x-request-id", "retry-after", "ratelimit", "ratelimit-policy"],
        description="Response headers readable by the browser.",
    )
    allow_credentials: bool = Field(False, description="Send Access-Control-Allow-Credentials.")
    max_age: int = Field(600, ge=0, le=86_400, description="Preflight cache lifetime (seconds).")

    @model_validator(mode="after")
    def _origins(self) -> CorsConfig:
        for origin in self.allow_origins:
            if origin == "*":
                if self.allow_credentials:
                    raise ValueError("allow_origins '*' cannot be combined with allow_credentials")
                continue
            if not re.match(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$", origin):
                raise ValueError(f"origin {origin!r} must be scheme://host[:port] with no path")
        return self


_FIELD_REF = re.compile(r"^(path|query|header|body)(\.[A-Za-z0-9_-]+)+$|^body$")
_PRINCIPAL_REF = re.compile(r"^principal\.[A-Za-z0-9_.-]+$")
AuthMethod = Literal["jwt", "api_key", "mtls"]


class AllowConfig(Model):
    roles: list[str] = Field(default_factory=list, description="Roles that may call the route.")
    scopes: list[str] = Field(default_factory=list, description="Scopes that may call the route.")
    match: Literal["any", "all"] = Field(
        "any", description="any: one listed role or scope suffices; all: every one is needed."
    )

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        from bastion.tokens.labels import is_valid_role

        for role in value:
            if not is_valid_role(role):
                raise ValueError(
                    f"role {role!r} can never match: a role is not empty and holds no ',', "
                    "whitespace or control character"
                )
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        from bastion.tokens.labels import is_valid_scope

        for scope in value:
            if not is_valid_scope(scope):
                raise ValueError(f"scope {scope!r} can never match: not an RFC 6749 scope-token")
        return value

    @model_validator(mode="after")
    def _some(self) -> AllowConfig:
        if not self.roles and not self.scopes:
            raise ValueError("list roles and/or scopes, or write allow: authenticated")
        return self


def _allow_form(value: Any) -> str | None:
    if isinstance(value, dict | AllowConfig):
        return "rules"
    return "keyword" if value == "authenticated" else None


#: ``allow``: a mapping of roles and/or scopes, or the word ``authenticated``. The form is
#: chosen by the value's type, so a mistake is reported once, in the form meant.
Allow = Annotated[
    Annotated[AllowConfig, Tag("rules")] | Annotated[Literal["authenticated"], Tag("keyword")],
    Discriminator(
        _allow_form,
        custom_error_type="allow_form",
        custom_error_message="expected a mapping of roles and/or scopes, or authenticated",
    ),
]


class OwnerRule(Model):
    """Object-level authorization (OWASP API1): the object must belong to the caller."""

    request: str | None = Field(
        None,
        description="Field of the request naming the object's owner: path.user_id, "
        "query.account, header.x-tenant, body.customer_id.",
    )
    response: str | None = Field(
        None,
        description="Field of the upstream's JSON response naming the owner: "
        "body.customer_id or a JSON pointer such as /customer_id.",
    )
    equals: str | None = Field(
        None, description="Principal claim the field must equal, e.g. principal.sub."
    )
    in_claim: str | None = Field(
        None,
        alias="in",
        description="Principal claim (a list) the field must be in, e.g. principal.tenants.",
    )
    unless_roles: list[str] = Field(
        default_factory=list, description="Roles exempt from the rule (e.g. admin)."
    )
    deny_status: Literal[403, 404] = Field(
        404, description="404 (default) hides whether the object exists; 403 is explicit."
    )
    before: Literal["GET"] | None = Field(
        None,
        description="For writes with a response rule: first GET the same path from the "
        "upstream and check its owner field, so a foreign object is never modified.",
    )

    @model_validator(mode="after")
    def _shape(self) -> OwnerRule:
        if (self.request is None) == (self.response is None):
            raise ValueError("give exactly one of request or response")
        if (self.equals is None) == (self.in_claim is None):
            raise ValueError("give exactly one of equals or in")
        claim = self.equals or self.in_claim or ""
        if not _PRINCIPAL_REF.match(claim):
            raise ValueError(f"{claim!r} must name a principal claim like principal.sub")
        if self.request is not None and not _FIELD_REF.match(self.request):
            raise ValueError(f"{self.request!r} must be path.X, query.X, header.X or body.X[.Y]")
        return self


class OwnerListRule(Model):
    """Object-level authorization for list responses: items not owned are removed."""

    items: str = Field("body", description="Where the list is: body, or body.items / /items.")
    field: str = Field(description="Field of each item naming its owner, e.g. customer_id.")
    equals: str | None = Field(None, description="Principal claim the field must equal.")
    in_claim: str | None = Field(None, alias="in", description="Principal claim list.")
    unless_roles: list[str] = Field(default_factory=list, description="Roles exempt.")
    mode: Literal["filter", "deny"] = Field(
        "filter", description="filter: drop foreign items; deny: refuse the whole response."
    )

    @model_validator(mode="after")
    def _shape(self) -> OwnerListRule:
        if (self.equals is None) == (self.in_claim is None):
            raise ValueError("give exactly one of equals or in")
        return self


def _key_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "one"
    return "list" if isinstance(value, list) else None


#: A rate-limit ``key``: one key or a list of keys (chosen by type, reported once).
RateLimitKey = Annotated[
    Annotated[str, Tag("one")] | Annotated[list[str], Tag("list")],
    Discriminator(
        _key_form,
        custom_error_type="key_form",
        custom_error_message="expected a key (principal, api_key, ip, route, header.X, "
        "path.X, query.X, body.X) or a list of keys",
    ),
]


class RateLimitRule(Model):
    key: RateLimitKey = Field(
        description="What is counted: principal, api_key, ip, route, header.X, path.X, "
        "query.X, body.X, or a list of these (combined)."
    )
    limit: str = Field(
        description="N/second, N/minute, N/hour or N/day; for algorithm quota: N/day or "
        "N/month (UTC calendar windows, e.g. a daily quota per API key)."
    )
    burst: int | None = Field(None, ge=1, description="Extra requests allowed in a burst (GCRA).")
    algorithm: Literal["gcra", "sliding_window", "quota"] = Field(
        "gcra", description="gcra (token bucket with burst), sliding_window, or quota."
    )
    fail_open: bool = Field(
        False,
        description="Admit requests when the state backend is down (logged). "
        "Default: refuse with 503 (fail closed).",
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | list[str]) -> str | list[str]:
        for part in [value] if isinstance(value, str) else value:
            if part not in ("principal", "api_key", "ip", "route") and not re.match(
                r"^(header|path|query|body)\.[A-Za-z0-9_.-]+$", part
            ):
                raise ValueError(f"unknown rate-limit key {part!r}")
        return value

    @model_validator(mode="after")
    def _limit(self) -> RateLimitRule:
        from bastion.ratelimit import parse_quota, parse_rate

        if self.algorithm == "quota":
            parse_quota(self.limit)
        else:
            parse_rate(self.limit, burst=self.burst)
        return self


class ConcurrencyConfig(Model):
    """In-flight requests allowed at once per key (slow clients, expensive operations)."""

    limit: int = Field(ge=1, le=100_000, description="Requests in flight at once per key.")
    key: Literal["principal", "ip", "api_key", "route"] = Field(
        "principal", description="What is counted (ip approximates connections per IP)."
    )
    ttl: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Lease lifetime: a crashed gateway's slots free up. Raised to the "
        "longest a request can take (body_timeout + the upstream's total timeout + 5 s).",
    )


class LoginConfig(Model):
    """Brute-force protection for a login route (OWASP API2/API4)."""

    username: str = Field("body.username", description="Where the username is in the request.")
    failure_statuses: list[int] = Field(
        default_factory=lambda: [401, 403], description="Upstream statuses counted as failures."
    )
    max_failures: int = Field(5, ge=1, le=100, description="Failures before lockout.")
    base_delay: float = Field(1.0, ge=0, le=60, description="Backoff after the first failure.")
    max_delay: float = Field(60.0, ge=0, le=3600, description="Largest backoff between tries.")
    lockout: float = Field(900.0, ge=1, le=86_400, description="Lockout window in seconds.")


class RouteConfig(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: str = Field(description="Path template relative to the API's base_path: /orders/{id}.")
    methods: list[HttpMethod] = Field(description="Methods served; others are 405.")
    public: bool = Field(
        False, description="No authentication required. Must be explicit (deny by default)."
    )
    authentication: list[AuthMethod] | None = Field(
        None, description="Accepted credentials; default: every configured method."
    )
    allow: Allow | None = Field(
        None,
        description="Function-level authorization. Required on authenticated routes "
        "unless the API sets a default (least privilege is explicit).",
    )
    owner: OwnerRule | None = Field(None, description="Object-level rule (request or response).")
    owner_list: OwnerListRule | None = Field(None, description="Object-level rule for lists.")
    rate_limit: list[RateLimitRule] | None = Field(
        None, description="Limits for this route (replace the API's defaults)."
    )
    login: LoginConfig | None = Field(None, description="Mark as a login route.")
    concurrency: ConcurrencyConfig | None = Field(
        None, description="In-flight limit for this route (replaces the API's)."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _TEMPLATE.match(value):
            raise ValueError("must be a path template like /orders/{order_id}")
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one method is required")
        if len(set(value)) != len(value):
            raise ValueError("methods are listed twice")
        return value


class ContractConfig(Model):
    response_mode: Literal["strict", "monitor"] = Field(
        "strict",
        description="strict: a response that breaks its schema is a 502; "
        "monitor: it passes (projected) with an audit event.",
    )
    strict_properties: bool = Field(
        True,
        description="Reject request properties and query parameters the spec does not "
        "declare (mass assignment).",
    )
    max_string_length: int = Field(10_000, ge=1, description="Default maxLength for strings.")
    max_array_items: int = Field(1_000, ge=1, description="Default maxItems for arrays.")
    max_depth: int = Field(32, ge=1, le=512, description="Deepest JSON nesting accepted.")
    max_response_bytes: int = Field(
        4_194_304, ge=1024, description="Largest JSON response filtered."
    )
    pass_large_responses: bool = Field(
        False, description="Pass JSON responses above max_response_bytes unfiltered (else 502)."
    )


class VersionConfig(Model):
    """RFC 9745 Deprecation, RFC 8594 Sunset, and 410 Gone after the sunset date."""

    deprecated_at: datetime | None = Field(
        None, description="When the version was deprecated (no time zone: UTC)."
    )
    sunset_at: datetime | None = Field(
        None, description="After this instant: 410 Gone (no time zone: UTC)."
    )
    successor: str | None = Field(None, description="Name of the API that replaces this one.")
    link: str | None = Field(None, description="URL of the migration guide.")

    @field_validator("deprecated_at", "sunset_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # The headers read a date without a zone as UTC; the 410 must too, not as the
        # server's local time (a version retired hours early or late).
        return to_datetime(value) if value is not None else None

    @model_validator(mode="after")
    def _order(self) -> VersionConfig:
        if self.deprecated_at and self.sunset_at and self.sunset_at < self.deprecated_at:
            raise ValueError("sunset_at is before deprecated_at (RFC 9745 §4)")
        return self


class ApiConfig(Model):
    name: str = Field(description="Name used in logs and metrics.")
    upstream: str = Field(description="Key of the upstream (under `upstreams`) to forward to.")
    base_path: str = Field("", description="Prefix of every route of this API, e.g. /v2.")
    cors: CorsConfig | None = Field(None, description="CORS for browsers; off when absent.")
    openapi: Path | None = Field(
        None,
        description="OpenAPI 3.0/3.1 document: its operations become routes, requests "
        "are validated and responses filtered against it.",
    )
    overlay: Path | None = Field(None, description="Overlay 1.0 document hardening `openapi`.")
    paths: list[str] = Field(
        default_factory=list,
        description="Only the spec's operations whose path matches one of these globs "
        "(e.g. /v1/*), so one document can describe several API versions.",
    )
    contract: ContractConfig = Field(
        default_factory=lambda: ContractConfig(), description="Contract enforcement settings."
    )
    version: VersionConfig | None = Field(None, description="Deprecation and sunset.")
    authentication: list[AuthMethod] | None = Field(
        None, description="Default accepted credentials for the API's routes."
    )
    allow: Allow | None = Field(
        None, description="Default function-level rule for the API's authenticated routes."
    )
    rate_limit: list[RateLimitRule] = Field(
        default_factory=list, description="Default limits for every route of the API."
    )
    concurrency: ConcurrencyConfig | None = Field(
        None, description="Default in-flight limit for every route of the API."
    )
    ip_allow: CidrList = Field(
        default_factory=list, description="Only these client CIDRs may call the API."
    )
    ip_deny: CidrList = Field(
        default_factory=list, description="These client CIDRs may not call the API."
    )
    routes: list[RouteConfig] = Field(
        default_factory=list, description="Routes (with openapi: overrides per operation)."
    )

    @model_validator(mode="after")
    def _routes_or_spec(self) -> ApiConfig:
        if not self.routes and self.openapi is None:
            raise ValueError("an API needs routes or an openapi document")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        if value and (not _TEMPLATE.match(value) or "{" in value or value.endswith("/")):
            raise ValueError("must be empty or a literal path like /v2 (no trailing slash)")
        return value


_DEFAULT_REDACT = ["password", "secret", "token", "access_token", "refresh_token", "api_key"]


class AuditConfig(Model):
    sink: Literal["stdout", "file", "none"] = Field(
        "stdout", description="Where audit events go: stdout, a rotated file, or nowhere."
    )
    path: Path | None = Field(None, description="File for sink: file.")
    max_bytes: int = Field(104_857_600, ge=1024, description="Rotate the file at this size.")
    backups: int = Field(5, ge=0, le=1000, description="Rotated files kept.")
    redact: list[str] = Field(
        default_factory=lambda: list(_DEFAULT_REDACT),
        description="Body/query field names replaced by [REDACTED] (headers Authorization, "
        "Cookie, Set-Cookie and API-key headers are always redacted).",
    )

    @model_validator(mode="after")
    def _file(self) -> AuditConfig:
        if self.sink == "file" and self.path is None:
            raise ValueError("sink: file needs a path")
        return self


class SecurityHeadersConfig(Model):
    content_security_policy: str = Field(
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        description="Content-Security-Policy for API responses.",
    )
    referrer_policy: str = Field("no-referrer", description="Referrer-Policy value.")
    frame_options: Literal["DENY", "SAMEORIGIN"] = Field("DENY", description="X-Frame-Options.")
    extra: dict[str, str] = Field(default_factory=dict, description="More headers to add.")


class JwtIssuerConfig(Model):
    issuer: str = Field(description="Expected `iss`, exactly.")
    audiences: list[str] = Field(min_length=1, description="Accepted `aud` values.")
    algorithms: list[str] = Field(min_length=1, description="Allowed `alg` values, e.g. ES256.")
    token_types: list[str] = Field(
        default_factory=lambda: ["at+jwt", "JWT"], description="Accepted `typ` values."
    )
    leeway: float = Field(30.0, ge=0, le=60, description="Clock skew allowed (seconds).")
    required_claims: list[str] = Field(
        default_factory=lambda: ["exp"], description="Claims that must be present."
    )
    roles_claim: str = Field("roles", description="Dotted path of the roles claim.")
    scopes_claim: str = Field("scope", description="scope (space-delimited) or scp (list).")
    jwks_uri: str | None = Field(None, description="JWKS URL of the issuer.")
    discovery: bool = Field(
        False,
        description="Find jwks_uri through {issuer}/.well-known/openid-configuration "
        "(or oauth-authorization-server).",
    )
    keys: list[Path] = Field(
        default_factory=list, description="Static key files (PEM public key, JWK, JWKS)."
    )
    jwks_ttl: float = Field(300.0, ge=10, le=86_400, description="JWKS cache lifetime.")
    jwks_min_refetch_interval: float = Field(
        30.0, ge=1, le=3600, description="Unknown kid: at most one refetch per interval."
    )
    max_token_bytes: int = Field(8192, ge=512, le=65_536, description="Largest token accepted.")

    @model_validator(mode="after")
    def _one_source(self) -> JwtIssuerConfig:
        sources = sum([self.jwks_uri is not None, self.discovery, bool(self.keys)])
        if sources != 1:
            raise ValueError("give exactly one of jwks_uri, discovery: true or keys")
        return self


class ApiKeysConfig(Model):
    store: str = Field(
        "sqlite:///bastion-keys.sqlite3",
        description="Where key hashes live: sqlite:///file, postgresql://..., redis://...",
    )
    header: str = Field(
        "X-API-Key",
        description="Header carrying the key; `Authorization` means `Authorization: ApiKey <key>`.",
    )
    cache_ttl: float = Field(5.0, ge=0, le=300, description="Seconds a lookup is cached.")


class MtlsIdentity(Model):
    roles: list[str] = Field(default_factory=list, description="Roles of this certificate subject.")
    scopes: list[str] = Field(
        default_factory=list, description="Scopes of this certificate subject."
    )


class MtlsConfig(Model):
    """Client-certificate identity (mTLS): the verified certificate becomes the principal."""

    principal_from: Literal["subject_cn", "san_uri", "san_dns", "san_email", "subject"] = Field(
        "subject_cn",
        description="Which identity of the certificate becomes the principal's subject: the "
        "subject CN, the one URI / DNS / email SAN, or the whole subject (RFC 4514 string).",
    )
    ca: Path | None = Field(
        None,
        description="PEM CA bundle that verifies certificates arriving in the RFC 9440 "
        "Client-Cert header (default: listen.tls.client_ca).",
    )
    from_header: bool = Field(
        False,
        description="Accept the RFC 9440 Client-Cert header, only from a direct peer in "
        "trusted_proxies (a TLS-terminating proxy); from anyone else it is ignored and stripped.",
    )
    identities: dict[str, MtlsIdentity] = Field(
        default_factory=dict,
        description="Roles and scopes per certificate subject; an unlisted subject has none.",
    )


class AuthenticationConfig(Model):
    jwt: list[JwtIssuerConfig] = Field(default_factory=list, description="Trusted issuers.")
    api_keys: ApiKeysConfig | None = Field(None, description="API key authentication.")
    mtls: MtlsConfig | None = Field(
        None, description="Client-certificate (mTLS) authentication. See docs/mtls.md."
    )
    token_cache_size: int = Field(10_000, ge=0, description="Verified tokens kept in memory.")
    token_cache_ttl: float = Field(60.0, ge=0, le=3600, description="Longest cache lifetime.")

    def methods(self) -> list[AuthMethod]:
        out: list[AuthMethod] = []
        if self.jwt:
            out.append("jwt")
        if self.api_keys is not None:
            out.append("api_key")
        if self.mtls is not None:
            out.append("mtls")
        return out


class StateConfig(Model):
    backend: Literal["memory", "redis"] = Field(
        "memory", description="memory (one process) or redis (shared by many gateways)."
    )
    url: str | None = Field(None, description="redis://host:port/db (use ${ENV} for passwords).")
    prefix: str = Field("bastion", description="Key prefix in Redis.")
    max_staleness: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds the shared mirror may be stale before "
        "authenticated requests fail closed (503).",
    )

    @model_validator(mode="after")
    def _url(self) -> StateConfig:
        if self.backend == "redis" and not self.url:
            raise ValueError("backend: redis needs a url")
        return self


class AdminConfig(Model):
    host: str = Field("127.0.0.1", description="Admin listener address (loopback by default).")
    port: int = Field(9901, ge=0, le=65535, description="Admin listener port.")
    token: str = Field(description="Bearer credential for the admin API (use ${ENV}).")


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class TracingConfig(Model):
    """OpenTelemetry tracing, exported as OTLP over HTTP. See docs/monitoring.md#tracing."""

    endpoint: str = Field(
        description="OTLP/HTTP traces URL of the collector, e.g. http://127.0.0.1:4318/v1/traces."
    )
    service_name: str = Field("bastion-gateway", description="`service.name` of the spans.")
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded (parent-based: a trusted parent's "
        "sampling decision is followed).",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent to the collector (e.g. its credential; use ${ENV}). "
        "Never logged.",
    )
    timeout: float = Field(
        10.0,
        gt=0,
        le=60,
        description="Seconds one export may take (retries included); also bounds the flush "
        "at shutdown.",
    )
    trust_incoming: bool = Field(
        False,
        description="Continue the trace of an incoming `traceparent` from any client. "
        "Default: only from trusted_proxies; others start a new trace that links to theirs.",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http:// or https:// URL without query or fragment")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if any(c in item for c in "\r\n\0"):
                raise ValueError(f"the value of {name!r} contains a control character")
        return value


class GatewayConfig(Model):
    version: Literal[1] = Field(description="Config format version. Always 1.")
    mode: Literal["production", "development"] = Field(
        "production",
        description="production refuses insecure settings; development allows plain HTTP.",
    )
    listen: ListenConfig = Field(default_factory=lambda: ListenConfig(), description="Listener.")
    trusted_proxies: CidrList = Field(
        default_factory=list,
        description="CIDRs of proxies whose X-Forwarded-For / Forwarded headers are believed.",
    )
    client_ipv6_prefix: int = Field(
        64,
        ge=16,
        le=128,
        description="IPv6 clients are counted by this network prefix wherever a limit is "
        "keyed by the client address (rate limits and concurrency with key ip, and the "
        "principal key's fallback for anonymous callers): one subscriber usually holds a "
        "whole /64, so counting single addresses would let one client rotate through "
        "2^64 of them. 128 counts every address alone.",
    )
    ip_allow: CidrList = Field(
        default_factory=list,
        description="Only these client CIDRs may use the gateway at all (empty: everyone).",
    )
    ip_deny: CidrList = Field(
        default_factory=list, description="Client CIDRs refused everywhere (403)."
    )
    limits: LimitsConfig = Field(default_factory=lambda: LimitsConfig(), description="Limits.")
    audit: AuditConfig = Field(default_factory=lambda: AuditConfig(), description="Audit log.")
    security_headers: SecurityHeadersConfig = Field(
        default_factory=lambda: SecurityHeadersConfig(), description="Response security headers."
    )
    state: StateConfig = Field(
        default_factory=lambda: StateConfig(), description="Shared state backend."
    )
    authentication: AuthenticationConfig = Field(
        default_factory=lambda: AuthenticationConfig(),
        description="How callers prove who they are.",
    )
    admin: AdminConfig | None = Field(None, description="Admin API listener (off when absent).")
    monitoring: MonitoringConfig | None = Field(
        None,
        description="Metrics, detectors, alerts, playbooks and the dashboard "
        "(served on the admin listener). See docs/monitoring.md.",
    )
    tracing: TracingConfig | None = Field(
        None,
        description="OpenTelemetry tracing over OTLP/HTTP (off when absent). "
        "See docs/monitoring.md.",
    )
    upstreams: dict[str, UpstreamConfig] = Field(description="Named upstream services.")
    apis: Annotated[list[ApiConfig], Field(min_length=1)] = Field(description="APIs served.")

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        names: set[str] = set()
        for api in self.apis:
            if api.upstream not in self.upstreams:
                raise ValueError(f"api {api.name!r} names unknown upstream {api.upstream!r}")
            if api.name in names:
                raise ValueError(f"api name {api.name!r} is used twice")
            names.add(api.name)
        for api in self.apis:
            successor = api.version.successor if api.version else None
            if successor is not None and successor not in names:
                # The 410 tells clients to use it: a typo would send them nowhere.
                raise ValueError(f"api {api.name!r} names unknown successor {successor!r}")
        return self
