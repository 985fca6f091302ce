"""The Bastion scanner: audits any API for the OWASP API Security Top 10 (2023).

Library use (the CLI is :data:`bastion.scanner.cli.scan`)::

    spec = load_spec("openapi.yaml")
    config = load_identities_file("ids.yaml")
    spec.label_admin(config.admin_operations)    # the file's admin-only operations
    result = asyncio.run(run_scan(spec, "https://api.example.com",
                                  config.identities, ScanOptions(budget=120)))
    for finding in result.findings:
        print(finding.severity.label, finding.rule, finding.operation)
"""

from bastion.scanner.context import ScanOptions
from bastion.scanner.engine import ScanError, ScanResult, run_scan
from bastion.scanner.findings import CHECKS, Confidence, Evidence, Finding, Severity
from bastion.scanner.identities import (
    IdentitiesConfig,
    Identity,
    load_identities,
    load_identities_file,
)
from bastion.scanner.rules import Rule, apply_rules, load_rules
from bastion.scanner.spec import ApiSpec, load_spec

__all__ = [
    "CHECKS",
    "ApiSpec",
    "Confidence",
    "Evidence",
    "Finding",
    "IdentitiesConfig",
    "Identity",
    "Rule",
    "ScanError",
    "ScanOptions",
    "ScanResult",
    "Severity",
    "apply_rules",
    "load_identities",
    "load_identities_file",
    "load_rules",
    "load_spec",
    "run_scan",
]
