"""`bastion scan` against the demo shop, directly and through the gateway (real sockets).

One `bastion demo` process; the naive shop is scanned first (identities that play the
gateway's trusted headers, as the shop has no authentication of its own), then the same
shop through the gateway (JWTs from the demo, via ``examples/demo-identities.yaml``). The
difference between the two reports is what the gateway stops.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from bastion.scanner.cli import EXIT_FINDINGS, EXIT_OK, scan
from tests.support.procs import run_demo

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


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("scan-demo-state")
    with run_demo(state, "--no-traffic") as info:
        yield info


def _scan(
    target: str, identities: Path, out: Path, env: dict[str, str], exit_code: int
) -> dict[str, Any]:
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
    assert result.exit_code == exit_code, result.output
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
    return _scan(demo["upstream_url"], identities, out, {}, EXIT_FINDINGS)


@pytest.fixture(scope="module")
def gateway(
    demo: dict[str, Any], direct: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    # after the direct scan, as a user would run them (the shop keeps what it created)
    out = tmp_path_factory.mktemp("scan-demo-gateway")
    env = {f"{name.upper()}_TOKEN": token for name, token in demo["tokens"].items()}
    return _scan(demo["gateway_url"], GATEWAY_IDENTITIES, out, env, EXIT_OK)


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


def test_direct_scan_finds_role_mass_assignment(direct: dict[str, Any]) -> None:
    # the crawl now sends valid bodies (nested $refs resolved), creates its own user and
    # order, and PATCHes them: the shop stores `role: admin` from a customer
    mass = [f for f in direct["findings"] if f["rule"] == "API3.mass-assignment"]
    assert {f["operation"] for f in mass} >= {"POST /v2/users", "PATCH /v2/users/{user_id}"}
    for finding in mass:
        if finding["operation"] in {"POST /v2/users", "PATCH /v2/users/{user_id}"}:
            assert "role" in finding["details"]["fields"]
            assert finding["confidence"] == "high"  # read back, not only echoed
    assert {"POST /v2/users", "PATCH /v2/users/{user_id}", "PATCH /v2/orders/{order_id}"} <= set(
        direct["operations_exercised"]
    )


def test_direct_scan_reports_the_listing_leak(direct: dict[str, Any]) -> None:
    # GET /v2/orders answers alice with bob's and admin's orders: a list-level finding...
    listing = [f for f in direct["findings"] if f["rule"] == "API1.bola-list"]
    callers = {f["identities"][0]: f for f in listing if f["operation"] == "GET /v2/orders"}
    assert set(callers) == {"alice", "bob"}
    alice = callers["alice"]
    owners = {o["owner"] for o in alice["details"]["objects"]}
    assert owners == {"bob", "admin"}
    assert "o-2001" in {o["id"] for o in alice["details"]["objects"]}
    assert alice["evidence"][0]["request"]["identity"] == "alice"
    assert '"customer_id":"u-bob"' in alice["evidence"][0]["response"]["body"]
    # ...and bob's orders, although alice's listing showed them, replayed as alice
    replayed = [
        f
        for f in direct["findings"]
        if f["rule"] == "API1.bola-read"
        and f["operation"] == "GET /v2/orders/{order_id}"
        and f["identities"][1] in {"alice", "bob"}
    ]
    assert replayed, [f["description"] for f in direct["findings"] if f["check"] == "API1"]


def test_direct_scan_finds_only_the_real_bfla(direct: dict[str, Any]) -> None:
    # [customer, admin] operations are not admin-only: alice reading her own order is fine
    assert {op for _, op in _rules(direct, "API5")} == {"GET /v2/admin/reports"}


def test_direct_evidence_keeps_paths_and_trusted_headers_readable(
    direct: dict[str, Any],
) -> None:
    # X-Bastion-Subject / X-Bastion-Roles are not credentials: no ${BASTION_...} in their
    # place, and never inside a URL (u-alice and admin are path segments too)
    urls = [e["request"]["url"] for f in direct["findings"] for e in f["evidence"]]
    assert any(u.endswith("/v2/admin/reports") for u in urls)
    assert any("/v2/orders/o-" in u for u in urls)
    assert not [u for u in urls if "${" in u]
    subjects = {
        value
        for f in direct["findings"]
        for e in f["evidence"]
        for name, value in e["request"]["headers"].items()
        if name.lower() == "x-bastion-subject"
    }
    assert subjects
    assert subjects <= {"u-alice", "u-bob", "u-admin"}
    assert not any("${" in f["curl"] for f in direct["findings"] if f.get("curl"))


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


def test_gateway_scan_finds_no_bfla_or_injection(gateway: dict[str, Any]) -> None:
    for check in ("API5", "INJ"):
        assert _rules(gateway, check) == set(), check
