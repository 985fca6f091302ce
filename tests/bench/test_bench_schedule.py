"""The bench's order of measurements and how ratios pair them in time (no load is run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from harness import Row  # noqa: E402
from report import aggregate  # noqa: E402
from run import schedule  # noqa: E402


def _row(name: str, reference: str | None = None) -> Row:
    def never(env: Any) -> Any:
        raise AssertionError("not started in this test")

    return Row(name=name, load=never, start=never, reference=reference, goal=0.9)


ROWS = [
    _row("floor"),
    _row("routing", "floor"),
    _row("feature a", "routing"),
    _row("feature b", "routing"),
    _row("alone"),
]


def test_each_row_is_bracketed_by_its_reference_sharing_the_ones_between() -> None:
    order = [(row.name, own) for row, own in schedule(ROWS, bracket=True)]
    assert order == [
        ("floor", True),
        ("routing", True),
        ("floor", False),
        ("routing", False),
        ("feature a", True),
        ("routing", False),
        ("feature b", True),
        ("routing", False),
        ("alone", True),
    ]
    plain = schedule(ROWS, bracket=False)
    assert [(row.name, own) for row, own in plain] == [(row.name, True) for row in ROWS]


def _ok(seq: int, rps: float) -> dict[str, Any]:
    return {
        "status": "ok",
        "seq": seq,
        "rps": rps,
        "cpu_us_per_request": 1e6 / rps,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "non2xx": 0,
        "errors": 0,
        "requests": 10,
        "generator": "wrk",
    }


def test_ratios_use_the_reference_measured_on_both_sides() -> None:
    """The machine speeds up between two routing runs: the feature sits between them."""
    rounds = {
        "routing": [_ok(0, 1000.0), _ok(2, 2000.0)],
        "feature a": [_ok(1, 1425.0)],
    }
    rounds["routing"][1]["bracket"] = True
    rows = [_row("routing"), _row("feature a", "routing")]
    result = {r["target"]: r for r in aggregate(rows, rounds)}["feature a"]
    assert result["ratio"] == pytest.approx(0.95)  # 1425 / mean(1000, 2000)
    assert result["cpu_ratio"] == pytest.approx((1000 + 500) / 2 / (1e6 / 1425))
    assert result["goal_met"]


def test_a_row_measured_as_a_bracket_does_not_count_for_its_own_ratio() -> None:
    rounds = {
        "floor": [_ok(0, 1000.0)],
        "routing": [_ok(1, 1500.0), {**_ok(9, 9000.0), "bracket": True}],
    }
    rows = [_row("floor"), _row("routing", "floor")]
    result = {r["target"]: r for r in aggregate(rows, rounds)}["routing"]
    assert result["ratio"] == pytest.approx(1.5)
    assert result["rps"] == pytest.approx((1500 + 9000) / 2)  # medians use every measurement
