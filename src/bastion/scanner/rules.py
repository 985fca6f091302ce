"""The rules file: ignore or downgrade a check on an operation, always with a reason.

```yaml
version: 1
rules:
  - check: API8                 # a check id, or a rule id such as API8.cors-reflected-origin
    operation: "GET /api/v2/*"  # optional glob over "METHOD /path"; omitted = everywhere
    action: downgrade           # ignore | downgrade
    severity: low               # required for downgrade
    reason: "CORS is terminated at the CDN, which allows only our origins"
```
Ignored findings are kept in the JSON report under ``suppressed`` with the reason.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bastion.errors import ConfigError
from bastion.scanner.findings import Finding, Severity

__all__ = ["Rule", "apply_rules", "load_rules"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str = Field(min_length=2)
    operation: str | None = None
    action: Literal["ignore", "downgrade"]
    severity: Literal["info", "low", "medium", "high", "critical"] | None = None
    reason: str = Field(min_length=3)

    @model_validator(mode="after")
    def _severity_for_downgrade(self) -> Rule:
        if self.action == "downgrade" and self.severity is None:
            raise ValueError("a downgrade needs a severity")
        return self

    def matches(self, finding: Finding) -> bool:
        if self.check not in {finding.check, finding.rule}:
            return False
        if self.operation is None:
            return True
        return finding.operation is not None and fnmatch.fnmatchcase(
            finding.operation, self.operation
        )


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    rules: list[Rule]


def load_rules(path: str | Path) -> list[Rule]:
    location = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return _RulesFile.model_validate(data).rules
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", location=location) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", location=location) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{loc}: {first['msg']}", location=location) from None


def apply_rules(findings: list[Finding], rules: list[Rule]) -> tuple[list[Finding], list[Finding]]:
    """Return (kept, suppressed); downgraded findings stay in ``kept`` with the reason."""
    kept: list[Finding] = []
    suppressed: list[Finding] = []
    for finding in findings:
        rule = next((r for r in rules if r.matches(finding)), None)
        if rule is None:
            kept.append(finding)
        elif rule.action == "ignore":
            suppressed.append(finding.with_severity(finding.severity, rule.reason))
        else:
            assert rule.severity is not None
            kept.append(finding.with_severity(Severity.parse(rule.severity), rule.reason))
    return kept, suppressed
