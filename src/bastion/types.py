"""The core vocabulary of Bastion, written down once.

* :class:`Principal` — who is calling (from a JWT, an API key, an mTLS certificate).
* :class:`RequestContext` — everything known about one request while it passes the chain.
* :class:`Decision` — the outcome of a pure authorization decision, with its reasons.
* :class:`Policy` — one stage of the request path, implementing only the hooks it needs.
* :class:`Response` / :class:`UpstreamResponse` — what goes back to the client.

A policy hook has three outcomes only: continue (return ``None``), deny (raise a
:class:`bastion.errors.BastionError`), or answer locally (``on_request`` returns a
:class:`Response`, e.g. a CORS preflight).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Final, Literal, TypeAlias

__all__ = [
    "LATER",
    "ASGIApp",
    "Decision",
    "Headers",
    "Later",
    "Message",
    "Policy",
    "Principal",
    "Receive",
    "RequestContext",
    "Response",
    "Scope",
    "Send",
    "UpstreamResponse",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PrincipalKind = Literal["jwt", "api_key", "mtls", "anonymous"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. Immutable: policies read it, never change it."""

    subject: str
    kind: PrincipalKind
    issuer: str | None = None
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    #: ``jti`` of a JWT, or the id of an API key: what revocation targets.
    credential_id: str | None = None
    #: ``iat`` of a JWT (seconds since the epoch), for per-subject not-before revocation.
    issued_at: float | None = None

    def claim(self, path: str) -> Any:
        """Look up a claim by dotted path (``realm_access.roles``); ``sub`` is the subject."""
        if path in ("sub", "subject"):
            return self.subject
        value: Any = self.claims
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value


class Headers:
    """Case-insensitive, order-preserving, multi-valued view of HTTP headers.

    Built once per request from the ASGI ``(bytes, bytes)`` pairs; names are lower-cased.
    """

    __slots__ = ("_index", "pairs", "size")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        index: dict[str, list[str]] = {}
        pairs: list[tuple[str, str]] = []
        size = 0
        for raw_name, raw_value in raw:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            pairs.append((name, value))
            size += len(raw_name) + len(raw_value) + 4
            found = index.get(name)
            if found is None:
                index[name] = [value]
            else:
                found.append(value)
        self._index = index
        #: (lower-case name, value) in arrival order.
        self.pairs = pairs
        #: Bytes of all header names and values, as counted for the 431 limit.
        self.size = size

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def items(self) -> Iterable[tuple[str, str]]:
        return self.pairs


@dataclass(slots=True)
class Response:
    """A response produced by Bastion itself (problem+json, preflight, health)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(slots=True)
class UpstreamResponse:
    """The upstream's answer while it passes the response phase.

    ``body`` holds the whole body when a policy asked for it (buffered under a cap);
    otherwise ``stream`` yields it chunk by chunk straight to the client.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        self.remove_header(name)
        self.headers.append((name, value))

    def remove_header(self, name: str) -> None:
        lname = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lname]


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of a pure authorization decision: data, separate from enforcement."""

    allowed: bool
    #: Machine code of the rule that decided, e.g. ``"role.missing"``, ``"owner.mismatch"``.
    reason: str
    #: Human-readable explanations for the audit log (never sent to the client).
    details: tuple[str, ...] = ()

    @classmethod
    def allow(cls, reason: str = "allowed", *details: str) -> Decision:
        return cls(True, reason, details)

    @classmethod
    def deny(cls, reason: str, *details: str) -> Decision:
        return cls(False, reason, details)


@dataclass(slots=True)
class RequestContext:
    """Per-request state. Created by the gateway, passed through every policy."""

    request_id: str
    method: str
    #: Decoded, normalised path: what routes match.
    path: str
    query_string: bytes
    headers: Headers
    client_ip: str
    #: The TCP peer (may be a trusted proxy).
    peer_ip: str
    scheme: str
    started: float
    #: Wall-clock start (seconds since the epoch) for the audit event.
    started_wall: float
    #: PEM of the client certificate the TLS handshake verified (ASGI ``tls`` extension).
    client_cert: str | None = None
    #: ``path`` percent-encoded canonically: exactly what the upstream receives.
    upstream_path: str = ""
    api: str | None = None
    route: str | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    #: Buffered request body (only when a policy needs it), else None.
    body: bytes | None = None
    #: The JSON-decoded body, when a policy parsed it (cached for the others).
    json_body: Any = None
    json_parsed: bool = False
    decision: Decision | None = None
    status: int = 0
    error_reason: str | None = None
    upstream: str | None = None
    upstream_latency: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    #: Extra fields for the audit event (policies add what they decided).
    audit: dict[str, Any] = field(default_factory=dict)
    #: Headers policies add to the response toward the client.
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    #: Headers policies add to the request toward the upstream.
    upstream_headers: list[tuple[str, str]] = field(default_factory=list)
    #: Client headers (lower-case) policies withhold from the upstream (e.g. an API key).
    upstream_drop: set[str] = field(default_factory=set)
    #: Free-form scratch space for policies, keyed by policy name.
    state: dict[str, Any] = field(default_factory=dict)


class _Later(Enum):
    LATER = "later"


#: What :meth:`Policy.on_request_now` returns when the decision needs :meth:`Policy.on_request`.
LATER: Final = _Later.LATER
Later: TypeAlias = Literal[_Later.LATER]


class Policy:
    """One stage of the request path.

    Subclasses override only the hooks they need; the pipeline builder looks at which
    hooks are overridden and puts the policy only in those phases. Policies are built
    once at startup from validated config and are immutable afterwards.
    """

    name: ClassVar[str] = "policy"
    #: Set when ``on_request`` needs ``ctx.body`` buffered (under the configured cap).
    needs_request_body: bool = False
    #: Set when ``on_response`` needs ``response.body`` buffered (under the configured cap).
    needs_response_body: bool = False

    async def on_request(self, ctx: RequestContext) -> Response | None:
        """Before forwarding. Return None to continue, a Response to answer, or raise."""
        return None

    def on_request_now(self, ctx: RequestContext) -> Response | Later | None:
        """The request hook's synchronous shortcut, tried first: ``LATER`` defers to
        :meth:`on_request` (awaited only then); anything else is its answer.

        For policies that usually decide without waiting (a local lookup, a counter in
        memory): a request costs them no coroutine. :meth:`on_request` alone must still
        give the same answers (tracing wraps only it).
        """
        return LATER

    def wants_response_body(self, ctx: RequestContext, response: UpstreamResponse) -> bool:
        """Whether this response must be buffered for ``on_response`` (decided on headers)."""
        return self.needs_response_body

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        """After the upstream answered, before anything is sent. May edit or raise.

        ``response.body`` is None when no policy wanted the body buffered.
        """
        return None

    def on_complete(self, ctx: RequestContext) -> None:
        """After the response was sent (or refused). Must not raise or block."""
        return None

    async def startup(self) -> None:
        """Open resources (connections, background refreshers)."""
        return None

    async def shutdown(self) -> None:
        """Close resources."""
        return None
