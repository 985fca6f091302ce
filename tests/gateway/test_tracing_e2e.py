"""Tracing through real processes: a gateway, the echo upstream and a local OTLP/HTTP receiver.

The receiver decodes what the gateway exports exactly as a collector would (protobuf
``ExportTraceServiceRequest`` on ``POST /v1/traces``); the upstream reports the headers it
received, so the test checks that both ends of the trace meet.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.procs import Upstream, dev_config, free_port, run_gateway

COLLECTOR_TOKEN = "Bearer collector-credential-4f1d9a7c2b"


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on a real socket, in its own thread and event loop."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, str], Span]] = []
        self.authorizations: list[str | None] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        ready = threading.Event()
        self.port = 0

        async def export(request: web.Request) -> web.Response:
            self.authorizations.append(request.headers.get("authorization"))
            message = ExportTraceServiceRequest()
            message.ParseFromString(await request.read())
            for resource_spans in message.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((resource, span) for span in scope_spans.spans)
            return web.Response(
                body=ExportTraceServiceResponse().SerializeToString(),
                content_type="application/x-protobuf",
            )

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/v1/traces", export)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.create_task(start())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "the OTLP receiver did not start"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def wait_for_trace(self, trace_id: str, kinds: int, timeout: float = 15.0) -> list[Span]:
        """The spans of ``trace_id`` once ``kinds`` distinct span kinds have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = [s for _, s in list(self.spans) if s.trace_id.hex() == trace_id]
            if len({s.kind for s in spans}) >= kinds:
                return spans
            time.sleep(0.05)
        raise AssertionError(f"trace {trace_id} was not exported; got {len(self.spans)} spans")

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def tracing_config(upstream: Upstream, endpoint: str) -> str:
    return dev_config(
        upstream.url,
        extra=f"""tracing:
  endpoint: {endpoint}
  service_name: edge-e2e
  timeout: 2
  headers: {{authorization: "${{COLLECTOR_TOKEN}}"}}
""",
    )


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_upstream_and_collector_see_the_same_trace(upstream: Upstream, tmp_path: Path) -> None:
    client_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with (
        otlp_receiver() as receiver,
        run_gateway(
            tracing_config(upstream, receiver.endpoint),
            tmp_path,
            env={"COLLECTOR_TOKEN": COLLECTOR_TOKEN, "OTEL_BSP_SCHEDULE_DELAY": "100"},
        ) as gateway,
    ):
        status, echoed = get(
            gateway.url + "/echo?card=4111111111111111",
            {"traceparent": f"00-{client_trace}-00f067aa0ba902b7-01"},
        )
        assert status == 200
        traceparents = [v for k, v in echoed["headers"] if k.lower() == "traceparent"]
        assert len(traceparents) == 1  # ours replaced the client's
        _, trace_id, parent_id, _ = traceparents[0].split("-")
        assert trace_id != client_trace  # an untrusted client does not pick the trace

        spans = receiver.wait_for_trace(trace_id, kinds=2)

    by_kind = {span.kind: span for span in spans}
    server = by_kind[Span.SpanKind.SPAN_KIND_SERVER]
    client = by_kind[Span.SpanKind.SPAN_KIND_CLIENT]
    assert server.name == "GET /echo"
    assert client.name == "upstream GET"
    assert client.span_id.hex() == parent_id  # the upstream's parent is the client span
    assert client.parent_span_id == server.span_id
    assert [link.trace_id.hex() for link in server.links] == [client_trace]
    attributes = {a.key: a.value for a in server.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["http.route"].string_value == "/echo"
    exported = repr([s for _, s in receiver.spans])
    assert "4111111111111111" not in exported  # query strings are never recorded
    resources = [resource for resource, span in receiver.spans if span.span_id == server.span_id]
    assert resources[0]["service.name"] == "edge-e2e"
    assert resources[0]["service.version"]
    assert set(receiver.authorizations) == {COLLECTOR_TOKEN}


def test_requests_succeed_while_the_collector_is_down(upstream: Upstream, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"
    with run_gateway(
        tracing_config(upstream, dead),
        tmp_path,
        server="uvicorn",
        env={"COLLECTOR_TOKEN": COLLECTOR_TOKEN, "OTEL_BSP_SCHEDULE_DELAY": "50"},
    ) as gateway:
        statuses = [get(f"{gateway.url}/echo?n={n}")[0] for n in range(40)]
        assert statuses == [200] * 40
        assert len(upstream.received()) == 40
    # The collector credential never reaches a log line, also when exports fail.
    assert "collector-credential" not in gateway.stderr_text()
