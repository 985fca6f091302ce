"""Fixtures for the scanner tests: vulnapi twins served by uvicorn on loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from bastion.scanner.context import ScanOptions
from bastion.scanner.engine import ScanResult, run_scan
from bastion.scanner.identities import load_identities
from bastion.scanner.spec import load_spec
from tests.scanner.servers import FIXED_SPEC, IDENTITIES, SPEC, serve, vulnapi


class Served:
    def __init__(self, app: Any, url: str) -> None:
        self.app, self.url = app, url

    @property
    def request_log(self) -> list[tuple[str, str]]:
        log: list[tuple[str, str]] = self.app.state.api.request_log
        return log


@pytest.fixture(scope="module")
def vulnerable_server() -> Iterator[Served]:
    app = vulnapi(True)
    with serve(app) as url:
        yield Served(app, url)


@pytest.fixture(scope="module")
def fixed_server() -> Iterator[Served]:
    app = vulnapi(False)
    with serve(app) as url:
        yield Served(app, url)


def scan(url: str, *, fixed: bool = False, **options: Any) -> ScanResult:
    """Scan a twin; the client-side rate limit is raised to keep the suite fast, unless given."""
    options.setdefault("rate", 400.0)
    spec = load_spec(FIXED_SPEC if fixed else SPEC)
    return asyncio.run(run_scan(spec, url, load_identities(IDENTITIES), ScanOptions(**options)))
