"""The JSON report. Its shape is ``scan-report.schema.json`` beside this file (JSON Schema
2020-12); ``report_version`` follows semver: additions bump the minor, changes the major."""

from __future__ import annotations

from typing import Any

from bastion import __version__
from bastion.scanner.engine import ScanResult
from bastion.scanner.findings import CHECKS, Finding, Severity

__all__ = ["REPORT_VERSION", "SCHEMA_ID", "finding_dict", "to_json"]

REPORT_VERSION = "1.0"
SCHEMA_ID = "https://bastion.dev/schemas/scan-report/1.0.json"


def finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "check": finding.check,
        "rule": finding.rule,
        "title": finding.title,
        "owasp": finding.owasp,
        "cwe": finding.cwe_id,
        "severity": finding.severity.label,
        "confidence": finding.confidence.label,
        "operation": finding.operation,
        "identities": list(finding.identities),
        "description": finding.description,
        "remediation": CHECKS[finding.check].help,
        "spec_pointer": finding.spec_pointer,
        "curl": finding.curl,
        "evidence": [e.as_dict() for e in finding.evidence],
        "details": finding.details,
        "original_severity": finding.original_severity.label if finding.original_severity else None,
        "rule_reason": finding.rule_reason,
    }


def to_json(result: ScanResult) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_ID,
        "report_version": REPORT_VERSION,
        "tool": {"name": "bastion-scan", "version": __version__},
        "target": result.target,
        "spec": result.spec,
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat(),
        "duration_seconds": round(result.duration, 3),
        "complete": result.complete,
        "budget_seconds": result.budget,
        "budget_exhausted": result.budget_exhausted,
        "unsafe": result.unsafe,
        "stats": {
            "requests": result.requests,
            "operations_total": result.operations_total,
            "operations_exercised": len(result.operations_exercised),
            "refused_by_safe_mode": result.refused_unsafe,
        },
        "operations_exercised": result.operations_exercised,
        "checks": {"run": result.checks_run, "skipped": result.checks_skipped},
        "identities": [
            {
                "name": i.name,
                "roles": list(i.roles),
                "authenticated": i.authenticated,
                "status_counts": i.status_counts,
                "problem": i.problem,
            }
            for i in result.identities
        ],
        "problems": result.problems,
        "notes": result.notes,
        "summary": {s.label: sum(1 for f in result.findings if f.severity == s) for s in Severity},
        "findings": [finding_dict(f) for f in result.findings],
        "suppressed": [finding_dict(f) for f in result.suppressed],
    }
