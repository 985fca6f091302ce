"""Everything built from one config: router, upstreams, policy chains, audit log.

A :class:`Runtime` is immutable once built. Reloading builds a new one and swaps the
reference; requests in flight finish on the runtime they started with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bastion.config import LoadedConfig
from bastion.config.lint import lint
from bastion.config.models import ApiConfig
from bastion.errors import ConfigError
from bastion.gateway.assembly import Services, policies_for, route_specs, route_warnings
from bastion.gateway.h1client import H1Transport
from bastion.gateway.request import TrustedProxies
from bastion.gateway.routing import Router
from bastion.gateway.upstream import (
    AiohttpTransport,
    Transport,
    UpstreamRuntime,
    UpstreamTimeouts,
)
from bastion.observability.audit import AuditLog
from bastion.policies.blocklist import BlocklistPolicy
from bastion.policies.cors import CorsPolicy
from bastion.policies.ipfilter import IpFilterPolicy
from bastion.policies.mtls import build_mtls
from bastion.policies.security_headers import SecurityHeaders
from bastion.state.base import ChangeEvent
from bastion.state.factory import create_store
from bastion.tokens import IssuerSettings, JWTVerifier
from bastion.types import Policy

if TYPE_CHECKING:
    from bastion.observability.tracing import Tracing

__all__ = ["ApiRuntime", "RouteTarget", "Runtime", "build_runtime"]


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
    services: Services
    monitor: Any = None
    #: Policies run for every request before routing (the IP blocklist).
    global_policies: tuple[Policy, ...] = ()
    warnings: list[str] = field(default_factory=list)
    #: OpenTelemetry tracing (None when not configured: OpenTelemetry is never imported).
    tracing: Tracing | None = None

    @property
    def limits(self) -> tuple[int, int, int]:
        limits = self.loaded.config.limits
        return limits.max_header_bytes, limits.max_body_bytes, limits.max_response_buffer_bytes

    async def startup(self) -> None:
        services = self.services
        await services.store.start()
        if services.verifier is not None:
            await services.verifier.start()
        if services.api_key_store is not None:
            await services.api_key_store.start()
        if self.monitor is not None:
            await self.monitor.start()
        if self.tracing is not None:
            self.tracing.start()

    async def ready(self) -> dict[str, bool]:
        """Readiness of everything the gateway depends on (for /_bastion/health/ready)."""
        services = self.services
        checks = {"state": await services.store.healthy()}
        if services.verifier is not None:
            checks["jwks"] = services.verifier.ready()
        return checks

    async def shutdown(self) -> None:
        services = self.services
        if self.monitor is not None:
            await self.monitor.close()
        if services.api_key_store is not None:
            await services.api_key_store.close()
        if services.verifier is not None:
            await services.verifier.close()
        await services.store.close()
        await asyncio.gather(
            *(u.transport.close() for u in self.upstreams.values()), return_exceptions=True
        )
        self.audit.close()
        if self.tracing is not None:
            # Flushes the last spans; the exporter blocks, so off the event loop.
            await asyncio.to_thread(self.tracing.shutdown)


def build_runtime(loaded: LoadedConfig, *, enforce_lint: bool = True) -> Runtime:
    """Build the runtime, refusing (ConfigError) on any lint error in production mode."""
    findings = lint(loaded)
    errors = [f for f in findings if f.severity == "error"]
    if enforce_lint and errors and loaded.config.mode == "production":
        raise ConfigError(
            "refusing to start: insecure configuration\n" + "\n".join(f"  {f}" for f in errors)
        )
    config = loaded.config
    trusted = TrustedProxies(config.trusted_proxies)
    tracing = None
    if config.tracing is not None:
        from bastion.observability.tracing import build_tracing

        tracing = build_tracing(config.tracing, trusted)
    upstreams: dict[str, UpstreamRuntime] = {}
    for name, upstream in config.upstreams.items():
        timeout = upstream.timeout
        parts = urlsplit(upstream.url)
        timeouts = (
            UpstreamTimeouts(timeout.connect, timeout.read, timeout.total)
            if timeout
            else UpstreamTimeouts()
        )
        transport: Transport = (
            H1Transport if upstream.transport == "bastion" else AiohttpTransport
        )(max_connections=upstream.max_connections, timeouts=timeouts)
        if tracing is not None:
            transport = tracing.instrument_transport(transport, name)
        upstreams[name] = UpstreamRuntime(
            name=name,
            base_url=f"{parts.scheme}://{parts.netloc}",
            host_header=parts.netloc,
            timeouts=timeouts,
            headers=tuple((k.lower(), v) for k, v in upstream.headers.items()),
            health_path=upstream.health_path,
            transport=transport,
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
    services = _build_services(loaded)
    monitor = None
    if config.monitoring is not None:
        from bastion.observability.monitor import Monitor

        monitor = Monitor(config.monitoring, store=services.store, audit=audit)
        audit.observers.append(monitor.observe)
    router: Router[RouteTarget] = Router()
    preflights: set[str] = set()
    notes: list[str] = []
    for index, api in enumerate(config.apis):
        notes += _add_api(
            router, api, upstreams[api.upstream], loaded, index, preflights, services, tracing
        )
    return Runtime(
        loaded=loaded,
        router=router,
        trusted=trusted,
        security=security,
        audit=audit,
        upstreams=upstreams,
        services=services,
        monitor=monitor,
        global_policies=(
            *((tracing.context_policy,) if tracing is not None else ()),
            *(
                (IpFilterPolicy(config.ip_allow, config.ip_deny),)
                if config.ip_allow or config.ip_deny
                else ()
            ),
            BlocklistPolicy(services.store, services.clock),
        ),
        warnings=[
            *(
                str(f)
                for f in findings
                if f.severity == "warning" or not enforce_lint or config.mode != "production"
            ),
            *notes,
        ],
        tracing=tracing,
    )


def _build_services(loaded: LoadedConfig) -> Services:
    config = loaded.config
    auth = config.authentication
    state = config.state
    store = create_store(
        {"backend": "memory"}
        if state.backend == "memory"
        else {
            "backend": "redis",
            "url": state.url,
            "prefix": state.prefix,
            "max_staleness": state.max_staleness,
            # Resync well within the staleness bound, so a healthy mirror never goes stale.
            "resync_interval": min(1.0, state.max_staleness / 3),
        }
    )
    verifier = None
    if auth.jwt:
        verifier = JWTVerifier(
            [
                IssuerSettings(
                    issuer=issuer.issuer,
                    audiences=tuple(issuer.audiences),
                    algorithms=tuple(issuer.algorithms),
                    token_types=tuple(issuer.token_types),
                    leeway=issuer.leeway,
                    required_claims=tuple(issuer.required_claims),
                    roles_claim=issuer.roles_claim,
                    scopes_claim=issuer.scopes_claim,
                    jwks_uri=issuer.jwks_uri,
                    discovery_url=issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
                    if issuer.discovery
                    else None,
                    static_keys=tuple(str(loaded.resolve(k)) for k in issuer.keys),
                    max_token_bytes=issuer.max_token_bytes,
                    jwks_ttl=issuer.jwks_ttl,
                    jwks_min_refetch_interval=issuer.jwks_min_refetch_interval,
                )
                for issuer in auth.jwt
            ],
            cache_size=auth.token_cache_size,
            cache_ttl=auth.token_cache_ttl,
        )
        bound = verifier

        def invalidate(event: ChangeEvent) -> None:
            if event.kind == "revoke_token":
                bound.invalidate(jti=str(event.data.get("jti")))
            elif event.kind == "revoke_subject":
                bound.invalidate(subject=str(event.data.get("subject")))

        store.on_change(invalidate)
    api_keys = api_key_store = None
    if auth.api_keys is not None:
        from bastion.apikeys.authenticator import ApiKeyAuthenticator
        from bastion.apikeys.store import open_store

        api_key_store = open_store(_resolve_store_url(loaded, auth.api_keys.store))
        api_keys = ApiKeyAuthenticator(api_key_store, cache_ttl=auth.api_keys.cache_ttl)
        store.on_change(api_keys.on_state_change)
    return Services(
        store=store,
        verifier=verifier,
        api_keys=api_keys,
        api_key_store=api_key_store,
        api_key_header=auth.api_keys.header if auth.api_keys else "X-API-Key",
        clock=time.time,
        mtls=build_mtls(loaded),
        ipv6_prefix=config.client_ipv6_prefix,
        body_timeout=config.limits.body_timeout,
        base_paths={api.name: api.base_path for api in config.apis},
    )


def _resolve_store_url(loaded: LoadedConfig, url: str) -> str:
    """sqlite:///relative.db is relative to the config file's directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str(loaded.resolve(url[len(prefix) :]))
    return url


def _add_api(
    router: Router[RouteTarget],
    api: ApiConfig,
    upstream: UpstreamRuntime,
    loaded: LoadedConfig,
    index: int,
    preflights: set[str],
    services: Services,
    tracing: Tracing | None = None,
) -> list[str]:
    """Route ``api``'s operations; returns warnings about them (config_warning events)."""
    cors = CorsPolicy(api.cors) if api.cors else None
    api_runtime = ApiRuntime(api.name, upstream, cors)
    routes, spec = route_specs(loaded, api, index)
    for route in routes:
        policies = policies_for(route, api, spec, upstream, services)
        request, response, complete = chain_for(policies)
        if tracing is not None:  # wrapped after the split: each keeps its name and body needs
            request, response = tracing.instrument_chains(request, response)
        target = RouteTarget(
            api=api_runtime,
            template=route.template,
            public=route.public,
            request_policies=request,
            response_policies=response,
            complete_policies=complete,
            needs_request_body=any(p.needs_request_body for p in request),
            needs_response_body=any(p.needs_response_body for p in response),
            methods=tuple(route.methods),
        )
        try:
            router.add(route.template, route.methods, target)
            if (
                cors is not None
                and "OPTIONS" not in route.methods
                and (route.template not in preflights)
            ):
                preflights.add(route.template)
                router.add(route.template, ["OPTIONS"], replace(target, preflight_only=True))
        except ConfigError as exc:
            raise ConfigError(str(exc), location=route.location) from None
    return route_warnings(api, routes, spec)
