"""SARIF 2.1.0 (OASIS, errata 01): one rule per check, results located in the spec.

Each result points at the operation's line in the OpenAPI document (physical location) and
names the operation (logical location). ``partialFingerprints`` carry the finding's stable
id so code-scanning platforms track it across runs; ``security-severity`` follows GitHub's
convention (0.0-10.0).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bastion import __version__
from bastion.scanner.engine import ScanResult
from bastion.scanner.findings import CHECKS, Finding, Severity
from bastion.scanner.spec import ApiSpec

__all__ = ["SARIF_SCHEMA", "to_sarif"]

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SCORE = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _uri(source: str) -> str:
    if source.startswith(("http://", "https://")):
        return source
    path = Path(source)
    try:
        return Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def _rule(check_id: str) -> dict[str, Any]:
    info = CHECKS[check_id]
    return {
        "id": info.id,
        "name": "".join(w.capitalize() for w in info.title.split()),
        "shortDescription": {
            "text": f"{info.owasp} {info.title}" if check_id != "INJ" else info.title
        },
        "fullDescription": {"text": info.help},
        "help": {"text": info.help},
        "helpUri": "https://owasp.org/API-Security/editions/2023/en/0x11-t10/",
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "tags": [
                "security",
                "owasp-api-top10-2023",
                info.owasp,
                f"external/cwe/cwe-{info.cwe}",
            ],
            "precision": "high",
        },
    }


def _result(finding: Finding, rule_index: int, uri: str, spec: ApiSpec | None) -> dict[str, Any]:
    line = spec.line_of(finding.spec_pointer) if spec is not None else None
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri, "index": 0}}
    physical["region"] = {"startLine": line or 1}
    location: dict[str, Any] = {"physicalLocation": physical}
    if finding.operation:
        location["logicalLocations"] = [
            {"fullyQualifiedName": finding.operation, "kind": "function"}
        ]
    message = finding.description
    if finding.curl:
        message += f"\n\nReproduce: {finding.curl}"
    properties: dict[str, Any] = {
        "severity": finding.severity.label,
        "confidence": finding.confidence.label,
        "owasp": finding.owasp,
        "cwe": finding.cwe_id,
        "rule": finding.rule,
        "identities": list(finding.identities),
        "security-severity": _SCORE[finding.severity],
    }
    if finding.rule_reason:
        properties["ruleReason"] = finding.rule_reason
    return {
        "ruleId": finding.check,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": message},
        "locations": [location],
        "partialFingerprints": {"bastionFindingId/v1": finding.id},
        "properties": properties,
    }


def to_sarif(result: ScanResult, spec: ApiSpec | None = None) -> dict[str, Any]:
    ids = list(CHECKS)
    uri = _uri(result.spec)
    results = [_result(f, ids.index(f.check), uri, spec) for f in result.findings]
    suppressed = []
    for finding in result.suppressed:
        entry = _result(finding, ids.index(finding.check), uri, spec)
        entry["suppressions"] = [{"kind": "external", "justification": finding.rule_reason or ""}]
        suppressed.append(entry)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion-scan",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": "https://owasp.org/API-Security/",
                        "rules": [_rule(c) for c in ids],
                    }
                },
                "artifacts": [{"location": {"uri": uri}, "roles": ["analysisTarget"]}],
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "startTimeUtc": result.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "endTimeUtc": result.finished_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "toolExecutionNotifications": [
                            {"level": "warning", "message": {"text": p}} for p in result.problems
                        ],
                    }
                ],
                "results": results + suppressed,
                "properties": {"target": result.target, "complete": result.complete},
            }
        ],
    }
