"""Recall and false positives against the vulnapi twins (issue 7, "What it must show").

Against the vulnerable twin every row of examples/vulnapi/PLANTED.md must be found; against
the fixed twin, no API1, API3, API5 or injection finding (and in fact none at all).
"""

from __future__ import annotations

import re

import pytest

from bastion.jsonutil import dumps
from bastion.scanner.engine import ScanResult
from bastion.scanner.findings import CHECKS
from bastion.scanner.reports import to_json
from tests.scanner.conftest import Served, scan
from tests.scanner.servers import VULNAPI

ROW = re.compile(r"^\| (P\d+) \| (.+?) \| .+? \| ([A-Z0-9]+\.[a-z0-9-]+) \| (.+?) \|$")


def planted() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in (VULNAPI / "PLANTED.md").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line.strip())
        if match:
            rows.append((match.group(1), match.group(2), match.group(3), match.group(4)))
    return rows


PLANTED = planted()


@pytest.fixture(scope="module")
def vulnerable_result(vulnerable_server: Served) -> ScanResult:
    return scan(vulnerable_server.url, unsafe=True, burst=True)


@pytest.fixture(scope="module")
def fixed_result(fixed_server: Served) -> ScanResult:
    return scan(fixed_server.url, fixed=True, unsafe=True, burst=True)


def test_planted_list_covers_every_check() -> None:
    assert len(PLANTED) >= 30
    checks = {rule.split(".")[0] for _, _, rule, _ in PLANTED}
    assert checks == set(CHECKS)


@pytest.mark.parametrize(("pid", "what", "rule", "operation"), PLANTED, ids=[p[0] for p in PLANTED])
def test_every_planted_vulnerability_is_found(
    vulnerable_result: ScanResult, pid: str, what: str, rule: str, operation: str
) -> None:
    found = [f for f in vulnerable_result.findings if f.rule == rule]
    if operation not in {"-", "*"}:
        found = [f for f in found if f.operation == operation]
    assert found, f"{pid} ({what}) not found by {rule} on {operation}"


def test_vulnerable_scan_is_complete(vulnerable_result: ScanResult) -> None:
    assert vulnerable_result.complete
    assert len(vulnerable_result.operations_exercised) == vulnerable_result.operations_total == 16
    assert vulnerable_result.problems == []


def test_fixed_twin_has_no_false_positives(fixed_result: ScanResult) -> None:
    assert fixed_result.complete
    assert len(fixed_result.operations_exercised) == 16
    for f in fixed_result.findings:
        assert f.check not in {"API1", "API3", "API5", "INJ"}, f
    assert [f.rule for f in fixed_result.findings] == []


def test_findings_carry_what_a_reviewer_needs(vulnerable_result: ScanResult) -> None:
    for f in vulnerable_result.findings:
        assert re.fullmatch(r"API\d:2023", f.owasp)
        assert f.cwe_id > 0
        assert f.description
        if f.evidence:
            assert f.curl is not None
            assert f.curl.startswith("curl ")
    bola = next(f for f in vulnerable_result.findings if f.rule == "API1.bola-read")
    assert len(bola.identities) == 2
    assert "owner" in bola.description


def test_bola_curl_line_reproduces_with_a_variable_not_a_token(
    vulnerable_result: ScanResult,
) -> None:
    bola = next(f for f in vulnerable_result.findings if f.rule == "API1.bola-read")
    attacker = bola.identities[1]
    assert bola.evidence[0].identity == attacker  # the curl line replays the attack
    assert bola.curl is not None
    assert "${BASTION_" + attacker.upper() + "_TOKEN}" in bola.curl


def test_reports_never_contain_credentials(
    vulnerable_server: Served, vulnerable_result: ScanResult
) -> None:
    text = dumps(to_json(vulnerable_result)).decode()
    for password in ("alice-password-1", "bob-password-2", "admin-password-3"):
        assert password not in text
    assert "AKIAIOSFODNN7ALICE01" not in text  # a secret the target leaked is redacted too
    tokens = re.findall(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", text)
    assert tokens == [], "a signed JWT appears in the report"
