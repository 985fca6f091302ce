"""JUnit XML: one test suite per check, one failing test case per finding.

A check that found nothing contributes one passing case; a check skipped (not selected, or
out of budget) one skipped case, so CI dashboards show coverage, not only failures.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from bastion.scanner.engine import ScanResult
from bastion.scanner.findings import CHECKS

__all__ = ["render_junit"]

# What XML 1.0 cannot hold at all, not even as a character reference (§2.2): control
# characters other than tab, line feed and carriage return, lone surrogates, U+FFFE/FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def render_junit(result: ScanResult) -> str:
    root = ET.Element("testsuites", name="bastion-scan", time=f"{result.duration:.3f}")
    total = failures = skipped_total = 0
    for check_id, info in CHECKS.items():
        findings = [f for f in result.findings if f.check == check_id]
        suite = ET.SubElement(root, "testsuite", name=f"{check_id} {info.title}", time="0")
        cases = len(findings)
        for finding in findings:
            name = f"{finding.rule} {finding.operation or '(API-wide)'}"
            if finding.identities:
                name += f" [{', '.join(finding.identities)}]"
            case = ET.SubElement(suite, "testcase", classname=f"bastion.scan.{check_id}", name=name)
            failure = ET.SubElement(
                case, "failure", message=finding.title, type=finding.severity.label
            )
            text = (
                f"{finding.description}\nseverity={finding.severity.label} "
                f"confidence={finding.confidence.label} cwe=CWE-{finding.cwe_id} id={finding.id}"
            )
            if finding.curl:
                text += f"\nreproduce: {finding.curl}"
            failure.text = text
        skipped = 0
        if not findings:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"bastion.scan.{check_id}",
                name=f"{check_id} no findings",
            )
            reason = result.checks_skipped.get(check_id)
            if reason is not None:
                ET.SubElement(case, "skipped", message=reason)
                skipped = 1
            cases = 1
        suite.set("tests", str(cases))
        suite.set("failures", str(len(findings)))
        suite.set("errors", "0")
        suite.set("skipped", str(skipped))
        total, failures, skipped_total = (
            total + cases,
            failures + len(findings),
            skipped_total + skipped,
        )
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("skipped", str(skipped_total))
    ET.indent(root)
    # Spec paths, titles and quoted answers come from outside: what XML cannot hold is
    # written as a visible escape, so that one odd byte does not make the whole report
    # unreadable to the CI that parses it.
    text = _NOT_XML.sub(_visible, ET.tostring(root, encoding="unicode"))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"
