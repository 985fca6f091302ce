"""Turning per-round measurements into one row per target: medians, ratios, the table.

Each measurement of a row is compared with its reference measured closest in time: the
mean of the reference's last measurement before and first after it (``seq`` orders all
measurements of a run; ``run.py --bracket``, the default, puts the reference right on both
sides). The median of those ratios is reported; a row's own ratio counts only the
measurements made for it, not those made as another row's bracket.
"""

from __future__ import annotations

import statistics
from typing import Any

from targets import Row

__all__ = ["aggregate", "markdown_table", "print_table"]

_NUMBERS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _beside(measured: list[dict[str, Any]], seq: int, key: str) -> float | None:
    """The mean of ``key`` in the last good measurement before ``seq`` and the first after."""
    good = [m for m in measured if m["status"] == "ok" and m.get(key)]
    before = [m[key] for m in good if m["seq"] < seq][-1:]
    after = [m[key] for m in good if m["seq"] > seq][:1]
    near = before + after
    return sum(near) / len(near) if near else None


def _ratio(
    rounds: dict[str, list[dict[str, Any]]], name: str, reference: str | None, key: str
) -> float | None:
    """Median of this row's ``key`` against the reference's measured beside it in time."""
    if reference not in rounds:
        return None
    ratios = []
    for mine in rounds[name]:
        a = mine.get(key)
        if mine["status"] != "ok" or not a or mine.get("bracket"):
            continue
        b = _beside(rounds[reference], mine["seq"], key)
        if b:
            # req/s: more is better (mine / reference); CPU per request: less is better.
            ratios.append(a / b if key == "rps" else b / a)
    return statistics.median(ratios) if ratios else None


def aggregate(rows: list[Row], rounds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One result per row: medians of its successful rounds, ratios, goal verdicts."""
    results = []
    for row in rows:
        measured = rounds[row.name]
        ok = [m for m in measured if m["status"] == "ok"]
        result: dict[str, Any] = {
            "target": row.name,
            "reference": row.reference,
            "goal": row.goal,
            "rounds": measured,
        }
        if not ok:
            result.update(status="n/a", reason=measured[0].get("reason", "not measured"))
            results.append(result)
            continue
        result["status"] = "ok"
        result["rounds_ok"] = len(ok)
        for key in _NUMBERS:
            result[key] = _median([m.get(key) for m in ok])
        for key in ("non2xx", "errors", "requests"):
            result[key] = sum(m[key] for m in ok)
        result["generator"] = ok[0]["generator"]
        result["ratio"] = _ratio(rounds, row.name, row.reference, "rps")
        result["cpu_ratio"] = _ratio(rounds, row.name, row.reference, "cpu_us_per_request")
        if row.goal is not None and result["ratio"] is not None:
            result["goal_met"] = result["ratio"] >= row.goal
        if row.also is not None:
            result["also"] = {
                "target": row.also,
                "ratio": _ratio(rounds, row.name, row.also, "rps"),
                "cpu_ratio": _ratio(rounds, row.name, row.also, "cpu_us_per_request"),
            }
        results.append(result)
    return results


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def print_table(results: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = ("target", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "ratio", "CPU ratio")
    for column in (*columns, "vs", "goal", "notes"):
        table.add_column(column, justify="left" if column in ("target", "vs", "notes") else "right")
    for r in results:
        if r["status"] != "ok":
            table.add_row(r["target"], "n/a", *[""] * 7, f"({r['reason']})")
            continue
        notes = []
        if r["non2xx"] or r["errors"]:
            notes.append(f"{r['non2xx']} non-2xx, {r['errors']} errors")
        if "also" in r and r["also"]["ratio"] is not None:
            also = r["also"]
            notes.append(
                f"{also['ratio']:.2f} (CPU {_fmt(also['cpu_ratio'], '.2f')}) vs {also['target']}"
            )
        if r["rounds_ok"] != len(r["rounds"]):
            notes.append(f"{len(r['rounds']) - r['rounds_ok']} round(s) n/a")
        goal = ""
        if "goal_met" in r:
            goal = f">= {r['goal']:.2f} " + ("met" if r["goal_met"] else "MISSED")
        table.add_row(
            r["target"],
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            _fmt(r["cpu_us_per_request"], ",.0f"),
            _fmt(r["ratio"], ".2f"),
            _fmt(r["cpu_ratio"], ".2f"),
            r["reference"] or "",
            goal,
            "; ".join(notes),
        )
    Console(width=220).print(table)


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The same table as GitHub markdown (for bench/README.md)."""
    lines = [
        "| target | req/s | p50 ms | p99 ms | CPU µs/req | ratio | CPU ratio | vs | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"| {r['target']} | n/a ({r['reason']}) | | | | | | | |")
            continue
        goal = ""
        if "goal_met" in r:
            goal = f"≥ {r['goal']:.2f} " + ("met" if r["goal_met"] else "**missed**")
        cells = [
            r["target"],
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            _fmt(r["cpu_us_per_request"], ",.0f"),
            _fmt(r["ratio"], ".2f"),
            _fmt(r["cpu_ratio"], ".2f"),
            r["reference"] or "",
            goal,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
