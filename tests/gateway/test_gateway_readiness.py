"""The public readiness endpoint cannot be turned into a flood of upstream probes.

Anyone may ask ``/_bastion/health/ready`` on the public port, and every answer probed every
upstream: 30 asks were 30 probes of each. One answer now serves for a second, and asks that
arrive while a probe is under way share it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway.test_gateway_proxy import request
from tests.support.procs import dev_config, run_gateway, run_upstream


def test_asks_for_readiness_share_their_probes(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp: Path = tmp_path_factory.mktemp("readiness")
    with run_upstream(tmp) as upstream:
        config = dev_config(upstream.url, upstream_extra="    health_path: /echo")
        with run_gateway(config, tmp) as gw:
            upstream.clear()
            with ThreadPoolExecutor(max_workers=10) as pool:
                answers = list(
                    pool.map(lambda _: request(gw, "GET", "/_bastion/health/ready"), range(30))
                )
            assert {status for status, _, _ in answers} == {200}
            assert json.loads(answers[0][2])["checks"]["echo"] is True
            probes = [r for r in upstream.received() if r["path"] == "/echo"]
            assert 1 <= len(probes) <= 5  # one per second at most: not one per ask
