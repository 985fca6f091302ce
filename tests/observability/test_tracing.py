"""OpenTelemetry tracing through the ASGI gateway, against a real upstream on a socket.

Spans go to an in-memory exporter; the upstream records the headers it received, so the
tests see what a collector and an upstream service would see.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bastion.config import load_config
from bastion.config.lint import lint
from bastion.errors import ConfigError
from bastion.gateway.app import Gateway
from bastion.gateway.runtime import build_runtime
from tests.support.keys import KeyIssuer, make_issuer
from tests.support.procs import ROOT, free_port
from tests.support.upstream import make_app

TRUSTED_PROXY = "10.9.9.9"
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"


@dataclass
class Stack:
    gateway: Gateway
    exporter: InMemorySpanExporter
    issuer: KeyIssuer
    log: Path

    async def call(
        self,
        path: str,
        *,
        query: str = "",
        headers: Sequence[tuple[str, str]] = (),
        peer: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str]]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": [(b"host", b"gateway.test")]
            + [(k.lower().encode(), v.encode()) for k, v in headers],
            "client": (peer, 40000),
            "server": ("127.0.0.1", 8443),
        }
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await self.gateway(scope, receive, send)
        start = sent[0]
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}

    def spans(self) -> list[ReadableSpan]:
        tracing = self.gateway.runtime.tracing
        assert tracing is not None
        assert tracing.flush()
        return list(self.exporter.get_finished_spans())

    def upstream_headers(self) -> list[list[dict[str, str]]]:
        """The headers of every request the upstream received, lower-cased names."""
        records = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [[{k.lower(): v} for k, v in r["headers"]] for r in records]

    def upstream_traceparents(self) -> list[list[str]]:
        return [
            [v for pair in headers for k, v in pair.items() if k == "traceparent"]
            for headers in self.upstream_headers()
        ]


@asynccontextmanager
async def stack(tmp: Path, *, tracing: str = "") -> AsyncIterator[Stack]:
    log = tmp / "upstream.jsonl"
    log.write_text("")
    runner = web.AppRunner(make_app(log), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    issuer = make_issuer(tmp)
    config = tmp / "gateway.yaml"
    config.write_text(
        f"""version: 1
mode: development
audit: {{sink: none}}
trusted_proxies: ["{TRUSTED_PROXY}/32"]
tracing: {{endpoint: "http://127.0.0.1:9/v1/traces"{tracing}}}
{issuer.config()}
upstreams:
  echo: {{url: "http://127.0.0.1:{port}", timeout: {{connect: 1, read: 5, total: 5}}}}
  dead: {{url: "http://127.0.0.1:{free_port()}", timeout: {{connect: 1, read: 1, total: 2}}}}
apis:
  - name: echo
    upstream: echo
    routes:
      - {{path: /echo, methods: [GET], public: true}}
      - path: /owned
        methods: [GET]
        allow: {{roles: [reader]}}
        owner: {{response: body.query, equals: principal.sub}}
  - name: dead
    upstream: dead
    routes:
      - {{path: /dead, methods: [GET], public: true}}
"""
    )
    runtime = build_runtime(load_config(config))
    exporter = InMemorySpanExporter()
    assert runtime.tracing is not None
    runtime.tracing.start(exporter)
    gateway = Gateway(runtime)
    await gateway.startup()
    try:
        yield Stack(gateway, exporter, issuer, log)
    finally:
        await gateway.shutdown(grace=1)
        await runner.cleanup()


def by_kind(spans: list[ReadableSpan], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind == kind]


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def traceparent_of(span: ReadableSpan) -> str:
    context = span.context
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def test_a_request_is_one_trace_with_a_span_per_stage(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        token = s.issuer.token("alice", ["reader"])
        status, headers = await s.call(
            "/owned", query="alice", headers=[("authorization", f"Bearer {token}")]
        )
        assert status == 200
        spans = s.spans()

    (server,) = by_kind(spans, SpanKind.SERVER)
    (client,) = by_kind(spans, SpanKind.CLIENT)
    internal = by_kind(spans, SpanKind.INTERNAL)
    trace_id, server_id = ids(server)
    assert server.parent is None
    assert server.name == "GET /owned"
    attributes = dict(server.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/owned"
    assert attributes["url.path"] == "/owned"
    assert attributes["http.response.status_code"] == 200
    assert attributes["client.address"] == "127.0.0.1"
    assert attributes["bastion.api"] == "echo"
    assert attributes["bastion.principal"] == "alice"
    assert attributes["bastion.request_id"] == headers["x-request-id"]
    assert "bastion.decision" in attributes
    assert server.resource.attributes["service.name"] == "bastion-gateway"
    assert server.status.status_code == StatusCode.UNSET

    assert [span.name for span in internal] == [
        "policy authentication request",
        "policy allow request",
        "policy owner_response request",  # refuses HEAD (its answer cannot be checked)
        "policy owner_response response",
    ]
    for span in [*internal, client]:
        assert span.context is not None
        assert span.parent is not None
        assert span.context.trace_id == trace_id
        assert span.parent.span_id == server_id

    assert client.name == "upstream GET"
    client_attributes = dict(client.attributes or {})
    assert client_attributes["http.response.status_code"] == 200
    assert client_attributes["server.address"] == "127.0.0.1"
    assert "?" not in str(client_attributes["url.full"])  # query strings are never recorded
    # The upstream received the client span's context, and only that one.
    assert s.upstream_traceparents() == [[traceparent_of(client)]]
    assert int(traceparent_of(client)[-2:], 16) & 1  # sampled


async def test_untrusted_client_traceparent_is_a_link_not_the_parent(tmp_path: Path) -> None:
    incoming = f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"
    async with stack(tmp_path) as s:
        status, _ = await s.call(
            "/echo", headers=[("traceparent", incoming), ("tracestate", "vendor=picked")]
        )
        assert status == 200
        spans = s.spans()
        upstream = s.upstream_headers()[0]

    (server,) = by_kind(spans, SpanKind.SERVER)
    trace_id, _ = ids(server)
    assert server.parent is None
    assert f"{trace_id:032x}" != INCOMING_TRACE
    (link,) = server.links
    assert f"{link.context.trace_id:032x}" == INCOMING_TRACE
    assert f"{link.context.span_id:016x}" == INCOMING_SPAN
    # The client's trace context does not leak upstream: one traceparent, ours, no tracestate.
    traceparents = [v for pair in upstream for k, v in pair.items() if k == "traceparent"]
    assert len(traceparents) == 1
    assert traceparents[0].split("-")[1] == f"{trace_id:032x}"
    assert not [v for pair in upstream for k, v in pair.items() if k == "tracestate"]


async def test_trusted_proxy_traceparent_continues_the_trace(tmp_path: Path) -> None:
    incoming = f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"
    async with stack(tmp_path) as s:
        status, _ = await s.call(
            "/echo",
            headers=[("traceparent", incoming), ("x-forwarded-for", "203.0.113.7")],
            peer=TRUSTED_PROXY,
        )
        assert status == 200
        spans = s.spans()
        (traceparent,) = s.upstream_traceparents()[0]

    (server,) = by_kind(spans, SpanKind.SERVER)
    (client,) = by_kind(spans, SpanKind.CLIENT)
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == INCOMING_SPAN
    assert f"{ids(server)[0]:032x}" == INCOMING_TRACE
    assert not server.links
    assert dict(server.attributes or {})["client.address"] == "203.0.113.7"
    assert traceparent == traceparent_of(client)
    assert traceparent.startswith(f"00-{INCOMING_TRACE}-")


async def test_trust_incoming_honours_any_client(tmp_path: Path) -> None:
    incoming = f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"
    async with stack(tmp_path, tracing=", trust_incoming: true") as s:
        await s.call("/echo", headers=[("traceparent", incoming)])
        (server,) = by_kind(s.spans(), SpanKind.SERVER)
    assert f"{ids(server)[0]:032x}" == INCOMING_TRACE


async def test_a_denied_request_still_ends_its_server_span(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        status, _ = await s.call("/owned", query="alice")
        assert status == 401
        spans = s.spans()
        assert s.upstream_headers() == []

    (server,) = by_kind(spans, SpanKind.SERVER)
    attributes = dict(server.attributes or {})
    assert attributes["http.response.status_code"] == 401
    assert str(attributes["bastion.error_reason"]).startswith("auth")
    assert "bastion.principal" not in attributes
    assert server.status.status_code == StatusCode.UNSET  # a 4xx is the client's, not ours
    assert not by_kind(spans, SpanKind.CLIENT)
    (auth,) = by_kind(spans, SpanKind.INTERNAL)
    assert auth.name == "policy authentication request"
    assert dict(auth.attributes or {})["bastion.outcome"] == "deny"


async def test_an_unreachable_upstream_marks_the_spans_as_errors(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        status, _ = await s.call("/dead")
        assert status == 502
        spans = s.spans()

    (server,) = by_kind(spans, SpanKind.SERVER)
    (client,) = by_kind(spans, SpanKind.CLIENT)
    assert server.status.status_code == StatusCode.ERROR
    assert dict(server.attributes or {})["bastion.error_reason"] == "upstream.connect_failed"
    assert client.status.status_code == StatusCode.ERROR
    assert dict(client.attributes or {})["error.type"] == "upstream.connect_failed"


async def test_an_unknown_path_is_named_by_method_only(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        status, _ = await s.call("/users/12345/secret-report")
        assert status == 404
        (server,) = s.spans()
    assert server.name == "GET"  # never the raw path: no ids in span names
    assert "http.route" not in dict(server.attributes or {})
    assert dict(server.attributes or {})["http.response.status_code"] == 404


async def test_sampling_zero_records_nothing_but_still_propagates(tmp_path: Path) -> None:
    async with stack(tmp_path, tracing=", sample_ratio: 0") as s:
        status, _ = await s.call("/echo")
        assert status == 200
        assert s.spans() == []
        (traceparent,) = s.upstream_traceparents()[0]
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00"
    assert not int(flags, 16) & 1  # not sampled
    assert int(trace_id, 16) != 0
    assert int(span_id, 16) != 0


def test_gateway_without_tracing_never_imports_opentelemetry(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from aiohttp import web
        from bastion.config import load_config
        from bastion.gateway.app import Gateway
        from bastion.gateway.runtime import build_runtime
        from tests.support.upstream import make_app

        async def main():
            runner = web.AppRunner(make_app(__import__("pathlib").Path({str(tmp_path)!r}) / "log"))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            path = __import__("pathlib").Path({str(tmp_path)!r}) / "gateway.yaml"
            path.write_text(
                "version: 1\\nmode: development\\naudit: {{sink: none}}\\n"
                f"upstreams: {{{{echo: {{{{url: 'http://127.0.0.1:{{port}}'}}}}}}}}\\n"
                "apis: [{{name: echo, upstream: echo, routes: "
                "[{{path: /echo, methods: [GET], public: true}}]}}]\\n"
            )
            runtime = build_runtime(load_config(path))
            assert runtime.tracing is None
            gateway = Gateway(runtime)
            await gateway.startup()
            sent = []
            async def receive():
                return {{"type": "http.request", "body": b"", "more_body": False}}
            async def send(message):
                sent.append(message)
            scope = {{"type": "http", "method": "GET", "path": "/echo", "raw_path": b"/echo",
                     "query_string": b"", "headers": [(b"traceparent",
                     b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
                     "client": ("127.0.0.1", 1), "scheme": "http"}}
            await gateway(scope, receive, send)
            await gateway.shutdown(grace=1)
            await runner.cleanup()
            assert sent[0]["status"] == 200, sent
            loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "google")))
            print(loaded)

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    # With tracing off, a client's traceparent passes like any end-to-end header.
    record = json.loads((tmp_path / "log").read_text().splitlines()[0])
    assert ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"] in [
        [k.lower(), v] for k, v in record["headers"]
    ]


# -- configuration ----------------------------------------------------------------------


BASE = """version: 1
mode: production
listen: {tls: {cert: c.pem, key: k.pem}}
upstreams: {echo: {url: "http://127.0.0.1:9000", timeout: {connect: 1, read: 1, total: 1}}}
apis: [{name: echo, upstream: echo, routes: [{path: /e, methods: [GET], public: true}]}]
"""


def findings(tmp: Path, tracing: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp / "bastion.yaml"
    path.write_text(BASE + tracing)
    return [str(f) for f in lint(load_config(path, environ=environ or {}))]


def test_plain_http_collector_off_loopback_is_a_warning(tmp_path: Path) -> None:
    remote = findings(tmp_path, "tracing:\n  endpoint: http://collector.example:4318/v1/traces\n")
    assert [f for f in remote if "tracing-plain-http" in f] == [
        f"{tmp_path / 'bastion.yaml'}:7: tracing.endpoint: warning: tracing-plain-http: spans "
        "(paths, principals, decisions) go to the collector over plain HTTP on a non-loopback "
        "host; use https://"
    ]
    for endpoint in ("http://127.0.0.1:4318/v1/traces", "https://collector.example/v1/traces"):
        local = findings(tmp_path, f"tracing: {{endpoint: '{endpoint}'}}\n")
        assert not [f for f in local if "tracing" in f]


def test_an_inline_collector_credential_is_refused_in_production(tmp_path: Path) -> None:
    inline = findings(
        tmp_path,
        "tracing:\n  endpoint: https://c.example/v1/traces\n"
        "  headers: {authorization: 'Bearer 0123456789abcdef0123456789abcdef'}\n",
    )
    assert any("tracing.headers.authorization" in f and "error: inline-secret" in f for f in inline)
    from_env = findings(
        tmp_path,
        "tracing:\n  endpoint: https://c.example/v1/traces\n"
        "  headers: {authorization: '${COLLECTOR_AUTH}'}\n",
        environ={"COLLECTOR_AUTH": "Bearer 0123456789abcdef0123456789abcdef"},
    )
    assert not [f for f in from_env if "tracing" in f]


@pytest.mark.parametrize(
    ("tracing", "key", "message"),
    [
        ("{endpoint: 'http://c:4318/v1/traces', sample_ratio: 2}", "tracing.sample_ratio", "1"),
        ("{endpoint: 'udp://c:4318'}", "tracing.endpoint", "http://"),
        ("{sample_ratio: 0.5}", "tracing.endpoint", "required key is missing"),
        ("{endpoint: 'http://c:4318/v1/traces', sampler: always}", "tracing.sampler", "unknown"),
        ("{endpoint: 'http://c/v1/traces', headers: {'bad name': x}}", "tracing.headers", "header"),
    ],
)
def test_tracing_config_errors_name_file_line_and_key(
    tmp_path: Path, tracing: str, key: str, message: str
) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(BASE + f"tracing: {tracing}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert f"{path}:6: {key}:" in text
    assert message in text
