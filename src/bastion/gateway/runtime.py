"""Everything built from one config: router, upstreams, policy chains, audit log.

A :class:`Runtime` is immutable once built. Reloading builds a new one and swaps the
reference; requests in flight finish on the runtime they started with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from bastion.config import LoadedConfig
from bastion.config.lint import lint
from bastion.config.models import ApiConfig
from bastion.errors import ConfigError
from bastion.gateway.request import TrustedProxies
from bastion.gateway.routing import Router
from bastion.gateway.upstream import AiohttpTransport, Transport, UpstreamTimeouts
from bastion.observability.audit import AuditLog
from bastion.policies.cors import CorsPolicy
from bastion.policies.security_headers import SecurityHeaders
from bastion.types import Policy

__all__ = ["ApiRuntime", "RouteTarget", "Runtime", "UpstreamRuntime", "build_runtime"]


@dataclass(frozen=True, slots=True)
class UpstreamRuntime:
    name: str
    base_url: str
    host_header: str
    timeouts: UpstreamTimeouts
    headers: tuple[tuple[str, str], ...]
    health_path: str | None
    transport: Transport


@dataclass(frozen=True, slots=True)
class ApiRuntime:
    name: str
    upstream: UpstreamRuntime
    cors: CorsPolicy | None


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """A route with its policy chains, decided once at startup."""

    api: ApiRuntime
    template: str
    public: bool
    request_policies: tuple[Policy, ...]
    response_policies: tuple[Policy, ...]
    complete_policies: tuple[Policy, ...]
    needs_request_body: bool
    needs_response_body: bool
    #: Methods the route declares (for 405 Allow when only a CORS preflight matched).
    methods: tuple[str, ...] = ()
    #: True for the synthetic OPTIONS entry that only answers CORS preflights.
    preflight_only: bool = False


def chain_for(
    policies: Sequence[Policy],
) -> tuple[tuple[Policy, ...], tuple[Policy, ...], tuple[Policy, ...]]:
    """Split policies into the phases whose hooks they actually override."""
    base = Policy
    request = tuple(p for p in policies if type(p).on_request is not base.on_request)
    response = tuple(p for p in policies if type(p).on_response is not base.on_response)
    complete = tuple(p for p in policies if type(p).on_complete is not base.on_complete)
    return request, response, complete


@dataclass
class Runtime:
    loaded: LoadedConfig
    router: Router[RouteTarget]
    trusted: TrustedProxies
    security: SecurityHeaders
    audit: AuditLog
    upstreams: dict[str, UpstreamRuntime]
    policies: list[Policy] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def limits(self) -> tuple[int, int, int]:
        limits = self.loaded.config.limits
        return limits.max_header_bytes, limits.max_body_bytes, limits.max_response_buffer_bytes

    async def startup(self) -> None:
        for policy in self.policies:
            await policy.startup()

    async def shutdown(self) -> None:
        for policy in reversed(self.policies):
            await policy.shutdown()
        await asyncio.gather(
            *(u.transport.close() for u in self.upstreams.values()), return_exceptions=True
        )
        self.audit.close()


def build_runtime(loaded: LoadedConfig, *, enforce_lint: bool = True) -> Runtime:
    """Build the runtime, refusing (ConfigError) on any lint error in production mode."""
    findings = lint(loaded)
    errors = [f for f in findings if f.severity == "error"]
    if enforce_lint and errors and loaded.config.mode == "production":
        raise ConfigError(
            "refusing to start: insecure configuration\n" + "\n".join(f"  {f}" for f in errors)
        )
    config = loaded.config
    upstreams: dict[str, UpstreamRuntime] = {}
    for name, upstream in config.upstreams.items():
        timeouts = upstream.timeout
        parts = urlsplit(upstream.url)
        upstreams[name] = UpstreamRuntime(
            name=name,
            base_url=f"{parts.scheme}://{parts.netloc}",
            host_header=parts.netloc,
            timeouts=UpstreamTimeouts(timeouts.connect, timeouts.read, timeouts.total)
            if timeouts
            else UpstreamTimeouts(),
            headers=tuple((k.lower(), v) for k, v in upstream.headers.items()),
            health_path=upstream.health_path,
            transport=AiohttpTransport(max_connections=upstream.max_connections),
        )
        if parts.path not in ("", "/"):
            raise ConfigError(
                "upstream URLs must not carry a path: the gateway forwards the request path "
                "unchanged",
                location=loaded.source.location(("upstreams", name, "url")),
            )
    tls = config.listen.tls
    security = SecurityHeaders(
        config.security_headers, hsts_max_age=tls.hsts_max_age if tls else None
    )
    audit = AuditLog(
        sink=config.audit.sink,
        path=loaded.resolve(config.audit.path) if config.audit.path else None,
        max_bytes=config.audit.max_bytes,
        backups=config.audit.backups,
        redact=config.audit.redact,
    )
    router: Router[RouteTarget] = Router()
    preflights: set[str] = set()
    for index, api in enumerate(config.apis):
        _add_api(router, api, upstreams[api.upstream], loaded, index, preflights)
    return Runtime(
        loaded=loaded,
        router=router,
        trusted=TrustedProxies(config.trusted_proxies),
        security=security,
        audit=audit,
        upstreams=upstreams,
        warnings=[
            str(f)
            for f in findings
            if f.severity == "warning" or not enforce_lint or config.mode != "production"
        ],
    )


def _add_api(
    router: Router[RouteTarget],
    api: ApiConfig,
    upstream: UpstreamRuntime,
    loaded: LoadedConfig,
    index: int,
    preflights: set[str],
) -> None:
    cors = CorsPolicy(api.cors) if api.cors else None
    api_runtime = ApiRuntime(api.name, upstream, cors)
    for r_index, route in enumerate(api.routes):
        policies: list[Policy] = []
        if cors is not None:
            policies.append(cors)
        request, response, complete = chain_for(policies)
        template = api.base_path + route.path if route.path != "/" else (api.base_path or "/")
        target = RouteTarget(
            api=api_runtime,
            template=template,
            public=route.public,
            request_policies=request,
            response_policies=response,
            complete_policies=complete,
            needs_request_body=any(p.needs_request_body for p in request),
            needs_response_body=any(p.needs_response_body for p in response),
            methods=tuple(route.methods),
        )
        location = loaded.source.location(("apis", index, "routes", r_index))
        try:
            router.add(template, route.methods, target)
            if cors is not None and "OPTIONS" not in route.methods and template not in preflights:
                preflights.add(template)
                router.add(template, ["OPTIONS"], replace(target, preflight_only=True))
        except ConfigError as exc:
            raise ConfigError(str(exc), location=location) from None
