"""`bastion check`: findings about insecure or risky settings.

An ``error`` finding stops the gateway from starting in production mode (and makes
``bastion check`` exit 1); a ``warning`` is reported but allowed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from bastion.config import LoadedConfig
from bastion.config.loader import KeyPath
from bastion.secrets import weak_secret_reason

__all__ = ["Finding", "lint"]

Severity = Literal["error", "warning"]
_SECRET_HEADER_HINTS = ("authorization", "key", "token", "secret", "password", "cookie")


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    location: str

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.code}: {self.message}"


def lint(loaded: LoadedConfig) -> list[Finding]:
    """Every finding about ``loaded``, errors first."""
    config, source = loaded.config, loaded.source
    production = config.mode == "production"
    findings: list[Finding] = []

    def add(severity: Severity, code: str, message: str, path: KeyPath) -> None:
        findings.append(Finding(severity, code, message, source.location(path)))

    if config.listen.tls is None:
        add(
            "error" if production else "warning",
            "plain-http",
            "the listener serves plain HTTP; configure listen.tls (production mode requires it)",
            ("listen",),
        )
    else:
        for key in ("cert", "key", "client_ca"):
            value = getattr(config.listen.tls, key)
            if value is not None and not loaded.resolve(value).is_file():
                add(
                    "error",
                    "tls-file-missing",
                    f"TLS {key} file does not exist",
                    ("listen", "tls", key),
                )

    for name, upstream in config.upstreams.items():
        if upstream.timeout is None:
            add(
                "error" if production else "warning",
                "upstream-timeouts-missing",
                "no connect/read/total timeouts: a slow upstream would hold connections forever "
                "(defaults 5/30/60 s apply)",
                ("upstreams", name),
            )
        host = urlsplit(upstream.url).hostname or ""
        if upstream.url.startswith("http://") and not _is_loopback(host):
            add(
                "warning",
                "upstream-plain-http",
                f"upstream {name!r} is reached over plain HTTP on a non-loopback host",
                ("upstreams", name, "url"),
            )
        if "@" in urlsplit(upstream.url).netloc:
            add(
                "error",
                "inline-secret",
                "credentials in the upstream URL; use headers with ${ENV}",
                ("upstreams", name, "url"),
            )
        for header, value in upstream.headers.items():
            if not any(h in header.lower() for h in _SECRET_HEADER_HINTS):
                continue
            path: KeyPath = ("upstreams", name, "headers", header)
            if path not in source.from_env:
                add(
                    "error" if production else "warning",
                    "inline-secret",
                    "secret written inline in the config; use ${ENV}",
                    path,
                )
            reason = weak_secret_reason(value.split(" ", 1)[-1])
            if reason:
                add("error", "weak-secret", f"the secret {reason}", path)

    for index, issuer in enumerate(config.authentication.jwt):
        # Whoever can change the key set in transit can sign any token.
        for key, url in (
            ("jwks_uri", issuer.jwks_uri),
            ("issuer", issuer.issuer if issuer.discovery else None),
        ):
            plain = url is not None and url.startswith("http://")
            if plain and not _is_loopback(urlsplit(url or "").hostname or ""):
                add(
                    "error" if production else "warning",
                    "jwks-plain-http",
                    "signing keys are fetched over plain HTTP on a non-loopback host: "
                    "anyone on the path could swap them and forge tokens; use https://",
                    ("authentication", "jwt", index, key),
                )

    for index, api in enumerate(config.apis):
        if api.cors is not None and "*" in api.cors.allow_origins:
            add("warning", "cors-wildcard", "CORS allows any origin", ("apis", index, "cors"))
        configured = config.authentication.methods()
        for r_index, route in enumerate(api.routes):
            if not route.public and not (route.authentication or api.authentication or configured):
                add(
                    "error",
                    "route-without-authentication",
                    f"route {api.base_path}{route.path} is not public: true but no "
                    "authentication is configured for it",
                    ("apis", index, "routes", r_index),
                )

    tracing = config.tracing
    if tracing is not None:
        if tracing.endpoint.startswith("http://") and not _is_loopback(
            urlsplit(tracing.endpoint).hostname or ""
        ):
            add(
                "warning",
                "tracing-plain-http",
                "spans (paths, principals, decisions) go to the collector over plain HTTP on a "
                "non-loopback host; use https://",
                ("tracing", "endpoint"),
            )
        for header in tracing.headers:
            path = ("tracing", "headers", header)
            if path not in source.from_env and any(
                h in header.lower() for h in _SECRET_HEADER_HINTS
            ):
                add(
                    "error" if production else "warning",
                    "inline-secret",
                    "collector credential written inline in the config; use ${ENV}",
                    path,
                )

    mtls = config.authentication.mtls
    if mtls is not None and not mtls.from_header:
        tls = config.listen.tls
        if tls is None or tls.client_ca is None:
            add(
                "error",
                "mtls-without-source",
                "authentication.mtls has no client certificates to read: set "
                "listen.tls.client_ca, or from_header: true behind a TLS-terminating proxy",
                ("authentication", "mtls"),
            )
        elif config.listen.server == "granian":
            # A warning: `bastion gateway --server uvicorn` overrides listen.server, and
            # serving on granian refuses this config anyway (policies.mtls.check_server).
            add(
                "warning",
                "mtls-granian",
                "granian verifies client certificates but cannot pass them to the app: use "
                "listen.server: uvicorn, or a TLS-terminating proxy with from_header: true",
                ("authentication", "mtls"),
            )

    if config.admin is not None:
        path = ("admin", "token")
        if path not in source.from_env:
            add(
                "error" if production else "warning",
                "inline-secret",
                "the admin token is written inline in the config; use ${ENV}",
                path,
            )
        reason = weak_secret_reason(config.admin.token)
        if reason:
            add("error", "weak-secret", f"the admin token {reason}", path)
        if not _is_loopback(config.admin.host):
            add(
                "warning",
                "admin-exposed",
                "the admin API listens on a non-loopback address",
                ("admin", "host"),
            )

    if config.state.backend == "memory" and config.listen.workers > 1:
        add(
            "warning",
            "memory-state-per-process",
            f"state.backend is memory with {config.listen.workers} workers: rate limits, "
            "revocations and blocks are per process; use backend: redis",
            ("state",),
        )

    if config.audit.sink == "none":
        add(
            "error" if production else "warning",
            "audit-disabled",
            "audit.sink is none: requests leave no audit trail",
            ("audit", "sink"),
        )
    findings.sort(key=lambda f: f.severity != "error")
    return findings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
