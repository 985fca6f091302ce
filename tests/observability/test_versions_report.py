"""`bastion versions` on real audit logs: torn lines, time zones, bad --since."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bastion.versions_report import deprecated_usage, versions


def _event(time: str, caller: str = "u-1") -> dict[str, object]:
    return {
        "event": "request",
        "deprecated": True,
        "time": time,
        "api": "v1",
        "route": "/v1/items",
        "principal": caller,
    }


def test_a_torn_line_is_skipped_not_the_whole_report(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_bytes(
        json.dumps(_event("2026-11-28T20:38:00.000Z")).encode()
        + b'\n{"event": "request", "deprec\xff\xfe\n'
        + json.dumps(_event("2026-11-28T20:39:00.000Z")).encode()
        + b"\n"
    )
    result = CliRunner().invoke(versions, ["--audit", str(log), "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["calls"] == 2


def test_since_compares_instants_not_text() -> None:
    events = [_event("2026-11-28T20:38:00.000Z")]
    # 21:00 at +01:00 is 20:00Z: the 20:38Z call is after it
    assert [u.calls for u in deprecated_usage(events, "2026-11-28T21:00:00+01:00")] == [1]
    assert deprecated_usage(events, "2026-11-28T20:39:00Z") == []
    assert [u.calls for u in deprecated_usage(events, "2026-11-28")] == [1]  # midnight UTC


def test_a_since_that_is_not_a_date_is_an_error_not_an_empty_report(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text(json.dumps(_event("2026-11-28T20:38:00.000Z")) + "\n")
    result = CliRunner().invoke(versions, ["--audit", str(log), "--since", "next tuesday"])
    assert result.exit_code == 2
    assert "not a date: 'next tuesday'" in result.output
