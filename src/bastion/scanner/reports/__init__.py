"""Report writers: JSON (versioned schema), SARIF 2.1.0, JUnit XML, single-file HTML, terminal."""

from bastion.scanner.reports.html import render_html
from bastion.scanner.reports.json_report import REPORT_VERSION, finding_dict, to_json
from bastion.scanner.reports.junit import render_junit
from bastion.scanner.reports.sarif import to_sarif
from bastion.scanner.reports.terminal import print_summary

__all__ = [
    "REPORT_VERSION",
    "finding_dict",
    "print_summary",
    "render_html",
    "render_junit",
    "to_json",
    "to_sarif",
]
