"""The typed, frozen configuration of the gateway (version 1).

Every field carries a description; docs/configuration.md is generated from them
(``bastion config-docs``). Unknown keys are errors. Values are validated once at startup.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ApiConfig",
    "AuditConfig",
    "CorsConfig",
    "GatewayConfig",
    "LimitsConfig",
    "ListenConfig",
    "RouteConfig",
    "SecurityHeadersConfig",
    "TLSConfig",
    "TimeoutConfig",
    "UpstreamConfig",
]

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_TEMPLATE = re.compile(r"^(/([A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\}))+/?$|^/$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


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


class RouteConfig(Model):
    path: str = Field(description="Path template relative to the API's base_path: /orders/{id}.")
    methods: list[HttpMethod] = Field(description="Methods served; others are 405.")
    public: bool = Field(
        False, description="No authentication required. Must be explicit (deny by default)."
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


class ApiConfig(Model):
    name: str = Field(description="Name used in logs and metrics.")
    upstream: str = Field(description="Key of the upstream (under `upstreams`) to forward to.")
    base_path: str = Field("", description="Prefix of every route of this API, e.g. /v2.")
    cors: CorsConfig | None = Field(None, description="CORS for browsers; off when absent.")
    routes: list[RouteConfig] = Field(description="The routes this API serves. Others are 404.")

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


class GatewayConfig(Model):
    version: Literal[1] = Field(description="Config format version. Always 1.")
    mode: Literal["production", "development"] = Field(
        "production",
        description="production refuses insecure settings; development allows plain HTTP.",
    )
    listen: ListenConfig = Field(default_factory=lambda: ListenConfig(), description="Listener.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of proxies whose X-Forwarded-For / Forwarded headers are believed.",
    )
    limits: LimitsConfig = Field(default_factory=lambda: LimitsConfig(), description="Limits.")
    audit: AuditConfig = Field(default_factory=lambda: AuditConfig(), description="Audit log.")
    security_headers: SecurityHeadersConfig = Field(
        default_factory=lambda: SecurityHeadersConfig(), description="Response security headers."
    )
    upstreams: dict[str, UpstreamConfig] = Field(description="Named upstream services.")
    apis: Annotated[list[ApiConfig], Field(min_length=1)] = Field(description="APIs served.")

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not an IP network") from exc
        return value

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        names: set[str] = set()
        for api in self.apis:
            if api.upstream not in self.upstreams:
                raise ValueError(f"api {api.name!r} names unknown upstream {api.upstream!r}")
            if api.name in names:
                raise ValueError(f"api name {api.name!r} is used twice")
            names.add(api.name)
        return self
