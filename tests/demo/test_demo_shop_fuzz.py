"""Schemathesis against the demo shop directly: no input, however odd, yields a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bastion.demo import SHOP_OPENAPI_PATH
from tests.demo.conftest import ShopClient

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(shop: ShopClient, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS), "run", str(SHOP_OPENAPI_PATH), "--url", shop.base_url,
        "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "20261128",
        "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
        "--header", "Authorization: Bearer demo", "--header", "X-Bastion-Subject: u-alice",
        "--workers", "1", "--no-color", "--request-timeout", "10",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=110, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed" in output.lower()
    # Afterwards the shop still answers: fuzzing left no state that breaks it.
    for path in ("/health", "/v2/orders", "/v2/admin/reports"):
        assert shop.request("GET", path).status == 200
