"""The `bastion scan` command end to end: reports, exit codes, rules file (real sockets)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from click.testing import CliRunner

from bastion.scanner.cli import EXIT_CONFIG, EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_ERROR, scan
from bastion.scanner.findings import CHECKS
from tests.conftest import free_port
from tests.scanner.conftest import Served
from tests.scanner.servers import IDENTITIES, SPEC

HERE = Path(__file__).parent
SARIF_SCHEMA = HERE / "data" / "sarif-schema-2.1.0.json"
REPORT_SCHEMA = (
    Path(__file__).resolve().parents[2] / "src/bastion/scanner/reports/scan-report.schema.json"
)


@pytest.fixture(scope="module")
def reports(vulnerable_server: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("reports")
    result = CliRunner().invoke(
        scan,
        [
            "--spec",
            str(SPEC),
            "--target",
            vulnerable_server.url,
            "--identities",
            str(IDENTITIES),
            "--json",
            str(out / "r.json"),
            "--sarif",
            str(out / "r.sarif"),
            "--junit",
            str(out / "r.xml"),
            "--html",
            str(out / "r.html"),
            "--rules",
            str(HERE / "rules-example.yaml"),
            "--fail-on",
            "critical",
            "--rate",
            "400",
        ],
    )
    return {
        "exit": result.exit_code,
        "output": result.output,
        "dir": out,
        "json": orjson.loads((out / "r.json").read_bytes()),
    }


def test_exit_code_follows_fail_on(reports: dict[str, Any]) -> None:
    assert reports["exit"] == EXIT_FINDINGS, reports["output"]
    assert "findings:" in reports["output"]


def test_json_report_validates_against_its_versioned_schema(reports: dict[str, Any]) -> None:
    schema = orjson.loads(REPORT_SCHEMA.read_bytes())
    jsonschema_rs.validator_for(schema, validate_formats=True).validate(reports["json"])
    assert reports["json"]["report_version"] == "1.0"
    # safe mode (no --unsafe): the one DELETE operation is never sent
    assert reports["json"]["stats"]["operations_exercised"] == 15
    assert "DELETE /api/v2/orders/{order_id}" not in reports["json"]["operations_exercised"]


def test_rules_file_ignores_and_downgrades_with_reasons(reports: dict[str, Any]) -> None:
    data = reports["json"]
    assert all(f["rule"] != "API8.trace-enabled" for f in data["findings"])
    ignored = [f for f in data["suppressed"] if f["rule"] == "API8.trace-enabled"]
    assert ignored
    assert ignored[0]["rule_reason"] == "TRACE is answered by the test fixture only"
    old = next(f for f in data["findings"] if f["rule"] == "API9.old-version")
    assert (old["severity"], old["original_severity"]) == ("low", "medium")
    assert old["rule_reason"] == "v1 is retired at the edge in production"


def test_sarif_validates_against_the_official_2_1_0_schema(reports: dict[str, Any]) -> None:
    sarif = orjson.loads((reports["dir"] / "r.sarif").read_bytes())
    schema = orjson.loads(SARIF_SCHEMA.read_bytes())
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    jsonschema_rs.validator_for(schema, validate_formats=True).validate(sarif)
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(CHECKS)
    results = [r for r in run["results"] if "suppressions" not in r]
    assert len(results) == len(reports["json"]["findings"])
    spec_lines = SPEC.read_text(encoding="utf-8").splitlines()
    bola = next(r for r in results if r["properties"]["rule"] == "API1.bola-read")
    location = bola["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"].endswith("openapi.yaml")
    line = location["physicalLocation"]["region"]["startLine"]
    assert spec_lines[line - 1].strip() == "get:"  # the operation's own line in the spec
    assert "/api/v2/orders/{order_id}:" in "\n".join(spec_lines[line - 4 : line])
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "GET /api/v2/orders/{order_id}"


def test_junit_has_a_failing_case_per_finding(reports: dict[str, Any]) -> None:
    root = ET.fromstring((reports["dir"] / "r.xml").read_text(encoding="utf-8"))  # noqa: S314
    assert root.tag == "testsuites"
    failures = root.findall(".//testcase/failure")
    assert len(failures) == len(reports["json"]["findings"]) == int(root.get("failures", "-1"))
    assert len(root.findall("testsuite")) == len(CHECKS)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in {"src", "href"} and value:
                self.urls.append(value)


def test_html_report_is_self_contained_and_lists_every_finding(reports: dict[str, Any]) -> None:
    html = (reports["dir"] / "r.html").read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(html)
    assert "script" not in parser.tags
    assert parser.urls == []  # no CDN, no external resource
    assert "severity-chart" in parser.ids
    assert "rect" in parser.tags
    for finding in reports["json"]["findings"]:
        assert f"finding-{finding['id']}" in parser.ids
    assert "<script>alert" not in html


def test_clean_target_exits_zero(fixed_server: Served) -> None:
    result = CliRunner().invoke(
        scan,
        [
            "--spec",
            str(SPEC.with_name("openapi-fixed.yaml")),
            "--target",
            fixed_server.url,
            "--identities",
            str(IDENTITIES),
            "--checks",
            "API1,API3,API5",
            "--quiet",
        ],
    )
    assert result.exit_code == EXIT_OK, result.output


def test_unreachable_target_is_a_scan_error_not_a_pass() -> None:
    result = CliRunner().invoke(
        scan,
        [
            "--spec",
            str(SPEC),
            "--target",
            f"http://127.0.0.1:{free_port()}",
            "--identities",
            str(IDENTITIES),
            "--fail-on",
            "none",
            "--quiet",
        ],
    )
    assert result.exit_code == EXIT_SCAN_ERROR
    assert "zero operations" in result.output


def test_bad_rules_file_is_a_config_error(tmp_path: Path, vulnerable_server: Served) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - check: API1\n    action: ignore\n", encoding="utf-8")
    result = CliRunner().invoke(
        scan,
        [
            "--spec",
            str(SPEC),
            "--target",
            vulnerable_server.url,
            "--rules",
            str(rules),
        ],
    )
    assert result.exit_code == EXIT_CONFIG
    assert "reason" in result.output
