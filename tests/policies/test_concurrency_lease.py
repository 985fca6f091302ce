"""A concurrency lease outlives its request.

Leases lapse after ``ttl`` so that a crashed gateway's slots free up; a ``ttl`` shorter
than a request let the slot free while the request still ran (``limit: 1, ttl: 1`` and an
upstream taking 3 s: three requests in flight at once). The lease now lasts at least as
long as a request can: the body's arrival, the whole upstream exchange and a margin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import load_config
from bastion.gateway.runtime import build_runtime
from bastion.policies.concurrency import ConcurrencyPolicy
from tests.support.procs import dev_config


@pytest.mark.parametrize(("ttl", "lease"), [(1, 10 + 3 + 5), (600, 600)])
def test_the_lease_covers_the_longest_request(tmp_path: Path, ttl: float, lease: float) -> None:
    routes = f"""
      - path: /slow
        methods: [GET]
        public: true
        concurrency: {{limit: 1, key: ip, ttl: {ttl}}}
"""
    config = tmp_path / "bastion.yaml"
    text = dev_config("http://127.0.0.1:9", routes=routes)  # upstream total: 3 s
    config.write_text(text.replace("{AUDIT}", str(tmp_path / "audit.log")))
    runtime = build_runtime(load_config(config))
    target = runtime.router.match("GET", "/slow").target
    [policy] = [p for p in target.request_policies if isinstance(p, ConcurrencyPolicy)]
    assert policy.ttl == lease  # limits.body_timeout (10 s) + total (3 s) + 5 s
