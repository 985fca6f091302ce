"""OpenTelemetry tracing of the gateway: spans per pipeline stage, exported as OTLP/HTTP.

Optional and off unless the config has a ``tracing:`` section. Importing this module
imports OpenTelemetry, so ``gateway/runtime.py`` imports it only when tracing is configured:
a gateway without tracing never loads OpenTelemetry, and its request path pays one
``if rt.tracing is not None`` per request. Everything else is wrapped in at assembly time:

* ``SERVER`` ``{method} {route}`` (``{method}`` when no route matched) around the whole
  request, made the current span while the policies and the upstream call run
  (:meth:`Tracing.serve`);
* ``INTERNAL`` ``policy {name} request`` / ``policy {name} response`` around each policy
  hook (:meth:`Tracing.instrument_chains`);
* ``CLIENT`` ``upstream {method}`` around each upstream exchange, up to the response
  headers; it writes the W3C ``traceparent`` (and ``tracestate``) of that span into the
  upstream request, replacing whatever the client sent (:meth:`Tracing.instrument_transport`).

An incoming ``traceparent`` becomes the parent only when ``trust_incoming`` is set or the
direct peer is a trusted proxy; from anyone else the gateway starts a new trace and records
the client's as a span link, so a client cannot pick trace ids or force sampling.

Spans are exported by a ``BatchSpanProcessor`` on its own thread with a bounded queue: a slow
or dead collector costs dropped spans, never request latency. Query strings, headers and
bodies are never recorded.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bastion import __version__
from bastion.config.models import TracingConfig
from bastion.errors import BastionError
from bastion.gateway.request import TrustedProxies
from bastion.gateway.upstream import Transport, UpstreamReply, UpstreamRequest
from bastion.types import (
    Message,
    Policy,
    Receive,
    RequestContext,
    Response,
    Scope,
    Send,
    UpstreamResponse,
)

__all__ = ["Tracing", "build_tracing"]

_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
_INSTRUMENTATION = "bastion.gateway"


class _ServerRecord:
    """What the server span learns while the request runs (filled by the gateway)."""

    __slots__ = ("ctx", "headers", "status")

    def __init__(self) -> None:
        self.ctx: RequestContext | None = None
        self.status = 0
        self.headers: Sequence[tuple[bytes, bytes]] = ()


#: The record of the request being served in this task (set by :meth:`Tracing.serve`).
_CURRENT: ContextVar[_ServerRecord | None] = ContextVar("bastion_trace_record", default=None)


def build_tracing(config: TracingConfig, trusted: TrustedProxies) -> Tracing:
    """A :class:`Tracing` for ``config``; nothing is exported before :meth:`Tracing.start`."""
    return Tracing(config, trusted)


class Tracing:
    """The tracer provider of one runtime and the wrappers that put spans in its path.

    Built with the runtime (no thread, no socket); :meth:`start` adds the exporter and its
    thread (in the worker process), :meth:`shutdown` flushes and stops it.
    """

    def __init__(self, config: TracingConfig, trusted: TrustedProxies) -> None:
        self.config = config
        self._trusted = trusted
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            resource=Resource.create(
                {"service.name": config.service_name, "service.version": __version__}
            ),
            shutdown_on_exit=False,
        )
        self.tracer = self._provider.get_tracer(_INSTRUMENTATION, __version__)
        self._propagator = TraceContextTextMapPropagator()
        self._exporter: SpanExporter | None = None
        #: Put first among the runtime's global policies: hands the request context to the
        #: server span (the route, principal, decision and reason are known only there).
        self.context_policy: Policy = _ContextCapture()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, exporter: SpanExporter | None = None) -> None:
        """Start exporting (to the configured collector, or ``exporter``). Idempotent."""
        if self._exporter is not None:
            return
        config = self.config
        self._exporter = exporter or OTLPSpanExporter(
            endpoint=config.endpoint, headers=dict(config.headers), timeout=config.timeout
        )
        # Default bounded queue (2048 spans): when it is full, spans are dropped.
        self._provider.add_span_processor(
            BatchSpanProcessor(self._exporter, export_timeout_millis=config.timeout * 1000)
        )

    def flush(self) -> bool:
        """Export what is queued now (blocking: call it off the event loop)."""
        return self._provider.force_flush(int(self.config.timeout * 1000))

    def shutdown(self) -> None:
        """Flush and stop, within about ``timeout`` seconds even when the collector is dead.

        Blocking: the runtime calls it in a thread. If the final export is still retrying
        after ``timeout``, the exporter is shut down, which aborts its back-off.
        """
        worker = threading.Thread(
            target=self._provider.shutdown, name="bastion-tracing-shutdown", daemon=True
        )
        worker.start()
        worker.join(self.config.timeout)
        if worker.is_alive() and self._exporter is not None:
            self._exporter.shutdown()
            worker.join(1.0)

    # -- the server span -------------------------------------------------------------------

    async def serve(
        self,
        call: Callable[[Scope, Receive, Send], Awaitable[None]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Run ``call`` (the gateway's request handler) inside the request's server span."""
        method: str = scope["method"]
        client = scope.get("client")
        peer = client[0] if client else ""
        parent, links = self._parent(scope.get("headers") or (), peer)
        span = self.tracer.start_span(
            method if method in _KNOWN_METHODS else "HTTP",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
                "url.path": scope.get("path", "/"),
                "url.scheme": scope.get("scheme", "http"),
                "network.peer.address": peer,
            },
            links=links,
        )
        record = _ServerRecord()
        record_token = _CURRENT.set(record)
        context_token = otel_context.attach(trace.set_span_in_context(span, otel_context.Context()))

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                record.headers = message.get("headers") or ()
            await send(message)

        try:
            await call(scope, receive, traced_send)
        except BaseException as exc:  # cancelled or crashed: still end the span, then re-raise
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            _CURRENT.reset(record_token)
            otel_context.detach(context_token)
            if span.is_recording():
                _finish_server_span(span, record, method)
            span.end()

    def _parent(
        self, raw_headers: Sequence[tuple[bytes, bytes]], peer: str
    ) -> tuple[otel_context.Context, list[Link]]:
        """The parent context (empty: a new trace) and the links of the server span."""
        carrier: dict[str, list[str]] = {}
        for raw_name, raw_value in raw_headers:
            name = raw_name.decode("latin-1").lower()
            if name in _TRACE_HEADERS:
                carrier.setdefault(name, []).append(raw_value.decode("latin-1"))
        root = otel_context.Context()
        if len(carrier.get("traceparent", ())) != 1:
            return root, []  # none, or ambiguous (W3C: more than one is invalid)
        extracted = self._propagator.extract(carrier, context=otel_context.Context())
        incoming = trace.get_current_span(extracted).get_span_context()
        if not incoming.is_valid:
            return root, []
        if self.config.trust_incoming or self._trusted.trusts(peer):
            return extracted, []
        return root, [Link(incoming, {"bastion.link": "client_traceparent"})]

    # -- policies and the upstream transport, wrapped at assembly time ----------------------

    def instrument_chains(
        self, request: Sequence[Policy], response: Sequence[Policy]
    ) -> tuple[tuple[Policy, ...], tuple[Policy, ...]]:
        """The chains with each policy wrapped in its own span (one wrapper per policy)."""
        wrapped: dict[int, Policy] = {}

        def wrap(policy: Policy) -> Policy:
            found = wrapped.get(id(policy))
            if found is None:
                found = wrapped[id(policy)] = _traced_class(policy.name)(policy, self.tracer)
            return found

        return tuple(wrap(p) for p in request), tuple(wrap(p) for p in response)

    def instrument_transport(self, transport: Transport, upstream: str) -> Transport:
        """``transport`` with a client span per exchange and W3C trace context injected."""
        return _TracedTransport(transport, upstream, self.tracer, self._propagator)


def _finish_server_span(span: trace.Span, record: _ServerRecord, method: str) -> None:
    ctx = record.ctx
    status = record.status
    if ctx is not None:
        status = ctx.status or status
        span.set_attribute("client.address", ctx.client_ip)
        span.set_attribute("bastion.request_id", ctx.request_id)
        if ctx.route is not None:
            span.set_attribute("http.route", ctx.route)
            if method in _KNOWN_METHODS:
                span.update_name(f"{method} {ctx.route}")
        if ctx.api is not None:
            span.set_attribute("bastion.api", ctx.api)
        if ctx.principal is not None:
            span.set_attribute("bastion.principal", ctx.principal.subject)
        if ctx.decision is not None:
            span.set_attribute("bastion.decision", ctx.decision.reason)
        if ctx.error_reason is not None:
            span.set_attribute("bastion.error_reason", ctx.error_reason)
        if ctx.upstream is not None:
            span.set_attribute("bastion.upstream", ctx.upstream)
    else:  # refused by the framing checks, before the request context reached the policies
        for name, value in record.headers:
            if name == b"x-request-id":
                span.set_attribute("bastion.request_id", value.decode("latin-1"))
    if status:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))


class _ContextCapture(Policy):
    """A global policy that hands the request context to the current server span."""

    name = "tracing"

    async def on_request(self, ctx: RequestContext) -> Response | None:
        record = _CURRENT.get()
        if record is not None:
            record.ctx = ctx
        return None


class _TracedPolicy(Policy):
    """Runs one policy's hooks inside spans; keeps its name and body needs."""

    def __init__(self, inner: Policy, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer
        self.needs_request_body = inner.needs_request_body
        self.needs_response_body = inner.needs_response_body
        self._request_span = f"policy {inner.name} request"
        self._response_span = f"policy {inner.name} response"

    @property
    def inner(self) -> Policy:
        return self._inner

    async def on_request(self, ctx: RequestContext) -> Response | None:
        # start_span + attach/detach by hand: a third cheaper than start_as_current_span.
        span = self._tracer.start_span(self._request_span)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            answer = await self._inner.on_request(ctx)
            if answer is not None and span.is_recording():
                span.set_attribute("bastion.outcome", "answer")
        except BaseException as exc:
            _policy_failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()
        return answer

    def wants_response_body(self, ctx: RequestContext, response: UpstreamResponse) -> bool:
        return self._inner.wants_response_body(ctx, response)

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        span = self._tracer.start_span(self._response_span)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self._inner.on_response(ctx, response)
        except BaseException as exc:
            _policy_failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def on_complete(self, ctx: RequestContext) -> None:
        self._inner.on_complete(ctx)

    async def startup(self) -> None:
        await self._inner.startup()

    async def shutdown(self) -> None:
        await self._inner.shutdown()


def _policy_failed(span: trace.Span, exc: BaseException) -> None:
    """A denial is the policy doing its job (outcome deny); anything else is an error."""
    if not span.is_recording():
        return
    if isinstance(exc, BastionError):
        span.set_attribute("bastion.outcome", "deny")
        span.set_attribute("bastion.error_reason", exc.reason)
        if exc.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    else:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.set_attribute("error.type", type(exc).__qualname__)


_CLASSES: dict[str, type[_TracedPolicy]] = {}


def _traced_class(name: str) -> type[_TracedPolicy]:
    """A wrapper class per policy name, so ``wrapper.name`` is the policy's (a ClassVar)."""
    found = _CLASSES.get(name)
    if found is None:
        found = _CLASSES[name] = cast(
            "type[_TracedPolicy]", type(f"Traced[{name}]", (_TracedPolicy,), {"name": name})
        )
    return found


class _TracedTransport:
    """A client span around each upstream exchange; writes its W3C trace context upstream."""

    def __init__(
        self,
        inner: Transport,
        upstream: str,
        tracer: trace.Tracer,
        propagator: TraceContextTextMapPropagator,
    ) -> None:
        self._inner = inner
        self._upstream = upstream
        self._tracer = tracer
        self._propagator = propagator

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        parts = urllib.parse.urlsplit(request.url)
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "server.address": parts.hostname or "",
            "url.full": urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "bastion.upstream": self._upstream,
        }
        if parts.port is not None:
            attributes["server.port"] = parts.port
        span = self._tracer.start_span(
            f"upstream {request.method}", kind=SpanKind.CLIENT, attributes=attributes
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        # The client's own traceparent/tracestate (and any configured) are replaced by ours.
        request.headers = [
            (name, value) for name, value in request.headers if name.lower() not in _TRACE_HEADERS
        ]
        request.headers.extend(carrier.items())
        try:
            reply = await self._inner.send(request)
        except BaseException as exc:
            if span.is_recording():
                reason = exc.reason if isinstance(exc, BastionError) else type(exc).__qualname__
                span.set_status(Status(StatusCode.ERROR, reason))
                span.set_attribute("error.type", reason)
            span.end()
            raise
        if span.is_recording():
            span.set_attribute("http.response.status_code", reply.status)
            if reply.status >= 400:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(reply.status))
        span.end()
        return reply

    async def close(self) -> None:
        await self._inner.close()
