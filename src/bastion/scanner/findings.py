"""What a scan produces: findings with evidence, plus the catalogue of checks.

A :class:`Finding` is immutable and already redacted: evidence is captured through a
:class:`~bastion.scanner.redact.Redactor` when the finding is made, so no report writer can
leak a credential by accident.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["CHECKS", "CheckInfo", "Confidence", "Evidence", "Finding", "Severity"]


class Severity(enum.IntEnum):
    """Ordered severities; ``--fail-on`` compares with ``>=``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}") from None


class Confidence(enum.IntEnum):
    LOW = 0
    MEDIUM = 1
    HIGH = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class CheckInfo:
    """One check: its id (also the SARIF rule id), OWASP 2023 category and default CWE."""

    id: str
    owasp: str
    title: str
    cwe: int
    help: str


CHECKS: dict[str, CheckInfo] = {
    c.id: c
    for c in (
        CheckInfo(
            "API1",
            "API1:2023",
            "Broken Object Level Authorization",
            639,
            "Check the caller's right to each object on every read, update and delete.",
        ),
        CheckInfo(
            "API2",
            "API2:2023",
            "Broken Authentication",
            287,
            "Require and fully verify credentials: pinned algorithms, signatures, expiry.",
        ),
        CheckInfo(
            "API3",
            "API3:2023",
            "Broken Object Property Level Authorization",
            213,
            "Return only declared fields; ignore or reject read-only fields in writes.",
        ),
        CheckInfo(
            "API4",
            "API4:2023",
            "Unrestricted Resource Consumption",
            770,
            "Rate-limit sensitive operations and enforce size and range limits.",
        ),
        CheckInfo(
            "API5",
            "API5:2023",
            "Broken Function Level Authorization",
            285,
            "Deny privileged functions to callers without the role, for every method.",
        ),
        CheckInfo(
            "API7",
            "API7:2023",
            "Server Side Request Forgery",
            918,
            "Fetch only allow-listed destinations; never loopback or private addresses.",
        ),
        CheckInfo(
            "API8",
            "API8:2023",
            "Security Misconfiguration",
            16,
            "Send security headers, restrict CORS, hide internals, disable TRACE, use TLS.",
        ),
        CheckInfo(
            "API9",
            "API9:2023",
            "Improper Inventory Management",
            1059,
            "Retire old versions, remove debug endpoints, keep the spec and the API in step.",
        ),
        CheckInfo(
            "INJ",
            "API8:2023",
            "Injection",
            74,
            "Never build SQL, NoSQL queries or shell commands from request data.",
        ),
    )
}


@dataclass(frozen=True)
class Evidence:
    """One redacted request/response pair."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str | None
    status: int | None
    response_headers: dict[str, str]
    response_body: str | None
    elapsed_ms: float
    identity: str | None
    curl: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": self.request_headers,
                "body": self.request_body,
                "identity": self.identity,
            },
            "response": {
                "status": self.status,
                "headers": self.response_headers,
                "body": self.response_body,
                "elapsed_ms": round(self.elapsed_ms, 1),
            },
            "curl": self.curl,
        }


@dataclass(frozen=True)
class Finding:
    check: str
    rule: str
    title: str
    severity: Severity
    confidence: Confidence
    description: str
    operation: str | None = None
    identities: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    cwe: int | None = None
    spec_pointer: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    original_severity: Severity | None = None
    rule_reason: str | None = None

    @property
    def owasp(self) -> str:
        return CHECKS[self.check].owasp

    @property
    def cwe_id(self) -> int:
        return self.cwe if self.cwe is not None else CHECKS[self.check].cwe

    @property
    def curl(self) -> str | None:
        return self.evidence[0].curl if self.evidence else None

    @property
    def id(self) -> str:
        """Stable across runs: what was found where, not when or with which data."""
        key = "|".join(
            (
                self.rule,
                self.operation or "",
                ",".join(self.identities),
                str(self.details.get("key", "")),
            )
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def with_severity(self, severity: Severity, reason: str) -> Finding:
        return replace(self, severity=severity, original_severity=self.severity, rule_reason=reason)
