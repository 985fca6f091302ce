"""Safe by default, in scope, on budget; and what a broken setup looks like (real sockets)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from bastion.scanner.context import ScanOptions
from bastion.scanner.engine import ScanError, ScanResult, run_scan
from bastion.scanner.identities import load_identities
from bastion.scanner.probe import BudgetExhausted, OutOfScope, Probe, RateLimiter, UnsafeRequest
from bastion.scanner.spec import load_spec
from tests.conftest import free_port
from tests.scanner.conftest import Served, scan
from tests.scanner.servers import SPEC, serve, vulnapi

SEED_ORDERS = ("/api/v2/orders/100", "/api/v2/orders/101")  # exist before the scan


@pytest.fixture(scope="module")
def safe_result(vulnerable_server: Served) -> ScanResult:
    return scan(vulnerable_server.url, rate=ScanOptions().rate)  # every option at its default


def test_default_scan_of_a_15_operation_api_completes_within_the_default_budget(
    safe_result: ScanResult,
) -> None:
    assert safe_result.budget == 60.0
    assert safe_result.complete, safe_result.checks_skipped
    assert safe_result.operations_total >= 15
    assert len(safe_result.operations_exercised) == 15  # all but DELETE (safe mode)
    print(f"default scan: {safe_result.duration:.1f}s, {safe_result.requests} requests")


def test_safe_mode_sends_no_delete_and_no_write_to_foreign_objects(
    vulnerable_server: Served, safe_result: ScanResult
) -> None:
    log = vulnerable_server.request_log
    assert log, "the fixture saw no traffic"
    assert not [entry for entry in log if entry[0] == "DELETE"]
    writes = [(m, p) for m, p in log if m in {"POST", "PUT", "PATCH"}]
    for method, path in writes:
        assert not any(path == s or path.startswith(s + "/") for s in SEED_ORDERS), (method, path)
    assert safe_result.refused_unsafe > 0  # e.g. the DELETE method swap was refused
    rules = {f.rule for f in safe_result.findings}
    assert {"API1.bola-read", "API1.bola-write"} <= rules  # on objects the scanner created
    assert "API1.bola-delete" not in rules


def test_identity_with_bad_credentials_is_an_auth_setup_problem(
    vulnerable_server: Served, tmp_path: Path
) -> None:
    ids = tmp_path / "ids.yaml"
    ids.write_text(
        "version: 1\nidentities:\n"
        "  - name: mallory\n    roles: [user]\n    login:\n      path: /api/v2/login\n"
        "      json: {username: alice, password: wrong}\n"
        "      token: {json_pointer: /access_token}\n"
        "  - name: stale\n    roles: [user]\n"
        "    headers: {Authorization: Bearer not-a-valid-token}\n",
        encoding="utf-8",
    )
    result = asyncio.run(
        run_scan(
            load_spec(SPEC),
            vulnerable_server.url,
            load_identities(ids),
            ScanOptions(checks=("API8",), examples=0),
        )
    )
    problems = " | ".join(result.problems)
    assert "identity mallory: login failed with HTTP 401" in problems
    assert "identity stale: got HTTP 401 on" in problems
    assert "auth-setup problem" in problems


def test_zero_operations_exercised_is_an_error() -> None:
    port = free_port()
    with pytest.raises(ScanError, match="zero operations"):
        asyncio.run(
            run_scan(
                load_spec(SPEC),
                f"http://127.0.0.1:{port}",
                load_identities(SPEC.with_name("identities.yaml")),
                ScanOptions(examples=0),
            )
        )


def test_redirects_are_not_followed_out_of_scope() -> None:
    hits: list[str] = []

    async def elsewhere(request: Request) -> Response:
        hits.append(request.url.path)
        return PlainTextResponse("other host")

    with serve(Starlette(routes=[Route("/x", elsewhere)])) as other:

        async def bounce(request: Request) -> Response:
            return RedirectResponse(f"{other}/x", status_code=302)

        with serve(Starlette(routes=[Route("/go", bounce)])) as target:

            async def go() -> int | None:
                async with Probe(target) as probe:
                    with pytest.raises(OutOfScope):
                        await probe.send("GET", "/x", url=f"{other}/x")
                    return (await probe.send("GET", "/go")).status

            assert asyncio.run(go()) == 302
    assert hits == []


async def test_safe_mode_guard_and_budget_with_an_injected_clock() -> None:
    now = [100.0]
    async with Probe("http://127.0.0.1:9", budget=5, clock=lambda: now[0]) as probe:
        probe.mark_created("/orders/7")
        assert probe.write_allowed("POST", "/orders", "/orders")
        assert probe.write_allowed("PATCH", "/orders/7", "/orders/{id}")
        assert probe.write_allowed("POST", "/orders/7/approve", "/orders/{id}/approve")
        assert not probe.write_allowed("PATCH", "/orders/8", "/orders/{id}")
        assert not probe.write_allowed("DELETE", "/orders/7", "/orders/{id}")
        assert not probe.write_allowed("PUT", "/settings", "/settings")
        with pytest.raises(UnsafeRequest):
            await probe.send("DELETE", "/orders/7", template="/orders/{id}")
        now[0] += 6
        with pytest.raises(BudgetExhausted):
            await probe.send("GET", "/orders")


async def test_rate_limiter_spaces_requests_by_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, burst=1, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(5):
        await limiter.acquire()
    assert now[0] == pytest.approx(0.4)
    assert all(s == pytest.approx(0.1) for s in slept)


def test_target_path_is_the_base_of_every_spec_path() -> None:
    """Behind a prefix (as behind a gateway), --target carries the base path."""
    app = Starlette(routes=[Mount("/gw", app=vulnapi(True))])
    with serve(app) as url:
        result = scan(f"{url}/gw", checks=("API1", "API2"), examples=0)
    assert len(result.operations_exercised) == 15
    assert result.problems == []
    rules = {f.rule for f in result.findings}
    assert {"API1.bola-read", "API2.alg-none"} <= rules


def test_an_exhausted_budget_gives_an_incomplete_report_not_a_hang(
    vulnerable_server: Served,
) -> None:
    result = scan(vulnerable_server.url, budget=1, rate=20.0, examples=0)
    assert result.budget_exhausted
    assert not result.complete
    assert result.checks_skipped  # the checks that could not run are named
    assert result.operations_exercised  # what was done is still reported


def _without_security(tmp_path: Path, source: Path) -> Path:
    import yaml

    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    doc.pop("security", None)
    doc["components"].pop("securitySchemes", None)
    for item in doc["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_bola_is_found_even_when_the_spec_declares_no_security(
    tmp_path: Path, vulnerable_server: Served, fixed_server: Served
) -> None:
    options = ScanOptions(checks=("API1",), examples=0, rate=400)
    identities = load_identities(SPEC.with_name("identities.yaml"))
    spec = load_spec(_without_security(tmp_path, SPEC))
    assert not any(op.secured for op in spec.operations)
    found = asyncio.run(run_scan(spec, vulnerable_server.url, identities, options))
    assert "API1.bola-read" in {f.rule for f in found.findings}
    identities = load_identities(SPEC.with_name("identities.yaml"))
    clean = asyncio.run(run_scan(spec, fixed_server.url, identities, options))
    assert clean.findings == []
