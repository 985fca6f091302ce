"""The single-file HTML report: inline CSS and an inline SVG severity chart, no scripts, no
external resources (a CSP meta tag forbids them). Everything is escaped by Jinja2."""

from __future__ import annotations

from importlib import resources

import jinja2

from bastion.scanner.engine import ScanResult
from bastion.scanner.findings import CHECKS, Severity
from bastion.scanner.reports.json_report import finding_dict

__all__ = ["render_html"]

COLORS = {
    "critical": "#7b1fa2",
    "high": "#c62828",
    "medium": "#ef6c00",
    "low": "#1565c0",
    "info": "#607d8b",
}


def _chart(result: ScanResult) -> list[dict[str, object]]:
    counts = [
        (s.label, sum(1 for f in result.findings if f.severity == s)) for s in reversed(Severity)
    ]
    top = max([c for _, c in counts] + [1])
    return [
        {
            "label": label,
            "count": count,
            "y": 10 + i * 34,
            "width": round(300 * count / top, 1),
            "color": COLORS[label],
        }
        for i, (label, count) in enumerate(counts)
    ]


def render_html(result: ScanResult) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template_text = (
        resources.files("bastion.scanner.reports").joinpath("report.html").read_text("utf-8")
    )
    template = env.from_string(template_text)
    return template.render(
        result=result,
        findings=[finding_dict(f) for f in result.findings],
        suppressed=[finding_dict(f) for f in result.suppressed],
        chart=_chart(result),
        colors=COLORS,
        checks=CHECKS,
    )
