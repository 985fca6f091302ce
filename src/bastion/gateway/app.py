"""The gateway as an ASGI application.

One request passes, in order: request context (id, client IP, clock) -> framing and path
checks -> route match (404/405) -> CORS preflight -> the route's request policies ->
forward -> the route's response policies -> security headers -> send -> complete
policies and the audit event (always, also for denials and errors).

Exceptions become problem+json in one place (:func:`render_problem`); an unexpected
exception is a generic 500, never a pass-through.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import re
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from bastion.errors import (
    BadRequest,
    BastionError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestSmuggling,
    RequestTimeout,
)
from bastion.gateway.headers import request_headers_for_upstream, response_headers_for_client
from bastion.gateway.problem import render_problem
from bastion.gateway.request import (
    check_framing,
    normalize_path,
    path_as_received,
    without_path_parameters,
)
from bastion.gateway.runtime import RouteTarget, Runtime
from bastion.gateway.tls_scope import peer_certificate
from bastion.gateway.upstream import (
    SMALL_BODY,
    UpstreamRequest,
    UpstreamRuntime,
    UpstreamTimeouts,
)
from bastion.jsonutil import dumps
from bastion.observability.audit import event_from_context
from bastion.types import (
    LATER,
    Headers,
    Receive,
    RequestContext,
    Response,
    Scope,
    Send,
    UpstreamResponse,
)

__all__ = ["Gateway"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_HEALTH_PREFIX = "/_bastion/health/"


class Gateway:
    """ASGI app. ``runtime`` is swapped by :meth:`reload` (hot reload); requests in flight
    finish on the runtime they started with.

    The admin listener (and the monitor's routes on it) stays bound to the runtime it
    started with: a reload that changes ``admin:`` or ``monitoring:`` needs a restart.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        reload: Callable[[], Runtime] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        tune_gc: bool = False,
    ) -> None:
        self.runtime = runtime
        self._tune_gc = tune_gc
        self._reload = reload
        self._clock = clock
        self._inflight = 0
        self._idle = asyncio.Event()
        self._started = False
        self._retired: list[Runtime] = []
        self._admin: tuple[Any, asyncio.Task[None]] | None = None
        #: Background tasks kept referenced until they finish.
        self._tasks: set[asyncio.Future[None]] = set()
        #: The last readiness answer (runtime, when, checks), shared for READY_FOR seconds.
        self._ready: tuple[Runtime, float, dict[str, bool]] | None = None
        self._ready_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        if not self._started:
            await self.runtime.startup()
            self._started = True
            if self._tune_gc:
                _tune_gc()
            for warning in self.runtime.warnings:
                _log("config_warning", detail=warning)
            admin = self.runtime.loaded.config.admin
            if admin is not None:
                await self._start_admin(admin.host, admin.port, admin.token)

    async def _start_admin(self, host: str, port: int, token: str) -> None:
        from bastion.gateway.admin import create_admin_app
        from bastion.gateway.embedded import embedded_server, reuse_port_socket

        app: Any = create_admin_app(lambda: self.runtime, token)
        monitor = self.runtime.monitor
        if monitor is not None:
            # /metrics, /incidents and the dashboard, in front of the admin API's routes.
            app.router.routes[:0] = monitor.admin_routes(token)
        server = embedded_server(app, host, port)
        sock = reuse_port_socket(host, port)
        self._admin = (server, asyncio.create_task(server.serve(sockets=[sock])))

    async def shutdown(self, grace: float | None = None) -> None:
        """Wait for in-flight requests (up to ``grace`` seconds), then close resources."""
        timeout = grace if grace is not None else self.runtime.loaded.config.listen.graceful_timeout
        if self._inflight:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                _log("shutdown_timeout", inflight=self._inflight)
        if self._admin is not None:
            server, task = self._admin
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
            self._admin = None
        for old in self._retired:
            await old.shutdown()
        self._retired.clear()
        await self.runtime.shutdown()

    async def reload(self) -> bool:
        """Build a runtime from the config file again; keep the old one on any error."""
        if self._reload is None:
            return False
        try:
            new = self._reload()
        except Exception as exc:  # a bad config must leave the old one serving
            _log("reload_failed", detail=str(exc))
            return False
        try:
            await new.startup()
        except Exception as exc:  # e.g. the state backend is unreachable: keep the old one
            _log("reload_failed", detail=str(exc))
            await new.shutdown()
            return False
        old, self.runtime = self.runtime, new
        self._retired.append(old)
        asyncio.get_running_loop().call_later(
            old.loaded.config.listen.graceful_timeout,
            lambda: self._tasks.add(asyncio.ensure_future(self._retire(old))),
        )
        _log("reloaded", apis=len(new.loaded.config.apis))
        for warning in new.warnings:
            _log("config_warning", detail=warning)
        return True

    async def _retire(self, old: Runtime) -> None:
        if old in self._retired:
            self._retired.remove(old)
            await old.shutdown()
        self._tasks = {t for t in self._tasks if not t.done()}

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            self._inflight += 1
            rt = self.runtime
            try:
                if rt.tracing is not None:  # the request's server span (off: never imported)
                    await rt.tracing.serve(partial(self._handle, rt), scope, receive, send)
                else:
                    await self._handle(rt, scope, receive, send)
            finally:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.set()
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        started = self._clock()
        headers = Headers(scope["headers"])
        client = scope.get("client")
        peer = client[0] if client else "0.0.0.0"
        incoming_id = headers.get("x-request-id")
        request_id = (
            incoming_id if incoming_id and _REQUEST_ID.match(incoming_id) else _next_request_id()
        )
        ctx = RequestContext(
            request_id=request_id,
            method=scope["method"],
            path="",  # once accepted by normalize_path (see the audit below)
            query_string=scope.get("query_string", b""),
            headers=headers,
            client_ip=rt.trusted.client_ip(peer, headers) if rt.trusted else peer,
            peer_ip=peer,
            scheme=scope.get("scheme", "http"),
            started=started,
            started_wall=time.time(),
            client_cert=peer_certificate(scope),
        )
        target: RouteTarget | None = None

        try:
            max_header, max_body, _ = rt.limits
            declared = check_framing(headers, max_header_bytes=max_header, max_body_bytes=max_body)
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
            path, ctx.upstream_path = normalize_path(raw_path.split(b"?", 1)[0])
            ctx.path = path
            for policy in rt.global_policies:
                local = policy.on_request_now(ctx)
                if local is LATER:
                    local = await policy.on_request(ctx)
                if local is not None:
                    await self._send(rt, ctx, local, send)
                    return
            if path.startswith(_HEALTH_PREFIX):
                await self._send(rt, ctx, await self._health(rt, path), send)
                return
            match = rt.router.match(ctx.method, path)
            if ";" in path:
                _refuse_parameters_routed_elsewhere(rt, path, match.template)
            target = match.target
            ctx.api, ctx.route, ctx.path_params = target.api.name, target.template, match.params
            if target.preflight_only or (
                ctx.method == "OPTIONS" and "access-control-request-method" in headers
            ):
                cors = target.api.cors
                if cors is None or "access-control-request-method" not in headers:
                    raise MethodNotAllowed(target.methods, reason="route.method_not_allowed")
                await self._send(rt, ctx, cors.preflight(ctx), send)
                return
            has_body = bool(declared) or "transfer-encoding" in headers
            if has_body and (
                target.needs_request_body or declared is None or declared <= SMALL_BODY
            ):
                # Policies need it, or its length is unknown: buffer it under the cap, so an
                # oversized body is refused before anything reaches the upstream. Small
                # bodies are buffered too: sent as bytes, they keep upstream connections
                # pooled (a streamed body made aiohttp open new ones).
                try:
                    async with asyncio.timeout(rt.loaded.config.limits.body_timeout):
                        ctx.body = await _read_body(receive, max_body)
                except TimeoutError:
                    raise RequestTimeout(reason="limits.body_timeout") from None
                ctx.bytes_in = len(ctx.body)
            for policy in target.request_policies:
                local = policy.on_request_now(ctx)
                if local is LATER:
                    local = await policy.on_request(ctx)
                if local is not None:
                    await self._send(rt, ctx, local, send, target)
                    return
            await self._forward(rt, ctx, target, receive, send, declared)
        except BastionError as error:
            ctx.error_reason = error.reason
            if not ctx.status and not isinstance(error, _ClientGone):
                problem = render_problem(error, request_id=ctx.request_id)
                try:
                    await self._send(rt, ctx, problem, send, target)
                except Exception:  # the client is gone: nobody to tell
                    if not isinstance(error, _BodyCut):
                        raise
        except Exception as exc:
            ctx.error_reason = "internal_error"
            _log(
                "internal_error",
                request_id=ctx.request_id,
                error=type(exc).__name__,
                trace=traceback.format_exc(limit=8),
            )
            if not ctx.status:
                problem = render_problem(InternalError(), request_id=ctx.request_id)
                await self._send(rt, ctx, problem, send, target)
        finally:
            if not ctx.path:  # refused before its path was accepted: logged as it came
                ctx.path = path_as_received(scope.get("raw_path"), scope.get("path", "/"))
            if target is not None:
                for policy in target.complete_policies:
                    try:
                        policy.on_complete(ctx)
                    except Exception as exc:  # on_complete must not break the response
                        _log("policy_complete_error", policy=policy.name, error=repr(exc))
            if rt.audit.enabled:
                rt.audit.emit(event_from_context(ctx, self._clock(), rt.services.ipv6_prefix))

    async def _forward(
        self,
        rt: Runtime,
        ctx: RequestContext,
        target: RouteTarget,
        receive: Receive,
        send: Send,
        declared_length: int | None,
    ) -> None:
        body: bytes | AsyncIterator[bytes] | None = ctx.body
        if body is None and declared_length:
            # Declared and within the limit, and no policy reads it: stream it through.
            body = _stream_body(receive, rt.limits[1], ctx, rt.loaded.config.limits.body_timeout)
        upstream = target.api.upstream
        out_headers = request_headers_for_upstream(
            ctx.headers,
            client_ip=ctx.client_ip,
            peer_trusted=rt.trusted.trusts(ctx.peer_ip),
            scheme=ctx.scheme,
            host=ctx.headers.get("host"),
            request_id=ctx.request_id,
            drop=ctx.upstream_drop,
        )
        out_headers.extend(upstream.headers)
        out_headers.extend(ctx.upstream_headers)
        if isinstance(body, bytes | bytearray):
            out_headers.append(("content-length", str(len(body))))
        elif body is not None and declared_length is not None:
            out_headers.append(("content-length", str(declared_length)))
        url = upstream.base_url + ctx.upstream_path
        if ctx.query_string:
            url += "?" + ctx.query_string.decode("latin-1")
        ctx.upstream = upstream.name
        sent_at = self._clock()
        try:
            reply = await upstream.transport.send(
                UpstreamRequest(ctx.method, url, out_headers, body, upstream.timeouts)
            )
        except BastionError:
            if ctx.state.get("body_too_large"):
                raise PayloadTooLarge(reason="limits.body_bytes") from None
            raise
        response = UpstreamResponse(reply.status, response_headers_for_client(reply.headers))
        if (
            target.needs_response_body
            and ctx.method != "HEAD"
            and any(p.wants_response_body(ctx, response) for p in target.response_policies)
        ):
            response.body = await reply.read(rt.limits[2])
        elif reply.body is not None:
            response.body = reply.body
        else:
            response.stream = reply.chunks
            length = next((v for k, v in reply.headers if k.lower() == "content-length"), None)
            if length is not None and length.isdigit():
                response.headers.append(("content-length", length))
        ctx.upstream_latency = self._clock() - sent_at
        for policy in target.response_policies:
            await policy.on_response(ctx, response)
        await self._send_upstream(rt, ctx, target, response, send)

    async def _send_upstream(
        self,
        rt: Runtime,
        ctx: RequestContext,
        target: RouteTarget,
        response: UpstreamResponse,
        send: Send,
    ) -> None:
        body = response.body
        headers = self._final_headers(rt, ctx, response.headers, target, body)
        ctx.status = response.status
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if body is not None:
            ctx.bytes_out = len(body)
            await send({"type": "http.response.body", "body": body})
            return
        assert response.stream is not None
        # An upstream failing mid-body raises on through _handle, which records why and
        # sends nothing more (the head is gone): the server then drops the connection
        # without ending the body, so the client sees the answer cut off. Ending it
        # normally would present a cut-off document as complete.
        async for chunk in response.stream:
            ctx.bytes_out += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _send(
        self,
        rt: Runtime,
        ctx: RequestContext,
        response: Response,
        send: Send,
        target: RouteTarget | None = None,
    ) -> None:
        headers = self._final_headers(rt, ctx, response.headers, target, response.body)
        ctx.status = response.status
        ctx.bytes_out = len(response.body)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    def _final_headers(
        self,
        rt: Runtime,
        ctx: RequestContext,
        headers: list[tuple[str, str]],
        target: RouteTarget | None,
        body: bytes | None,
    ) -> list[tuple[bytes, bytes]]:
        """Encoded response headers: ours (precomputed) after the upstream's."""
        authenticated = ctx.principal is not None
        out = rt.security.encode(
            headers, authenticated=authenticated, replace_length=body is not None
        )
        if body is not None:
            out.append((b"content-length", str(len(body)).encode()))
        out.append((b"x-request-id", ctx.request_id.encode("latin-1")))
        extra = ctx.response_headers
        if target is not None and target.api.cors is not None:
            extra = [*extra, *target.api.cors.response_headers(ctx)]
        out.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra)
        return out

    async def _readiness(self, rt: Runtime) -> dict[str, bool]:
        """The readiness checks, probed at most once per :data:`READY_FOR` seconds (callers
        arriving meanwhile wait for the probe under way and share its answer)."""
        async with self._ready_lock:
            cached = self._ready
            if cached is not None and cached[0] is rt and self._clock() - cached[1] < READY_FOR:
                return cached[2]
            checks = await asyncio.gather(*(_probe(u) for u in rt.upstreams.values()))
            components = dict(zip(rt.upstreams, checks, strict=True))
            components.update(await rt.ready())
            self._ready = (rt, self._clock(), components)
            return components

    async def _health(self, rt: Runtime, path: str) -> Response:
        if path == "/_bastion/health/live":
            return _json(200, {"status": "live"})
        if path != "/_bastion/health/ready":
            raise NotFound(reason="route.unknown_path")
        components = await self._readiness(rt)
        ready = all(components.values())
        return _json(
            200 if ready else 503,
            {"status": "ready" if ready else "not_ready", "checks": components},
        )


#: Seconds one readiness answer serves: anyone may ask it on the public port, and each
#: answer probes every upstream (a flood of asks was a flood of upstream probes).
READY_FOR = 1.0


#: Young-generation collection threshold for serving processes (CPython's default is 700).
GC_THRESHOLD = (10_000, 10, 10)


def _tune_gc() -> None:
    """For a serving process, once started: everything built so far (config, router,
    compiled schemas, libraries) lives as long as the process, so move it out of the
    collector's way (``gc.freeze``), and collect young objects less often: a request
    allocates hundreds of objects, almost all freed by reference counting, and the
    default threshold ran a collection every request or two. Measured in-process with a
    stub upstream: about 15 % less CPU for a validated 2 KB POST (452 -> 382 µs). Cyclic
    garbage waits a little longer to be freed (at most 10,000 young objects' worth).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


async def _probe(upstream: UpstreamRuntime) -> bool:
    try:
        if upstream.health_path:
            reply = await upstream.transport.send(
                UpstreamRequest(
                    "GET",
                    upstream.base_url + upstream.health_path,
                    [],
                    None,
                    UpstreamTimeouts(connect=2.0, read=2.0, total=3.0),
                )
            )
            await reply.read(1_048_576)
            return bool(reply.status < 500)
        host, _, port = upstream.host_header.rpartition(":")
        if not host:
            host, port = (
                upstream.host_header,
                "443" if upstream.base_url.startswith("https") else "80",
            )
        _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 2)
        writer.close()
        return True
    except (BastionError, OSError, TimeoutError, ValueError):
        return False


def _refuse_parameters_routed_elsewhere(rt: Runtime, path: str, template: str) -> None:
    """400 when the path without its segments' ``;parameters`` is another route's.

    ``/orders/export;jsessionid=x`` matches the public ``/orders/{order_id}`` here, while a
    servlet container upstream drops the parameters and serves ``/orders/export``, whose
    route asks for more (an admin role): what was authorized is not what is served.
    """
    bare = without_path_parameters(path)
    if bare != path:
        other = rt.router.template_for(bare)
        if other is not None and other != template:
            raise RequestSmuggling(
                "A ';' parameter in the request path hides another route's path.",
                reason="path.parameter_route",
            )


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # Gone, or a body the server could not read (granian reports a malformed
            # chunked body so, and answered 500 itself when the app sent nothing).
            raise _BodyCut()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(reason="limits.body_bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _stream_body(
    receive: Receive, limit: int, ctx: RequestContext, waiting: float
) -> AsyncIterator[bytes]:
    """The body as it arrives, within ``waiting`` seconds of waiting for it in all (the
    time the upstream takes to read it does not count). A stalled or trickled body used to
    hold its request and its upstream connection with no deadline."""
    loop = asyncio.get_running_loop()
    remaining = waiting
    while True:
        began = loop.time()
        try:
            async with asyncio.timeout(remaining):
                message = await receive()
        except TimeoutError:
            raise RequestTimeout(reason="limits.body_timeout") from None
        remaining -= loop.time() - began
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        chunk = message.get("body", b"")
        ctx.bytes_in += len(chunk)
        if ctx.bytes_in > limit:
            ctx.state["body_too_large"] = True
            raise PayloadTooLarge(reason="limits.body_bytes")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class _ClientGone(BastionError):
    """The client disconnected mid-request; nothing is sent, the audit records it."""

    status = 499
    code = "client_closed_request"
    title = "Client closed request"


class _BodyCut(BadRequest):
    """The request body ended early or could not be read: a 400 when it can still be
    sent (the client may be gone, then nothing arrives)."""

    def __init__(self) -> None:
        super().__init__("The request body was cut off or malformed.", reason="request.body_cut")


_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)


def _next_request_id() -> str:
    """Unique without a syscall: a random per-process prefix and a counter."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def _json(status: int, body: Any) -> Response:
    return Response(status, [("content-type", "application/json")], dumps(body))


def _log(event: str, **fields: Any) -> None:
    """Operational log line (stderr), separate from the audit stream."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event, **fields}
    sys.stderr.write(dumps(record).decode() + "\n")
    sys.stderr.flush()
