"""The benchmark runs end to end: upstream, gateway and the Python load generator.

Only that rows come out with traffic; never how fast (no timing assertions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke_python_generator_measures_upstream_and_bastion(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--duration", "1",
            "--warmup", "0.5",
            "--connections", "8",
            "--threads", "1",
            "--generator", "python",
            "--only", "upstream direct", "bastion routing",
            "--json", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "upstream direct" in done.stdout
    assert "bastion routing" in done.stdout
    report = json.loads(out.read_text())
    rows = {row["target"]: row for row in report["rows"]}
    assert set(rows) == {"upstream direct", "bastion routing"}
    for name, row in rows.items():
        assert row["status"] == "ok", (name, row.get("reason"))
        assert row["generator"] == "python"
        assert row["rps"] > 0
        assert row["requests"] > 0
        assert row["non2xx"] == 0
    assert rows["bastion routing"]["reference"] == "minimal python proxy"
