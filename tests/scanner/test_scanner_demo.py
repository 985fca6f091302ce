"""`bastion scan` against the demo shop, directly and through the gateway (real sockets).

One `bastion demo` process; the naive shop is scanned first (identities that play the
gateway's trusted headers, as the shop has no authentication of its own), then the same
shop through the gateway (JWTs from the demo, via ``examples/demo-identities.yaml``). The
difference between the two reports is what the gateway stops.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from bastion.scanner.cli import EXIT_FINDINGS, scan

ROOT = Path(__file__).resolve().parents[2]
SHOP_SPEC = ROOT / "src" / "bastion" / "demo" / "shop_openapi.yaml"
GATEWAY_IDENTITIES = ROOT / "examples" / "demo-identities.yaml"
BASTION = str(Path(sys.executable).with_name("bastion"))

# The shop trusts X-Bastion-Subject / X-Bastion-Roles (set by the gateway after it checked
# a token), so a direct scan plays those headers.
DIRECT_IDENTITIES = """\
version: 1
identities:
  - name: alice
    roles: [customer]
    headers: {X-Bastion-Subject: u-alice, X-Bastion-Roles: customer}
    owner_values: [u-alice]
  - name: bob
    roles: [customer]
    headers: {X-Bastion-Subject: u-bob, X-Bastion-Roles: customer}
    owner_values: [u-bob]
  - name: admin
    roles: [admin]
    headers: {X-Bastion-Subject: u-admin, X-Bastion-Roles: admin}
    owner_values: [u-admin]
"""

SCANNER_ADMIN_LABEL_FP = (
    "scanner false positive: spec._is_admin labels every operation whose x-bastion-roles "
    "merely *includes* admin (here [customer, admin]) as admin-only, so API5.admin-function "
    "reports alice reading her own order o-1001 / profile u-alice through the gateway (HTTP "
    "200, allowed by the spec); the one admin-only operation, GET /v2/admin/reports, is "
    "refused with 403 and never reported"
)
SCANNER_BUNDLED_REF_FN = (
    "scanner false negative: schemathesis 4 hands request-body schemas with nested $refs "
    "over bundled ({$ref: '#/x-bundled/schemaN', x-bundled: {...}}); spec.load_spec resolves "
    "them against the document root, gets {}, and sample_body() returns the string "
    "'bastion', so the crawl creates no object, PATCH is never exercised and the naive "
    "shop's role mass assignment (POST /v2/users, PATCH /v2/users/{id}) goes unnoticed"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("scan-demo-state")
    proc = subprocess.Popen(
        [BASTION, "demo", "--json", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "bastion demo printed nothing"
        info: dict[str, Any] = json.loads(line)
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
            if proc.stdout:
                proc.stdout.close()


def _scan(target: str, identities: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    result = CliRunner().invoke(
        scan,
        [
            "--spec",
            str(SHOP_SPEC),
            "--target",
            target,
            "--identities",
            str(identities),
            "--json",
            str(out / "scan.json"),
            "--html",
            str(out / "scan.html"),
            "--budget",
            "25",
            "--rate",
            "200",
            "--quiet",
        ],
        env=env,
    )
    assert result.exit_code == EXIT_FINDINGS, result.output
    report: dict[str, Any] = orjson.loads((out / "scan.json").read_bytes())
    assert report["complete"], report["notes"]
    assert report["problems"] == []
    assert (out / "scan.html").stat().st_size > 0
    return report


@pytest.fixture(scope="module")
def direct(demo: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("scan-demo-direct")
    identities = out / "direct-identities.yaml"
    identities.write_text(DIRECT_IDENTITIES, encoding="utf-8")
    return _scan(demo["upstream_url"], identities, out, {})


@pytest.fixture(scope="module")
def gateway(
    demo: dict[str, Any], direct: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    # after the direct scan, as a user would run them (the shop keeps what it created)
    out = tmp_path_factory.mktemp("scan-demo-gateway")
    env = {f"{name.upper()}_TOKEN": token for name, token in demo["tokens"].items()}
    return _scan(demo["gateway_url"], GATEWAY_IDENTITIES, out, env)


def _rules(report: dict[str, Any], check: str | None = None) -> set[tuple[str, str]]:
    return {
        (f["rule"], f["operation"] or "")
        for f in report["findings"]
        if check is None or f["check"] == check
    }


def test_direct_scan_finds_what_the_naive_shop_gets_wrong(direct: dict[str, Any]) -> None:
    rules = _rules(direct)
    # API1: another customer's objects, read with no credentials at all
    assert ("API1.bola-read", "GET /v2/orders/{order_id}") in rules
    assert ("API1.bola-read", "GET /v2/users/{user_id}") in rules
    # API2: "secured" operations answer anonymous callers
    assert ("API2.no-authentication", "GET /v2/admin/reports") in rules
    # API3: password_hash leaves the shop; fraud_score / internal_notes are undeclared
    assert ("API3.sensitive-data", "GET /v2/users/{user_id}") in rules
    assert ("API3.sensitive-data", "GET /v1/users/{user_id}") in rules
    assert ("API3.undeclared-fields", "GET /v2/orders/{order_id}") in rules
    # API5: a customer gets the admin sales report
    bfla = [f for f in direct["findings"] if f["rule"] == "API5.admin-function"]
    assert {f["identities"][0] for f in bfla if f["operation"] == "GET /v2/admin/reports"} == {
        "alice",
        "bob",
    }
    # API8: no nosniff, no Cache-Control: no-store on authenticated answers
    assert {"API8.header-nosniff", "API8.header-cache-control"} <= {r for r, _ in rules}


@pytest.mark.xfail(strict=True, reason=SCANNER_BUNDLED_REF_FN)
def test_direct_scan_finds_mass_assignment(direct: dict[str, Any]) -> None:
    assert any(r == "API3.mass-assignment" for r, _ in _rules(direct))


def test_gateway_scan_is_authenticated_and_covers_the_same_operations(
    direct: dict[str, Any], gateway: dict[str, Any]
) -> None:
    # "no findings" only means something when the scanner really got in as each user
    assert set(gateway["operations_exercised"]) == set(direct["operations_exercised"])
    by_name = {i["name"]: i for i in gateway["identities"]}
    for name in ("alice", "bob", "admin"):
        assert by_name[name]["authenticated"]
        assert by_name[name]["status_counts"].get("200", 0) > 0, by_name[name]
    assert by_name["anonymous"]["status_counts"].get("401", 0) > 0


def test_gateway_scan_finds_no_bola_authentication_or_data_exposure(
    gateway: dict[str, Any],
) -> None:
    for check in ("API1", "API2", "API3"):
        assert _rules(gateway, check) == set(), check


def test_gateway_stops_the_real_bfla_and_sets_security_headers(
    direct: dict[str, Any], gateway: dict[str, Any]
) -> None:
    assert ("API5.admin-function", "GET /v2/admin/reports") in _rules(direct)
    assert ("API5.admin-function", "GET /v2/admin/reports") not in _rules(gateway)
    assert _rules(gateway, "API8") == set()


@pytest.mark.xfail(strict=True, reason=SCANNER_ADMIN_LABEL_FP)
def test_gateway_scan_finds_no_bfla(gateway: dict[str, Any]) -> None:
    assert _rules(gateway, "API5") == set()
