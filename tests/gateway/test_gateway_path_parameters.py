"""A ';' parameter in a path segment must not hide another route's path.

Servlet containers (Tomcat, Jetty, Spring) drop each segment's ``;parameters`` before
routing: ``/orders/export;jsessionid=x`` is ``/orders/export`` to them. The gateway matched
it to ``/orders/{order_id}`` (one segment, ``export;jsessionid=x``), so a route open to
everyone let a request through to a path whose own route asks for more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import GatewayProc, Upstream, dev_config, run_gateway, run_upstream
from tests.support.rawhttp import get

ROUTES = """
      - {path: "/orders/{order_id}", methods: [GET], public: true}
      - {path: /orders/export, methods: [POST], public: true}
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProc, Upstream]]:
    tmp: Path = tmp_path_factory.mktemp("path-parameters")
    with (
        run_upstream(tmp) as upstream,
        run_gateway(dev_config(upstream.url, routes=ROUTES), tmp) as gw,
    ):
        yield gw, upstream


@pytest.mark.parametrize(
    "raw_path", ["/orders/export;jsessionid=x", "/orders/export;", "/orders/export;a=1;b=2"]
)
def test_parameters_that_hide_another_routes_path_are_refused_unforwarded(
    servers: tuple[GatewayProc, Upstream], raw_path: str
) -> None:
    gw, upstream = servers
    upstream.clear()
    response = get(gw.port, raw_path)
    assert response is not None
    assert response.status == 400
    assert b"path.parameter_route" in response.body or b"another route" in response.body
    assert upstream.received() == []


@pytest.mark.parametrize("raw_path", ["/orders/o-1;v=2", "/orders/;id=5", "/orders/a;b"])
def test_parameters_that_keep_the_route_pass(
    servers: tuple[GatewayProc, Upstream], raw_path: str
) -> None:
    gw, upstream = servers
    upstream.clear()
    response = get(gw.port, raw_path)
    assert response is not None
    assert response.status == 200
    assert [r["path"] for r in upstream.received()] == [raw_path]
