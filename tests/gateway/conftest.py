from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import GatewayProc, Upstream, dev_config, run_gateway, run_upstream


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with run_upstream(tmp_path_factory.mktemp("upstream")) as up:
        yield up


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def gateway(
    request: pytest.FixtureRequest, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    config = dev_config(
        upstream.url,
        extra="limits: {max_body_bytes: 2048, max_header_bytes: 4096}",
        api_extra="    cors: {allow_origins: ['https://app.example.com']}",
    )
    with run_gateway(config, tmp, server=request.param) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _clear_upstream_log(request: pytest.FixtureRequest) -> None:
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").clear()
