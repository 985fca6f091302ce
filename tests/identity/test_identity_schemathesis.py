"""Schemathesis against every endpoint of the token service: no input yields a 5xx."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import bastion.identity
from tests.identity.harness import Live, basic, seed

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SPEC = Path(bastion.identity.__file__).parent / "openapi.yaml"


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error(live_sqlite: Live, tmp_path: Path) -> None:
    await seed(live_sqlite)
    entry, secret = live_sqlite.clients["web"]
    auth = basic(entry.client_id, secret or "")["Authorization"]
    command = [
        str(SCHEMATHESIS), "run", str(SPEC), "--url", live_sqlite.base,
        "--checks", "not_a_server_error", "--max-examples", "5", "--seed", "20261128",
        "--phases", "coverage,fuzzing", "--generation-database", "none",
        "--header", f"Authorization: {auth}",
        "--workers", "1", "--no-color", "--request-timeout", "10",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=110)
    output = out.decode(errors="replace")
    assert proc.returncode == 0, output[-6000:]
    assert "passed" in output.lower()
    # afterwards the service still works
    status, body = await live_sqlite.token("svc", grant_type="client_credentials")
    assert status == 200, body
