"""``bastion check`` on configs about abuse protection, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BASTION = str(Path(sys.executable).with_name("bastion"))


def check(tmp: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp / "bastion.yaml"
    path.write_text(text)
    return subprocess.run(
        [BASTION, "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dev(state: str, workers: int) -> str:
    return f"""version: 1
mode: development
listen: {{workers: {workers}}}
state: {state}
audit: {{sink: stdout}}
upstreams:
  echo: {{url: "http://127.0.0.1:9000", timeout: {{connect: 1, read: 5, total: 10}}}}
apis:
  - name: echo
    upstream: echo
    rate_limit: [{{key: ip, limit: 100/minute}}]
    routes:
      - {{path: /echo, methods: [GET], public: true}}
"""


def test_memory_state_with_two_workers_is_flagged(tmp_path: Path) -> None:
    result = check(tmp_path, dev("{backend: memory}", 2))
    assert result.returncode == 0, result.stderr  # a warning, not an error
    line = next(li for li in result.stdout.splitlines() if "memory-state-per-process" in li)
    assert "warning" in line
    assert "2 workers" in line
    assert "backend: redis" in line  # says what to do


def test_shared_state_or_one_worker_is_not_flagged(tmp_path: Path) -> None:
    for state, workers in (("{backend: memory}", 1), ("{backend: redis, url: 'redis://x'}", 2)):
        result = check(tmp_path, dev(state, workers))
        assert result.returncode == 0, result.stderr
        assert "memory-state-per-process" not in result.stdout


def test_authenticated_route_in_production_is_not_an_error(tmp_path: Path) -> None:
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_text("placeholder")  # lint only checks that they exist
    result = check(
        tmp_path,
        """version: 1
mode: production
listen: {tls: {cert: tls.crt, key: tls.key}}
audit: {sink: stdout}
authentication:
  jwt:
    - issuer: https://id.example.com
      audiences: [api://orders]
      algorithms: [ES256]
      jwks_uri: https://id.example.com/.well-known/jwks.json
upstreams:
  orders: {url: "http://127.0.0.1:9000", timeout: {connect: 1, read: 5, total: 10}}
apis:
  - name: orders
    upstream: orders
    routes:
      - {path: /orders, methods: [GET], allow: authenticated}
""",
    )
    assert "route-without-authentication" not in result.stdout
    assert result.returncode == 0, result.stdout
